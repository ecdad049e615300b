"""Per-frame work of the costmap node without ROS plumbing: labels + camera model -> grid.

:class:`CostmapPipeline` holds the label table (built from the model's classes and categories
in SegmentationInfo), the projector cache keyed by (label size, K, D, distortion model), the
size and stamp checks, the odometry history and the fusion step. The node and the offline bag
evaluator both drive it; every refused input raises :class:`InputError` with a stable reason
key that the node counts in /diagnostics.

Fail-safe policy: nothing becomes FREE without fresh evidence. A frame is refused when the
model info or the camera model is missing, when its size differs from them, when it is older
than ``stale_timeout`` or stamped more than ``future_tolerance`` ahead of the clock, or (with
``use_odom``) when no odometry covers its stamp.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from offroad_core.camera import Camera, CameraIntrinsics
from offroad_core.costmap.categories import CategoryError, LabelTable, model_categories
from offroad_core.costmap.depthmode import DepthMode
from offroad_core.costmap.fusion import (
    EvidenceGrid,
    Pose2D,
    PoseHistory,
    view_reach,
    yaw_from_quaternion,
)
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.params import CostmapConfig
from offroad_core.costmap.projection import GroundProjector, ProjectionError, ProjectionTables

MAX_ABS_POSITION = 1.0e6  # m: an odometry position beyond this is a broken message, not a place


class InputError(ValueError):
    """A refused input; ``reason`` is a short stable key for the diagnostics counters."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason key next to the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ModelInfo:
    """What the costmap needs of SegmentationInfo: which label value is which class."""

    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    class_categories: tuple[str, ...] = ()
    ignore_value: int = 255
    height: int = 0
    width: int = 0


@dataclass(frozen=True)
class GridFrame:
    """One output grid: int8 values (ny, nx), its geometry, whether it is in odom, and where
    base_link was in the grid's frame when the labels were taken (the clearing rays' origin)."""

    values: np.ndarray
    geometry: GridGeometry
    in_odom: bool
    origin: tuple[float, float] = (0.0, 0.0)
    mode: str = "flat"             # "depth" or "flat": which projection made this frame
    depth: Any = None              # the depth mode's DepthResult (its points), or None


def checked_pose(x: float, y: float, yaw: float) -> Pose2D:
    """A planar pose, or :class:`InputError` ``bad_odometry`` for non-finite or absurd values."""
    if not all(math.isfinite(v) for v in (x, y, yaw)):
        raise InputError("bad_odometry", f"odometry pose x={x}, y={y}, yaw={yaw} is not finite")
    if abs(x) > MAX_ABS_POSITION or abs(y) > MAX_ABS_POSITION:
        raise InputError("bad_odometry", f"odometry position ({x}, {y}) is beyond "
                         f"{MAX_ABS_POSITION:g} m")
    return Pose2D(float(x), float(y), math.remainder(float(yaw), 2 * math.pi))


def quaternion_yaw(x: float, y: float, z: float, w: float) -> float:
    """Yaw of an odometry orientation; :class:`InputError` ``bad_odometry`` unless it is a
    finite unit quaternion (norm within 0.9..1.1: a zero quaternion would read as yaw 0)."""
    norm = math.sqrt(x * x + y * y + z * z + w * w) if all(
        math.isfinite(v) for v in (x, y, z, w)) else math.nan
    if not 0.9 <= norm <= 1.1:  # also False for NaN
        raise InputError("bad_odometry", f"odometry orientation ({x}, {y}, {z}, {w}) is not a "
                         "unit quaternion")
    return yaw_from_quaternion(x, y, z, w)


def _check_classes(info: ModelInfo) -> None:
    """``ValueError`` for a class list that cannot mean one thing per label value."""
    if not info.class_ids:
        raise ValueError("lists no classes: every cell would stay unknown")
    for what, items in (("label value", info.class_ids), ("class name", info.class_names)):
        repeated = sorted(str(v) for v, n in Counter(items).items() if n > 1)
        if repeated:
            raise ValueError(f"{what}(s) {', '.join(repeated)} given to several classes")
    if info.ignore_value in info.class_ids:
        raise ValueError(f"ignore_value {info.ignore_value} is also a class id")


