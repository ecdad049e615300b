"""Top-down ground truth of a frame: class map and elevation map on one grid in ``base_link``.

Axes (same as ``nav_msgs/OccupancyGrid`` and ``offroad_core.costmap.grid``): frame ``base_link``
of the frame's robot pose; ``classes[row, col]``, column index grows with +x (forward), row index
grows with +y (left); ``(origin_x, origin_y)`` is the outer corner of cell (row 0, col 0), so cell
(row, col) covers x in [origin_x + col*res, origin_x + (col+1)*res) and y in
[origin_y + row*res, origin_y + (row+1)*res). Classes are ids 0..6 (ground classes, obstacle and
dynamic footprints); 255 means unknown (not produced by the current world, whose ground is
defined everywhere; reserved for consumers that mask unseen cells).

``elevation[row, col]`` is the ground height (m, float32) at the cell centre in ``base_link``
(z up from the ground under the robot's origin, which is z = 0 of ``base_link``); zero on a
flat world. ``surface`` is the same with the obstacles' top caps over their footprints (the
highest solid point above the cell centre).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offroad_core.ontology import IGNORE_INDEX
from offroad_training.synth.world import SyntheticWorld

UNKNOWN = IGNORE_INDEX


@dataclass(frozen=True)
class TopDownSpec:
    """Extent and resolution of a top-down map in ``base_link`` (metres)."""

    resolution: float = 0.05
    origin_x: float = -2.0
    origin_y: float = -16.0
    size_x: float = 32.0
    size_y: float = 32.0

    @property
    def shape(self) -> tuple[int, int]:
        """(rows along y, columns along x)."""
        return round(self.size_y / self.resolution), round(self.size_x / self.resolution)


DEFAULT_TOPDOWN = TopDownSpec()


@dataclass(frozen=True)
class TopDownMap:
    """Ground-truth maps of a frame in its ``base_link`` (axes: module docstring)."""

    classes: np.ndarray
    resolution: float
    origin_x: float
    origin_y: float
    frame_id: str = "base_link"
    elevation: np.ndarray | None = None
    surface: np.ndarray | None = None

    def cell_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, inside) of base_link points; row/col are clipped where outside."""
        col = np.floor((np.asarray(x) - self.origin_x) / self.resolution)
        row = np.floor((np.asarray(y) - self.origin_y) / self.resolution)
        ny, nx = self.classes.shape
        with np.errstate(invalid="ignore"):
            inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
        col = np.where(inside, col, 0).astype(np.int64)
        row = np.where(inside, row, 0).astype(np.int64)
        return row, col, inside

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Class at base_link points; 255 outside the map or for NaN."""
        row, col, inside = self.cell_of(x, y)
        return np.where(inside, self.classes[row, col], UNKNOWN).astype(np.uint8)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(ny, nx) arrays of cell-centre x and y in base_link."""
        ny, nx = self.classes.shape
        xs = self.origin_x + (np.arange(nx) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(ny) + 0.5) * self.resolution
        return np.meshgrid(xs, ys)

    def meta(self) -> dict:
        """JSON-ready description (resolution, origin, size, axis order)."""
        ny, nx = self.classes.shape
        return {"frame_id": self.frame_id, "resolution": self.resolution,
                "origin_x": self.origin_x, "origin_y": self.origin_y, "width": nx,
                "height": ny, "axes": "classes[row, col]: col along +x (forward), row along +y "
                "(left); origin = outer corner of cell (0, 0) in base_link; as "
                "nav_msgs/OccupancyGrid", "unknown": UNKNOWN,
                "elevation": "ground height (m) at the cell centre in base_link, same grid"}


def render_topdown(world: SyntheticWorld, robot_pose: tuple[float, float, float],
                   time: float = 0.0, spec: TopDownSpec = DEFAULT_TOPDOWN) -> TopDownMap:
    """The top-down ground-truth maps around a robot pose (no rendering)."""
    pose = tuple(float(v) for v in robot_pose)
    base_z = float(world.ground_height(np.array([pose[0]]), np.array([pose[1]]))[0])
    return topdown_map(world, spec, pose, time, base_z)


def topdown_map(world: SyntheticWorld, spec: TopDownSpec | None,
                pose: tuple[float, float, float], time: float, base_z: float) -> TopDownMap:
    """Maps of ``spec`` around ``pose`` whose base_link is at height ``base_z``; an empty map
    for ``spec`` None."""
    if spec is None:
        return TopDownMap(np.zeros((0, 0), np.uint8), DEFAULT_TOPDOWN.resolution, 0.0, 0.0,
                          elevation=np.zeros((0, 0), np.float32),
                          surface=np.zeros((0, 0), np.float32))
    ny, nx = spec.shape
    xs = spec.origin_x + (np.arange(nx) + 0.5) * spec.resolution
    ys = spec.origin_y + (np.arange(ny) + 0.5) * spec.resolution
    bx, by = np.meshgrid(xs, ys)
    c, s = math.cos(pose[2]), math.sin(pose[2])
    wx = pose[0] + c * bx - s * by
    wy = pose[1] + s * bx + c * by
    classes, surface = world.obstacle_maps(wx, wy, time, tops=True)
    elevation = world.ground_height(wx.ravel(), wy.ravel())
    return TopDownMap(classes.reshape(ny, nx), spec.resolution, spec.origin_x, spec.origin_y,
                      elevation=(elevation - base_z).astype(np.float32).reshape(ny, nx),
                      surface=(surface - base_z).astype(np.float32).reshape(ny, nx))
