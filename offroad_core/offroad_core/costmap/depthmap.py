"""The depth mode of one frame: labels + depth image + clouds -> grid levels + labelled points.

No ROS import. Per frame (:meth:`DepthCostmap.process`):

1. the depth image (if one joined the labels, :mod:`offroad_core.costmap.sensors`) is decoded,
   sampled at the label pixels (:class:`~offroad_core.costmap.depth.DepthAlignment`) and
   back-projected: one point per label pixel with a return within ``max_range`` (horizontal
   distance from the camera), labelled with its own pixel's label;
2. every joined cloud is decoded (:mod:`offroad_core.costmap.pointcloud`), moved into
   ``base_link`` (:class:`~offroad_core.costmap.extrinsics.FrameTable`; with odometry also by
   the robot's motion between the cloud's stamp and the labels'), cut to ``max_range`` and
   painted (:mod:`offroad_core.costmap.painting`, occlusion against the depth image);
3. all points are fused into the grid (:mod:`offroad_core.costmap.terrain`).

A source that cannot be used this frame (broken message, unknown frame, no valid depth pixel)
is reported through ``report(reason, message)`` and left out; when no source is left the
method returns None and the caller uses the flat-ground projection for this frame.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from offroad_core.camera import Camera, CameraIntrinsics
from offroad_core.costmap.categories import CategoryValues, LabelTable
from offroad_core.costmap.depth import DepthAlignment, DepthError, DepthProjector, decode_depth
from offroad_core.costmap.extrinsics import FrameError, FrameTable, Rigid
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.painting import Painter
from offroad_core.costmap.pointcloud import CloudError, cloud_xyz
from offroad_core.costmap.sensors import Paired
from offroad_core.costmap.terrain import Batch, FusedGrid, TerrainFuser, TerrainRules

Report = Callable[[str, str], None]
Motion = Callable[[float, float], "Rigid | None"]


@dataclass(frozen=True)
class DepthSettings:
    """The depth mode's parameters (see ``offroad_core.costmap.params``)."""

    rules: TerrainRules
    compliant_classes: tuple[str, ...] = ("vegetation",)
    max_range: float = 8.0
    occlusion_tolerance: float = 0.15
    occlusion_ratio: float = 0.03
    zbuffer_block: int = 4
    max_points: int = 2_000_000
    zbuffer_ratio: float = 0.15
    thinning: bool = True


@dataclass(frozen=True)
class DepthPoints:
    """Points of one frame in ``base_link``: label value, level and the label's confidence
    (0..1; 1 where labelled without a confidence image, 0 where unlabelled)."""

    xyz: np.ndarray
    labels: np.ndarray
    level: np.ndarray
    confidence: np.ndarray


@dataclass
class _Source:
    """One source's points: the terrain batch plus what it takes to rebuild xyz on demand
    (``labels``: the label image for the depth source, per point for a cloud)."""

    name: str
    batch: Batch
    labels: np.ndarray
    pixel: np.ndarray | None          # label pixel of each point (-1: unpainted); None: depth
    depth: np.ndarray | None = None
    xyz: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


class DepthResult:
    """One frame of the depth mode: grid levels/values, the sources used, the points."""

    def __init__(self, fused: FusedGrid, sources: list[_Source], projector: DepthProjector,
                 confidence: np.ndarray | None, table: LabelTable, hidden: int) -> None:
        """Keep the per-source arrays: points are only built when asked for."""
        self.levels, self.values = fused.levels, fused.values
        self.sources = tuple(src.name for src in sources)
        self.hidden = hidden
        self._sources, self._projector = sources, projector
        self._confidence, self._table = confidence, table

    def aligned_points(self) -> np.ndarray | None:
        """(H, W, 3) float32 points of the depth image at the label pixels in the camera's
        optical frame (NaN: no return), or None without a depth image this frame: the
        pixel-aligned cloud Nav2's semantic segmentation layer takes with the label image."""
        for src in self._sources:
            if src.depth is not None:
                return self._projector.aligned(src.depth)
        return None

    def points(self, min_level: int = 1, max_points: int | None = None) -> DepthPoints:
        """The points whose level is at least ``min_level`` (3: the lethal ones), evenly
        thinned to at most ``max_points``."""
        parts = []
        for src in self._sources:
            used = src.batch.level >= min_level
            index = src.batch.index[used]
            if src.depth is not None:             # index: label pixels
                xyz = self._projector.points(src.depth, index)
                pixel = index
                labels = src.labels[pixel]
            else:
                xyz = np.stack([c[index] for c in src.xyz], axis=1).astype(np.float32)
                pixel, labels = src.pixel[index], src.labels[index]
            parts.append((xyz, labels, src.batch.level[used], pixel))
        xyz, labels, level, pixel = (np.concatenate(col) for col in zip(*parts, strict=True))
        if max_points is not None and len(level) > max_points:
            keep = np.linspace(0, len(level) - 1, max_points).astype(np.intp)
            xyz, labels, level, pixel = xyz[keep], labels[keep], level[keep], pixel[keep]
        if self._confidence is None:
            conf = np.ones(len(level), np.float32)
        else:
            conf = self._confidence.reshape(-1)[np.maximum(pixel, 0)] * np.float32(1 / 255)
        conf[(self._table.levels[labels] == 0) | (pixel < 0)] = 0.0
        return DepthPoints(xyz, labels, level, conf.astype(np.float32))