def _evidence_store(c: CostmapConfig) -> EvidenceGrid | None:
    """The fused evidence (``fusion``), a one-frame store for ``odom`` output without fusion
    (decay 0 keeps only the newest frame), or None."""
    if not (c.fusion or c.output_frame == "odom"):
        return None
    reach = view_reach(c.geometry, (c.camera_x, c.camera_y), c.max_range)
    return EvidenceGrid(c.geometry, c.decay_time if c.fusion else 0.0, reach,
                        c.odom_window_step)


class CostmapPipeline:
    """Labels in, grid frames out (see the module docstring)."""

    def __init__(self, config: CostmapConfig,
                 on_tables: Callable[[str], None] | None = None,
                 on_sensor: Callable[[str, str], None] | None = None) -> None:
        """``on_tables`` is told (one line) whenever projection tables are (re)built;
        ``on_sensor(reason, message)`` whenever a depth-mode source drops out of a frame."""
        self.config = config
        self._on_tables = on_tables
        self.depth = DepthMode(config.depth, config.geometry, config.category_values,
                               config.pose, on_sensor or (lambda reason, message: None)) \
            if config.depth is not None else None
        self.info: ModelInfo | None = None
        self.table: LabelTable | None = None
        self.camera: CameraIntrinsics | None = None
        self._projector: GroundProjector | None = None
        self._projector_key: tuple | None = None
        self.poses = PoseHistory(config.odom_history)
        self.evidence = _evidence_store(config)
        self.last_pose: Pose2D | None = None

    def reconfigure(self, config: CostmapConfig) -> None:
        """Apply changed (runtime) parameters; model info, camera and odometry are kept."""
        self.config = config
        self._projector = None
        if self.depth is not None and config.depth is not None:
            self.depth.reconfigure(config.depth, config.pose)
        if self.info is not None:
            self.table = self._table_for(self.info)
        store = _evidence_store(config)
        if store is None or self.evidence is None or store.n != self.evidence.n:
            self.evidence = store      # max_range or camera moved: the window is resized
        else:
            self.evidence.decay_time = store.decay_time

    # ------------------------------------------------------------------ inputs
    def set_model_info(self, info: ModelInfo) -> tuple[str, ...]:
        """Build the label table from the model's classes; returns classes without a category.

        Raises :class:`InputError` ``bad_info`` for an inconsistent message. The same info
        again (it is latched and may be re-sent) changes nothing.
        """
        if info == self.info and self.table is not None:
            return self.table.unmapped
        table = self._table_for(info)
        self.info, self.table = info, table
        self._projector = None
        return table.unmapped

    def _table_for(self, info: ModelInfo) -> LabelTable:
        c = self.config
        try:
            _check_classes(info)
            categories = model_categories(info.class_names, info.class_categories,
                                          c.category_overrides)
            return LabelTable.build(info.class_ids, info.class_names, categories,
                                    c.vertical_classes, info.ignore_value)
        except (CategoryError, ValueError) as exc:
            raise InputError("bad_info", f"SegmentationInfo: {exc}") from None

    def set_camera(self, intrinsics: CameraIntrinsics) -> None:
        """The newest camera model at the label resolution (tables rebuilt when it changes)."""
        self.camera = intrinsics

    def add_odometry(self, stamp: float, x: float, y: float, yaw: float,
                     now: float | None = None) -> None:
        """Append a planar pose; :class:`InputError` ``bad_odometry`` for a broken one.

        With the clock ``now``, a pose stamped more than ``future_tolerance`` ahead is refused
        too: the history drops poses older than its newest, so one future stamp would otherwise
        discard all odometry until the clock caught up.
        """
        if not math.isfinite(stamp):
            raise InputError("bad_odometry", f"odometry stamp {stamp} is not finite")
        tolerance = self.config.future_tolerance
        if now is not None and stamp - now > tolerance:
            raise InputError("bad_odometry", f"odometry is stamped {stamp - now:.3f} s ahead of "
                             f"the clock (future_tolerance {tolerance} s): check the clocks and "
                             "use_sim_time")
        self.poses.add(stamp, checked_pose(x, y, yaw))

    # ------------------------------------------------------------------ per frame
    def check_stamp(self, stamp: float, now: float) -> None:
        """Refuse frames too old (``stale``) or stamped in the future (``future_stamp``)."""
        c = self.config
        age = now - stamp
        if now == 0.0 and -age > c.future_tolerance:
            raise InputError("no_clock", "the node's clock reads 0 (use_sim_time is set and no "
                             "/clock has arrived yet): labels wait for the clock")
        if age > c.stale_timeout:
            raise InputError("stale", f"labels are {age:.3f} s old (stale_timeout "
                             f"{c.stale_timeout} s)")
        if -age > c.future_tolerance:
            raise InputError("future_stamp", f"labels are stamped {-age:.3f} s ahead of the "
                             f"clock (future_tolerance {c.future_tolerance} s): check the "
                             "clocks and use_sim_time")

    def process(self, labels: np.ndarray, stamp: float, now: float) -> GridFrame:
        """One label image (H, W) uint8 stamped ``stamp`` -> the grid to publish."""
        self.check_stamp(stamp, now)
        projector = self._projector_for(labels.shape)
        c = self.config
        result = None
        if self.depth is not None:
            result = self.depth.frame(labels, stamp, self.camera, self.table, self.info.class_ids,
                                      self.info.class_names, self.poses if c.use_odom else None)
        values = projector.project(labels).values if result is None else result.values
        mode = {"mode": "flat" if result is None else "depth", "depth": result}
        if not c.use_odom:
            return GridFrame(values, c.geometry, False, **mode)
        pose = self.poses.at(stamp)
        if pose is None:
            raise InputError("no_pose", "no odometry covers the label stamp (odom_history "
                             f"{c.odom_history} s)")
        self.last_pose = pose
        if self.evidence is not None:
            self.evidence.insert(values, pose, stamp)
            if c.output_frame == "odom":
                return GridFrame(*self.evidence.in_odom(stamp, pose), True, (pose.x, pose.y),
                                 **mode)
            return GridFrame(self.evidence.in_base(stamp, pose), c.geometry, False, **mode)
        return GridFrame(values, c.geometry, False, **mode)

    def unknown_frame(self) -> GridFrame:
        """An all-unknown grid in the output frame (the stale fail-safe); in odom on the
        window last published (Nav2 need not reallocate its copy)."""
        c = self.config
        geometry = c.geometry
        if c.output_frame == "odom" and self.evidence is not None:
            geometry = self.evidence.window.geometry()
        return GridFrame(np.full((geometry.ny, geometry.nx), -1, dtype=np.int8), geometry,
                         c.output_frame == "odom")

    def clear(self) -> None:
        """Forget fused evidence (perception that stopped is not trusted when it comes back)."""
        if self.evidence is not None:
            self.evidence.clear()

    # ------------------------------------------------------------------ projector cache
    def _projector_for(self, shape: Sequence[int]) -> GroundProjector:
        """The projector for this label size; :class:`InputError` while it cannot exist."""
        info, cam, c = self.info, self.camera, self.config
        if info is None or self.table is None:
            raise InputError("no_segmentation_info", f"no SegmentationInfo on {c.info_topic} "
                             "yet (transient-local, published by the segmentation node): grid "
                             "stays unknown")
        if cam is None:
            raise InputError("no_camera_info", f"no CameraInfo on {c.camera_info_topic} yet: "
                             "grid stays unknown")
        h, w = int(shape[0]), int(shape[1])
        if info.height and info.width and (info.height, info.width) != (h, w):
            raise InputError("size_mismatch", f"labels {w}x{h} but SegmentationInfo says "
                             f"{info.width}x{info.height}")
        if (cam.height, cam.width) != (h, w):
            raise InputError("size_mismatch", f"labels {w}x{h} but camera_info is "
                             f"{cam.width}x{cam.height} (use segmentation/camera_info)")
        key = (h, w, cam)
        if self._projector is None or key != self._projector_key:
            try:
                tables = ProjectionTables.build(Camera(cam, c.pose), c.geometry, c.max_range,
                                                c.oversample)
            except ProjectionError as exc:
                raise InputError("no_ground_in_view", str(exc)) from None
            self._projector = GroundProjector(tables, self.table, c.category_values,
                                              c.min_support, c.occlusion)
            self._projector_key = key
            if self._on_tables is not None:
                self._on_tables(f"projection tables for {w}x{h} labels: "
                                f"{tables.shape[0]}x{tables.shape[1]} ray samples")
        return self._projector
