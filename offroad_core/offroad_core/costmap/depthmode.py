"""The depth mode inside :class:`offroad_core.costmap.pipeline.CostmapPipeline`: its validated
configuration, its input buffers and the per-frame choice between depth and flat ground.

No ROS import. The mode is on when ``depth_topic`` or ``cloud_topics`` is set. Per label frame
the inputs that join it (:mod:`offroad_core.costmap.sensors`) go through
:class:`offroad_core.costmap.depthmap.DepthCostmap`; when none is usable the frame falls back
to the flat-ground projection, and the pipeline's :class:`GridFrame` says which mode made it.
Every source that drops out is reported through ``report(reason, message)`` (the node counts
them in /diagnostics as ``sensor_<reason>``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose
from offroad_core.costmap.categories import CategoryValues, LabelTable
from offroad_core.costmap.depthmap import DepthCostmap, DepthResult, DepthSettings
from offroad_core.costmap.extrinsics import FrameTable, Lookup, Rigid, optical_rigid
from offroad_core.costmap.fusion import PoseHistory
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.sensors import CloudMessage, DepthMessage, SensorSync
from offroad_core.costmap.terrain import TerrainRules

Report = Callable[[str, str], None]
GEOMETRY_ONLY_LEVELS = {"UNKNOWN": 0, "FREE": 1, "CAUTION": 2}


@dataclass(frozen=True)
class DepthConfig:
    """What the depth mode needs of the parameters (``offroad_core.costmap.params``)."""

    settings: DepthSettings
    depth: bool
    depth_camera_info: bool
    clouds: tuple[str, ...]
    confidence: bool
    tolerance: float
    extrinsics: str
    base_frame: str
    camera_frame: str
    lidar_frame: str
    lidar_pose: CameraPose
    labelled_min_level: int
    labelled_max_points: int


def _split(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def depth_config(v: dict[str, Any], geometry: GridGeometry) -> tuple[DepthConfig | None,
                                                                      list[str]]:
    """The depth mode's configuration from checked parameter values (None when off) and the
    problems of its cross-field checks."""
    clouds = _split(v["cloud_topics"])
    if not v["depth_topic"] and not clouds:
        return None, []
    problems = []
    factor = v["terrain_resolution"] / v["resolution"]
    if abs(factor - round(factor)) > 1e-6 or round(factor) < 1:
        problems.append(f"terrain_resolution {v['terrain_resolution']} must be a whole "
                        f"multiple of resolution {v['resolution']}")
    if len(set(clouds)) != len(clouds) or v["depth_topic"] in clouds:
        problems.append("cloud_topics must not repeat a topic (nor depth_topic)")
    if problems:
        return None, problems
    rules = TerrainRules(round(factor), v["max_step"], v["max_slope_deg"],
                         v["clearance_height"], v["compliant_max_height"],
                         GEOMETRY_ONLY_LEVELS[v["geometry_only_category"]], v["min_support"])
    settings = DepthSettings(rules, _split(v["compliant_classes"]), v["max_range"],
                             v["occlusion_tolerance"], v["occlusion_ratio"], v["zbuffer_block"],
                             v["max_cloud_points"], v["zbuffer_ratio"], v["depth_thinning"])
    lidar = CameraPose(v["lidar_x"], v["lidar_y"], v["lidar_z"], v["lidar_roll"],
                       v["lidar_pitch"], v["lidar_yaw"])
    return DepthConfig(settings, bool(v["depth_topic"]), bool(v["depth_camera_info_topic"]),
                       clouds, bool(v["confidence_topic"]), v["sync_tolerance"],
                       v["extrinsics"], v["base_frame"], v["camera_frame"], v["lidar_frame"],
                       lidar, 3 if v["labelled_cloud_points"] == "lethal" else 1,
                       v["labelled_cloud_max_points"]), []


def planar_motion(poses: PoseHistory) -> Callable[[float, float], Rigid | None]:
    """base_link at stamp ``a`` -> base_link at stamp ``b`` from the odometry history."""
    def motion(a: float, b: float) -> Rigid | None:
        pa, pb = poses.at(a), poses.at(b)
        if pa is None or pb is None:
            return None
        def planar(p):
            c, s = math.cos(p.yaw), math.sin(p.yaw)
            return Rigid(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]),
                         np.array([p.x, p.y, 0.0]))
        return planar(pb).inverse().then(planar(pa))
    return motion


class DepthMode:
    """Buffers, depth camera and the per-frame depth costmap (module docstring)."""

    def __init__(self, config: DepthConfig, geometry: GridGeometry, values: CategoryValues,
                 camera_pose: CameraPose, report: Report) -> None:
        """Buffers for the configured sources; ``report`` counts sources that drop out."""
        self.config, self.geometry, self.values, self.report = config, geometry, values, report
        self.camera_pose = camera_pose
        self.sync = SensorSync(config.tolerance, config.depth, config.clouds,
                               config.confidence, config.settings.max_points)
        self.depth_camera: CameraIntrinsics | None = None
        self.lookup: Lookup | None = None
        self._costmap: DepthCostmap | None = None
        self._key: tuple | None = None

    def reconfigure(self, config: DepthConfig, camera_pose: CameraPose) -> None:
        """Changed (runtime) parameters: buffers kept, tables rebuilt."""
        self.config, self.camera_pose = config, camera_pose
        self.sync.tolerance = config.tolerance
        self._costmap = None

    def frames(self) -> FrameTable:
        """The frame table of the mounting parameters (and TF when a lookup is set)."""
        c = self.config
        known = {c.camera_frame: optical_rigid(self.camera_pose),
                 c.lidar_frame: Rigid.from_pose(c.lidar_pose)}
        return FrameTable(c.base_frame, known, self.lookup)

    def add_depth(self, msg: DepthMessage) -> None:
        """Buffer a depth image (:class:`~offroad_core.costmap.depth.DepthError` if broken)."""
        self.sync.add_depth(msg)

    def add_cloud(self, msg: CloudMessage) -> None:
        """Buffer a cloud (:class:`~offroad_core.costmap.pointcloud.CloudError` if broken)."""
        self.sync.add_cloud(msg)

    def add_confidence(self, stamp: float, image: np.ndarray) -> None:
        """Buffer a confidence image (H, W) uint8."""
        self.sync.add_confidence(stamp, image)

    def clear(self) -> None:
        """Forget buffered inputs (perception that stopped)."""
        self.sync.clear()

    def frame(self, labels: np.ndarray, stamp: float, intrinsics: CameraIntrinsics,
              table: LabelTable, class_ids: tuple[int, ...], class_names: tuple[str, ...],
              poses: PoseHistory | None) -> DepthResult | None:
        """The depth-mode grid of one label frame, or None: use the flat ground."""
        c = self.config
        paired = self.sync.take(stamp)
        for reason, message in paired.dropped:
            self.report(reason, message)
        if paired.depth is not None and c.depth_camera_info and self.depth_camera is None:
            self.report("no_depth_camera_info", "no CameraInfo of the depth image yet "
                        "(depth_camera_info_topic): depth image not used")
            paired.depth = None
        if paired.confidence is not None and paired.confidence.shape != labels.shape:
            self.report("confidence_size_mismatch", f"confidence {paired.confidence.shape} "
                        f"vs labels {labels.shape}: not used")
            paired.confidence = None
        if paired.depth is None and not paired.clouds:
            return None
        key = (id(table), class_ids, class_names, self.camera_pose, self.lookup)
        if self._costmap is None or key != self._key:
            self._costmap = DepthCostmap(c.settings, self.geometry, table, self.values,
                                         class_ids, class_names, self.frames())
            self._key = key
        camera = Camera(intrinsics, self.camera_pose)
        motion = planar_motion(poses) if poses is not None else None
        return self._costmap.process(labels, camera, self.depth_camera, paired, stamp,
                                     self.report, motion)