class _Clock:
    """Seconds spent per stage (summed over clouds)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = self.laps.get(stage, 0.0) + now - self._last
        self._last = now


def _spare_core() -> bool:
    """Whether a second thread would find a free core: the 1-minute load average (this
    process included) is below the number of cores minus a half. On a busy machine a second
    thread waits for a core and makes the frame slower, not faster."""
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) - 0.5
    except OSError:                                 # no load average on this system
        return False


_POOL: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _cloud_pool() -> ThreadPoolExecutor:
    """The one worker thread of this process that handles clouds (made on first use, again
    in a forked child: the parent's thread does not exist there)."""
    with _POOL_LOCK:
        pid = os.getpid()
        if pid not in _POOL:
            _POOL.clear()
            _POOL[pid] = ThreadPoolExecutor(1, thread_name_prefix="depth-clouds")
        return _POOL[pid]


class DepthCostmap:
    """Depth images and clouds -> grid (module docstring); camera tables are cached; the
    seconds per stage of the last frame are in :attr:`timings`."""

    def __init__(self, settings: DepthSettings, geometry: GridGeometry, table: LabelTable,
                 values: CategoryValues, class_ids: tuple[int, ...],
                 class_names: tuple[str, ...], frames: FrameTable) -> None:
        """Bind the label table of the model and the frame table of the mounting."""
        self.settings, self.table, self.frames, self.geometry = settings, table, frames, geometry
        compliant = np.zeros(256, bool)
        for value, name in zip(class_ids, class_names, strict=True):
            compliant[int(value)] = name in settings.compliant_classes
        self.fuser = TerrainFuser(geometry, settings.rules, table, compliant, values)
        self._camera_key: Camera | None = None
        self._align_key: tuple | None = None
        self.timings: dict[str, float] = {}
        """Seconds per stage of the last frame that gave a grid (``bench/``); the cloud
        stages of a frame on the worker thread overlap ``depth points``."""

    def _tables(self, camera: Camera, depth_camera: CameraIntrinsics) -> None:
        s = self.settings
        if camera != self._camera_key:
            self.projector = DepthProjector(camera, self.geometry, s.max_range, s.thinning)
            self.painter = Painter(camera, s.occlusion_tolerance, s.occlusion_ratio,
                                   s.zbuffer_block, s.zbuffer_ratio)
            self._camera_key = camera
        key = (camera.intrinsics, depth_camera)
        if key != self._align_key:
            self.alignment = DepthAlignment(camera.intrinsics, depth_camera)
            self._align_key = key

    def process(self, labels: np.ndarray, camera: Camera,
                depth_camera: CameraIntrinsics | None, paired: Paired, stamp: float,
                report: Report, motion: Motion | None = None) -> DepthResult | None:
        """One frame (module docstring); ``depth_camera`` is the depth image's CameraInfo
        (None: the labels' camera). None when no source could be used."""
        self._tables(camera, depth_camera or camera.intrinsics)
        clock = _Clock()
        flat = labels.reshape(-1)
        depth = self._depth(paired, report)
        clock.lap("depth image")
        # the clouds are decoded, painted and cut on a second thread while this one
        # back-projects the depth image (independent work: the same result either way)
        overlap = depth is not None and bool(paired.clouds) and _spare_core()
        jobs = [_cloud_pool().submit(self._cloud_source, msg, flat, depth, stamp, motion)
                for msg in paired.clouds] if overlap else []
        sources: list[_Source] = []
        if depth is not None:
            pixels, cell, z = self.projector.cells(depth)
            batch = self.fuser.batch_cells(cell, z, flat[pixels], pixels)
            sources.append(_Source("depth", batch, flat, None, depth=depth))
            clock.lap("depth points")
        done = [job.result() for job in jobs] if overlap else [
            self._cloud_source(msg, flat, depth, stamp, motion) for msg in paired.clouds]
        if overlap:
            clock.lap("waiting for clouds")
        hidden = 0
        for source, painted_hidden, reports, laps in done:
            for reason, message in reports:
                report(reason, message)
            for stage, seconds in laps.items():
                clock.laps[stage] = clock.laps.get(stage, 0.0) + seconds
            if source is not None:
                sources.append(source)
                hidden += painted_hidden
        if not sources:
            return None
        fused = self.fuser.fuse([src.batch for src in sources],
                                _cloud_pool().submit if overlap else None)
        clock.lap("fusion")
        self.timings = clock.laps
        return DepthResult(fused, sources, self.projector, paired.confidence, self.table,
                           hidden)

    def _cloud_source(self, msg, flat: np.ndarray, depth: np.ndarray | None, stamp: float,
                      motion: Motion | None) -> tuple[_Source | None, int, list, dict]:
        """One cloud: (its source or None, hidden points, the reports to make, seconds per
        stage); thread-safe (it reads the tables, writes nothing shared)."""
        clock, reports = _Clock(), []
        xyz = self._cloud(msg, stamp, lambda reason, text: reports.append((reason, text)),
                          motion)
        clock.lap("cloud decoding")
        if xyz is None:
            return None, 0, reports, clock.laps
        painted = self.painter.paint(*xyz, flat, depth, self.table.ignore_value)
        clock.lap("painting")
        batch = self._cloud_batch(xyz, painted.labels)
        clock.lap("cloud points")
        return (_Source(msg.source, batch, painted.labels, painted.pixel, xyz=xyz),
                painted.hidden, reports, clock.laps)

    def _cloud_batch(self, xyz: tuple[np.ndarray, np.ndarray, np.ndarray],
                     labels: np.ndarray) -> Batch:
        """Terrain batch of base_link points; points outside the grid, beyond max_range
        (horizontal, from the camera) or not finite are left out."""
        x, y, z = xyz
        g, o = self.geometry, self.projector.origin
        inv = np.float32(1.0 / g.resolution)
        col = x - np.float32(g.origin_x)
        col *= inv
        col += np.float32(1.0)
        row = y - np.float32(g.origin_y)
        row *= inv
        row += np.float32(1.0)
        dx, dy = x - o[0], y - o[1]
        dx *= dx
        dy *= dy
        dx += dy
        with np.errstate(invalid="ignore"):
            ci = col.astype(np.int32)
            ri = row.astype(np.int32)
            ok = dx <= np.float32(self.settings.max_range ** 2)
        ci -= 1
        ri -= 1
        ok &= ci.view(np.uint32) < g.nx
        ok &= ri.view(np.uint32) < g.ny
        ok &= np.isfinite(z)
        keep = np.flatnonzero(ok)
        cell = ri[keep]
        cell *= np.int32(g.nx)
        cell += ci[keep]
        return self.fuser.batch_cells(cell, z[keep], labels[keep], keep)

    def _depth(self, paired: Paired, report: Report) -> np.ndarray | None:
        """Depth at the label pixels (flat float32, NaN = none), or None when unusable."""
        msg = paired.depth
        if msg is None:
            return None
        try:
            image = decode_depth(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                                 msg.is_bigendian)
            depth = self.alignment.sample(image.depth)
        except DepthError as exc:
            report(exc.reason, str(exc))
            return None
        if image.negative:
            report("depth_negative", f"depth image has {image.negative} negative pixels "
                   "(not a valid depth: dropped)")
        if image.invalid == image.depth.size:
            report("depth_empty", "depth image has no valid pixel (all 0/NaN/negative)")
            return None
        return depth

    def _cloud(self, msg, stamp: float, report: Report, motion: Motion | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """A cloud's points in base_link (x, y, z), or None when unusable."""
        try:
            xyz = cloud_xyz(msg.fields, msg.width, msg.height, msg.point_step, msg.row_step,
                            msg.data, msg.is_bigendian, self.settings.max_points)
            to_base = self.frames.to_base(msg.frame_id, msg.stamp)
        except (CloudError, FrameError) as exc:
            report(exc.reason, str(exc))
            return None
        if motion is not None and msg.stamp != stamp:
            moved = motion(msg.stamp, stamp)
            if moved is not None:
                to_base = moved.then(to_base)
        return to_base.apply(*xyz)
