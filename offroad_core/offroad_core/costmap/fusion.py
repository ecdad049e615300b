"""Temporal fusion in ``odom``: pose history from odometry and a rolling evidence grid.

No ROS import. Poses are planar (x, y, yaw of ``base_link`` in ``odom``): the ground model is
flat, so roll, pitch and z of the odometry are not used.

:class:`EvidenceGrid` is an ``odom``-aligned grid (same resolution as the output) that follows
the robot. Each frame's cells are written by inverse mapping (every store cell near the robot
looks up the frame cell under it: no holes when the robot is rotated); a cell the new frame
observes takes the new value (latest observation wins: moving objects do not leave trails),
a cell it does not observe keeps its older value until that is ``decay_time`` old, then it is
unknown again.

:class:`OdomWindow` is the published ``odom`` grid: a square around the robot that holds all it
can observe at any heading, moved in steps (why, in docs/nav2.md: Nav2's StaticLayer reallocates
its copy whenever a grid's origin changes).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from offroad_core.costmap.grid import GridGeometry


@dataclass(frozen=True)
class Pose2D:
    """Planar pose of ``base_link`` in ``odom``."""

    x: float
    y: float
    yaw: float


class PoseHistory:
    """Recent odometry poses; linear interpolation (shortest-arc yaw) at a stamp."""

    def __init__(self, horizon: float = 2.0, max_extrapolation: float = 0.1) -> None:
        """Keep poses for ``horizon`` seconds; allow stamps up to ``max_extrapolation`` past."""
        self.horizon = horizon
        self.max_extrapolation = max_extrapolation
        self._stamps: deque[float] = deque()
        self._poses: deque[Pose2D] = deque()

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp: float, pose: Pose2D) -> None:
        """Add a pose (out-of-order stamps older than the newest are dropped)."""
        if self._stamps and stamp <= self._stamps[-1]:
            return
        self._stamps.append(stamp)
        self._poses.append(pose)
        while self._stamps and self._stamps[0] < stamp - self.horizon:
            self._stamps.popleft()
            self._poses.popleft()

    def at(self, stamp: float) -> Pose2D | None:
        """Pose at ``stamp``, or None when the history does not cover it."""
        if not self._stamps:
            return None
        stamps = self._stamps
        if stamp >= stamps[-1]:
            return self._poses[-1] if stamp - stamps[-1] <= self.max_extrapolation else None
        if stamp < stamps[0]:
            return None
        i = bisect.bisect_right(stamps, stamp)
        t0, t1 = stamps[i - 1], stamps[i]
        p0, p1 = self._poses[i - 1], self._poses[i]
        a = (stamp - t0) / (t1 - t0)
        dyaw = math.remainder(p1.yaw - p0.yaw, 2 * math.pi)
        return Pose2D(p0.x + a * (p1.x - p0.x), p0.y + a * (p1.y - p0.y), p0.yaw + a * dyaw)


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Yaw (rotation about z) of a unit quaternion."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def corner_reach(frame: GridGeometry) -> float:
    """Distance from ``base_link`` to the farthest corner of a base_link grid (m)."""
    r = frame.resolution
    return max(math.hypot(x, y) for x in (frame.origin_x, frame.origin_x + frame.nx * r)
               for y in (frame.origin_y, frame.origin_y + frame.ny * r))


def view_reach(frame: GridGeometry, camera_xy: tuple[float, float], max_range: float) -> float:
    """How far from ``base_link`` one frame can hold evidence (m): the camera's distance from
    base_link plus ``max_range``, or the grid's farthest corner if that is nearer."""
    return min(corner_reach(frame), math.hypot(*camera_xy) + max_range)


class OdomWindow:
    """The published ``odom`` grid: a square, axis-aligned in ``odom`` (Nav2 grids cannot
    rotate), that holds everything within ``reach`` of the robot at any heading.

    Its origin is a whole number of cells and moves only when the robot is more than ``step``
    (x or y) from the window centre; ``step`` 0 re-centres it on every cell the robot crosses.
    """

    def __init__(self, resolution: float, reach: float, step: float = 0.0) -> None:
        """Half size = reach + step + one cell: the robot may be ``step`` off centre."""
        self.resolution = resolution
        self.step = step
        self.half = math.ceil((reach + step) / resolution) + 1   # cells
        self.centre: tuple[int, int] | None = None               # odom cell corner

    @property
    def size(self) -> float:
        """Side of the window (m)."""
        return 2 * self.half * self.resolution

    def at(self, x: float, y: float) -> GridGeometry:
        """The window for the robot at (x, y) in ``odom``, moved first if it must."""
        r = self.resolution
        cell = (round(x / r), round(y / r))
        if self.centre is None or max(abs(cell[0] - self.centre[0]),
                                      abs(cell[1] - self.centre[1])) * r > self.step + 1e-9:
            self.centre = cell
        return self.geometry()

    def geometry(self) -> GridGeometry:
        """The current window (centred on ``odom``'s origin before the first pose)."""
        r, n = self.resolution, 2 * self.half
        cx, cy = self.centre if self.centre is not None else (0, 0)
        return GridGeometry(r, n, n, (cx - self.half) * r, (cy - self.half) * r)


class EvidenceGrid:
    """Rolling ``odom`` evidence store (module docstring)."""

    def __init__(self, frame: GridGeometry, decay_time: float, reach: float | None = None,
                 window_step: float = 0.0) -> None:
        """Size the store to hold ``frame`` (base_link geometry) at any yaw around the robot
        and the :class:`OdomWindow` (``reach``: :func:`view_reach`, default the grid's corner)
        wherever the robot is in it."""
        self.frame = frame
        self.decay_time = decay_time
        r = frame.resolution
        corners = corner_reach(frame)
        self.window = OdomWindow(r, corners if reach is None else min(reach, corners),
                                 window_step)
        store = max(corners, (self.window.half + 1) * r + window_step)
        self.n = 2 * math.ceil(store / r) + 2
        self.values = np.full((self.n, self.n), -1, dtype=np.int8)
        self.stamps = np.full((self.n, self.n), -np.inf)
        self.origin: tuple[int, int] | None = None   # store cell (0, 0) in odom cells

    def clear(self) -> None:
        """Forget all evidence."""
        self.values.fill(-1)
        self.stamps.fill(-np.inf)

    def _recentre(self, pose: Pose2D) -> None:
        """Move the store so the robot is at its centre; cells that leave it are forgotten."""
        r = self.frame.resolution
        new = (math.floor(pose.x / r) - self.n // 2, math.floor(pose.y / r) - self.n // 2)
        if self.origin is None:
            self.origin = new
            return
        dx, dy = new[0] - self.origin[0], new[1] - self.origin[1]
        if dx == 0 and dy == 0:
            return
        self.values = _shift(self.values, dy, dx, -1)
        self.stamps = _shift(self.stamps, dy, dx, -np.inf)
        self.origin = new

    def insert(self, frame_values: np.ndarray, pose: Pose2D, stamp: float) -> None:
        """Add one frame grid (base_link geometry ``frame``) observed at ``pose``/``stamp``."""
        self._recentre(pose)
        f = self.frame
        r = f.resolution
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        # store cells under the frame's bounding box at this pose, then inverse mapping
        xs = [pose.x + c * x - s * y for x in (f.origin_x, f.origin_x + f.nx * r)
              for y in (f.origin_y, f.origin_y + f.ny * r)]
        ys = [pose.y + s * x + c * y for x in (f.origin_x, f.origin_x + f.nx * r)
              for y in (f.origin_y, f.origin_y + f.ny * r)]
        c0, c1 = (min(max(math.floor(v / r) - self.origin[0] + k, 0), self.n)
                  for v, k in ((min(xs), 0), (max(xs), 1)))
        r0, r1 = (min(max(math.floor(v / r) - self.origin[1] + k, 0), self.n)
                  for v, k in ((min(ys), 0), (max(ys), 1)))
        ox = (self.origin[0] + np.arange(c0, c1) + 0.5) * r - pose.x
        oy = (self.origin[1] + np.arange(r0, r1) + 0.5) * r - pose.y
        col = np.floor((c * ox[None, :] + s * oy[:, None] - f.origin_x) / r).astype(np.int64)
        row = np.floor((c * oy[:, None] - s * ox[None, :] - f.origin_y) / r).astype(np.int64)
        inside = (col >= 0) & (col < f.nx) & (row >= 0) & (row < f.ny)
        observed = np.zeros_like(inside)
        value = frame_values[row[inside], col[inside]]
        observed[inside] = value >= 0
        self.values[r0:r1, c0:c1][observed] = value[value >= 0]
        self.stamps[r0:r1, c0:c1][observed] = stamp

    def snapshot(self, now: float) -> tuple[np.ndarray, GridGeometry]:
        """The store's values (expired evidence = -1) and its ``odom`` geometry."""
        values = np.where(now - self.stamps <= self.decay_time, self.values, np.int8(-1))
        r = self.frame.resolution
        ox, oy = self.origin if self.origin is not None else (0, 0)
        return values, GridGeometry(r, self.n, self.n, ox * r, oy * r)

    def in_base(self, now: float, pose: Pose2D) -> np.ndarray:
        """The fused evidence resampled into the base_link grid at ``pose`` (ny, nx)."""
        values, geom = self.snapshot(now)
        xs, ys = self.frame.cell_centres()
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        cell = geom.cell_index(pose.x + c * xs - s * ys, pose.y + s * xs + c * ys)
        out = np.full(cell.shape, -1, dtype=np.int8)
        out[cell >= 0] = values.ravel()[cell[cell >= 0]]
        return out

    def in_odom(self, now: float, pose: Pose2D) -> tuple[np.ndarray, GridGeometry]:
        """The fused evidence on the :class:`OdomWindow` around the robot at ``pose``: the same
        coverage at every heading."""
        window = self.window.at(pose.x, pose.y)
        n, out = window.nx, np.full((window.ny, window.nx), -1, dtype=np.int8)
        if self.origin is None:
            return out, window
        # both are whole cells of odom: the window is a block of the store
        dx, dy = self.window.centre[0] - self.window.half - self.origin[0], \
            self.window.centre[1] - self.window.half - self.origin[1]
        sx, sy = slice(max(dx, 0), min(dx + n, self.n)), slice(max(dy, 0), min(dy + n, self.n))
        if sx.start < sx.stop and sy.start < sy.stop:
            fresh = now - self.stamps[sy, sx] <= self.decay_time
            out[sy.start - dy:sy.stop - dy, sx.start - dx:sx.stop - dx] = np.where(
                fresh, self.values[sy, sx], np.int8(-1))
        return out, window


def _shift(array: np.ndarray, drow: int, dcol: int, fill: float) -> np.ndarray:
    """Content moved by (-drow, -dcol): the store origin moved by (drow, dcol) cells."""
    out = np.full_like(array, fill)
    n_r, n_c = array.shape
    if abs(drow) >= n_r or abs(dcol) >= n_c:
        return out
    src_r = slice(max(drow, 0), n_r + min(drow, 0))
    dst_r = slice(max(-drow, 0), n_r + min(-drow, 0))
    src_c = slice(max(dcol, 0), n_c + min(dcol, 0))
    dst_c = slice(max(-dcol, 0), n_c + min(-dcol, 0))
    out[dst_r, dst_c] = array[src_r, src_c]
    return out
