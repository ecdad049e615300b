"""Parameters of the costmap node: one table (name, default, description, range) and the
validation run at start and on every runtime change. No rclpy import: the node turns
:data:`PARAMETERS` into ``ParameterDescriptor`` declarations (:mod:`offroad_core.params`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from offroad_core.camera import CameraPose
from offroad_core.costmap.categories import (
    DEFAULT_VERTICAL_CLASSES,
    CategoryError,
    CategoryValues,
    parse_overrides,
)
from offroad_core.costmap.depthmode import depth_config
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.projection import OCCLUSION_MODES
from offroad_core.ontology import Category
from offroad_core.params import ConfigError, ParamSpec, check_values

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("labels_topic", "segmentation/labels", "input mono8 label image"),
    ParamSpec("info_topic", "segmentation/info", "input SegmentationInfo (transient-local)"),
    ParamSpec("camera_info_topic", "segmentation/camera_info",
              "input CameraInfo at the label resolution"),
    ParamSpec("odom_topic", "odom", "input nav_msgs/Odometry (use_odom)"),
    ParamSpec("use_odom", False, "subscribe odom_topic: enables fusion and output_frame odom"),
    ParamSpec("grid_topic", "costmap/grid", "output OccupancyGrid (reliable, transient-local)"),
    ParamSpec("obstacles_topic", "costmap/obstacles", "output PointCloud2 of lethal cells "
              "(Nav2 marking source; stamped with the image stamp, not published while stale)"),
    ParamSpec("clearing_topic", "costmap/clearing", "output PointCloud2 of known free/caution "
              "ground, the farthest cell per bearing (Nav2 clearing source, sensor_frame "
              "base_link)"),
    ParamSpec("debug_image_topic", "costmap/debug_image", "output rgb8 picture of the grid"),
    ParamSpec("input_reliability", "reliable", "reliability of the labels/camera_info "
              "subscriptions (the segmentation node publishes reliable)",
              choices=("reliable", "best_effort")),
    ParamSpec("base_frame", "base_link", "robot frame (REP-105); the grid geometry is in it"),
    ParamSpec("odom_frame", "odom", "odometry frame (REP-105)"),
    ParamSpec("output_frame", "base_link", "frame of the published grid: base_link "
              "(robot-centric) or odom (square window around the robot holding its view at any "
              "heading, needs use_odom)", choices=("base_link", "odom")),
    ParamSpec("odom_window_step", 1.0, "odom output: the window moves when the robot is this "
              "far (m) from its centre, so Nav2 reallocates its copy once per step", low=0.0,
              high=50.0),
    ParamSpec("resolution", 0.05, "cell size (m)", low=0.01, high=1.0),
    ParamSpec("size_x", 10.0, "grid extent along x (m)", low=0.5, high=200.0),
    ParamSpec("size_y", 10.0, "grid extent along y (m)", low=0.5, high=200.0),
    ParamSpec("origin_x", -2.0, "x of the grid corner in base_link (m)", low=-200.0, high=200.0),
    ParamSpec("origin_y", -5.0, "y of the grid corner in base_link (m)", low=-200.0, high=200.0),
    ParamSpec("max_range", 8.0, "ground farther than this from the camera (m, horizontal) is "
              "unknown", low=0.5, high=200.0, dynamic=True),
    ParamSpec("oversample", 1.0, "ray samples per label pixel pitch (>= 1 keeps thin objects)",
              low=0.25, high=4.0, dynamic=True),
    ParamSpec("camera_x", 0.0, "camera position in base_link (m)", low=-50.0, high=50.0,
              dynamic=True),
    ParamSpec("camera_y", 0.0, "camera position in base_link (m)", low=-50.0, high=50.0,
              dynamic=True),
    ParamSpec("camera_z", 1.0, "camera height above the ground (m)", low=0.05, high=50.0,
              dynamic=True),
    ParamSpec("camera_roll", 0.0, "camera roll in base_link (rad, REP-103)", low=-3.15,
              high=3.15, dynamic=True),
    ParamSpec("camera_pitch", 0.26, "camera pitch (rad, positive looks down)", low=-1.57,
              high=1.57, dynamic=True),
    ParamSpec("camera_yaw", 0.0, "camera yaw in base_link (rad)", low=-3.15, high=3.15,
              dynamic=True),
    ParamSpec("free_value", 0, "grid value of FREE cells", low=0, high=100, dynamic=True),
    ParamSpec("caution_value", 50, "grid value of CAUTION cells", low=0, high=100, dynamic=True),
    ParamSpec("blocked_value", 100, "grid value of BLOCKED cells", low=0, high=100, dynamic=True),
    ParamSpec("hazard_value", 100, "grid value of HAZARD cells", low=0, high=100, dynamic=True),
    ParamSpec("category_overrides", "", "comma-separated class_name=CATEGORY overriding the "
              "categories the model carries (SegmentationInfo), e.g. "
              "'vegetation=FREE,rough_ground=BLOCKED'", dynamic=True),
    ParamSpec("vertical_classes", ",".join(DEFAULT_VERTICAL_CLASSES), "comma-separated class "
              "names that stand off the ground (marked at their ground contact, occlude)",
              dynamic=True),
    ParamSpec("min_support", 1, "samples a category needs in a cell to count", low=1,
              high=1000, dynamic=True),
    ParamSpec("occlusion", "column", "column: all ground beyond the nearest object in a view "
              "column is unknown; ray: only ground hidden by the object's own pixels",
              choices=OCCLUSION_MODES, dynamic=True),
    ParamSpec("fusion", "auto", "temporal fusion in odom: auto (on with use_odom), on, off",
              choices=("auto", "on", "off")),
    ParamSpec("decay_time", 3.0, "fused evidence older than this (s) becomes unknown", low=0.0,
              high=600.0, dynamic=True),
    ParamSpec("odom_history", 2.0, "seconds of odometry kept to look up the pose at an image "
              "stamp", low=0.1, high=60.0),
    ParamSpec("stale_timeout", 0.5, "no accepted labels for this long (s) -> fail-safe; labels "
              "older than this on arrival are rejected", low=0.05, high=60.0, dynamic=True),
    ParamSpec("future_tolerance", 0.5, "labels stamped more than this (s) ahead of the node's "
              "clock are rejected (clock skew, wrong stamps)", low=0.0, high=60.0, dynamic=True),
    ParamSpec("stale_action", "unknown", "when stale (the clouds stop either way): unknown "
              "(an all-unknown grid every watchdog_period) or silent (no grid either)",
              choices=("unknown", "silent")),
    ParamSpec("watchdog_period", 0.1, "period of the staleness check (s)", low=0.01, high=10.0),
    ParamSpec("publish_obstacles", True, "publish obstacles_topic (lethal cells as points)"),
    ParamSpec("publish_clearing", True, "publish clearing_topic (rays of observed ground)"),
    ParamSpec("obstacle_point_height", 0.2, "z of the obstacle and clearing points (m); must "
              "lie inside the ObstacleLayer's min/max_obstacle_height", low=0.0, high=5.0),
    ParamSpec("publish_debug_image", True, "publish debug_image_topic (only while subscribed)"),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", low=0.1,
              high=60.0),
    # --- depth mode (docs/depth.md): on when depth_topic or cloud_topics is set
    ParamSpec("depth_topic", "", "input depth image registered to the camera (16UC1 mm, "
              "32FC1 m); empty: none"),
    ParamSpec("depth_camera_info_topic", "", "CameraInfo of the depth image at its own "
              "resolution; empty: the depth image has the labels' size and camera"),
    ParamSpec("depth_thinning", True, "skip depth pixels near the robot where a cell holds "
              "many (docs/depth.md); false: every pixel", dynamic=True),
    ParamSpec("cloud_topics", "", "comma-separated PointCloud2 inputs (x, y, z in a known "
              "frame: LiDAR, the camera's depth cloud); empty: none"),
    ParamSpec("confidence_topic", "", "optional mono8 confidence of the labels (same stamp) "
              "for the labelled cloud; empty: none"),
    ParamSpec("sync_tolerance", 0.05, "depth images and clouds join the labels stamped within "
              "this (s); others drop out of the frame", low=0.0, high=1.0, dynamic=True),
    ParamSpec("max_cloud_points", 2000000, "clouds with more points are refused "
              "(cloud_too_large)", low=1, high=50000000),
    ParamSpec("extrinsics", "parameters", "sensor mounting: parameters (camera_*, lidar_*) or "
              "tf (tf2_ros, any frame)", choices=("parameters", "tf")),
    ParamSpec("camera_frame", "camera_optical_frame", "optical frame of the camera_* pose "
              "(labels, depth image, depth cloud)"),
    ParamSpec("lidar_frame", "lidar_link", "frame of the lidar_* pose"),
    ParamSpec("lidar_x", 0.0, "LiDAR position in base_link (m)", low=-50.0, high=50.0,
              dynamic=True),
    ParamSpec("lidar_y", 0.0, "LiDAR position in base_link (m)", low=-50.0, high=50.0,
              dynamic=True),
    ParamSpec("lidar_z", 1.0, "LiDAR height in base_link (m)", low=-50.0, high=50.0,
              dynamic=True),
    ParamSpec("lidar_roll", 0.0, "LiDAR roll in base_link (rad)", low=-3.15, high=3.15,
              dynamic=True),
    ParamSpec("lidar_pitch", 0.0, "LiDAR pitch in base_link (rad)", low=-1.57, high=1.57,
              dynamic=True),
    ParamSpec("lidar_yaw", 0.0, "LiDAR yaw in base_link (rad)", low=-3.15, high=3.15,
              dynamic=True),
    ParamSpec("terrain_resolution", 0.1, "cell size of the ground estimate (m), a whole "
              "multiple of resolution", low=0.01, high=2.0, dynamic=True),
    ParamSpec("max_step", 0.15, "highest step the robot climbs (m): a point higher above its "
              "local ground is BLOCKED whatever its class", low=0.01, high=5.0, dynamic=True),
    ParamSpec("max_slope_deg", 25.0, "steepest slope the robot drives (deg): steeper observed "
              "ground is BLOCKED", low=1.0, high=89.0, dynamic=True),
    ParamSpec("clearance_height", 1.5, "points higher above their local ground are ignored "
              "(overhangs the robot passes under) (m)", low=0.1, high=20.0, dynamic=True),
    ParamSpec("compliant_classes", "vegetation", "comma-separated classes judged by "
              "compliant_max_height instead of max_step (driven through)", dynamic=True),
    ParamSpec("compliant_max_height", 0.6, "compliant points higher above ground are "
              "BLOCKED (m)", low=0.0, high=5.0, dynamic=True),
    ParamSpec("geometry_only_category", "CAUTION", "category of unlabelled points (outside "
              "the camera's view or hidden from it) within the geometric limits",
              choices=("FREE", "CAUTION", "UNKNOWN"), dynamic=True),
    ParamSpec("occlusion_tolerance", 0.15, "a cloud point behind the depth image's surface at "
              "its pixel by more than max(this, occlusion_ratio x depth) is hidden: no label "
              "(m)", low=0.0, high=10.0, dynamic=True),
    ParamSpec("occlusion_ratio", 0.03, "relative part of the occlusion tolerance", low=0.0,
              high=1.0, dynamic=True),
    ParamSpec("zbuffer_block", 4, "tile (label pixels) of the clouds' own z-buffer, used "
              "where no depth pixel covers a point", low=1, high=64, dynamic=True),
    ParamSpec("zbuffer_ratio", 0.15, "relative occlusion tolerance of the z-buffer", low=0.0,
              high=1.0, dynamic=True),
    ParamSpec("publish_labelled_cloud", True, "publish labelled_cloud_topic (depth mode)"),
    ParamSpec("labelled_cloud_topic", "costmap/labelled_points", "output PointCloud2 of the "
              "depth mode's points in base_link: x, y, z, confidence float32, class, level "
              "uint8"),
    ParamSpec("labelled_cloud_points", "lethal", "lethal: BLOCKED/HAZARD points (Nav2 "
              "obstacle/voxel layers, collision monitor); all: every used point",
              choices=("lethal", "all")),
    ParamSpec("labelled_cloud_max_points", 50000, "more points are thinned evenly", low=1,
              high=10000000),
    ParamSpec("aligned_cloud_topic", "costmap/aligned_points", "output organised PointCloud2 "
              "(x, y, z float32, camera_frame) of the depth image at the label pixels, NaN "
              "without return, stamped like the labels (Nav2 semantic segmentation layer); "
              "published only while subscribed"),
)


@dataclass(frozen=True)
class CostmapConfig:
    """Validated parameters plus the derived objects."""

    values: dict[str, Any]
    geometry: GridGeometry
    pose: CameraPose
    category_overrides: dict[str, Category]
    category_values: CategoryValues
    vertical_classes: tuple[str, ...]
    fusion: bool
    depth: Any = None   # offroad_core.costmap.depthmode.DepthConfig, None: depth mode off

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def _split(text: str) -> list[str]:
    """Comma-separated list, empty items dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def validate(values: dict[str, Any]) -> CostmapConfig:
    """Check every parameter; return a :class:`CostmapConfig` or raise :class:`ConfigError`."""
    checked, problems = check_values(PARAMETERS, values)
    if problems:
        raise ConfigError(problems)
    v = checked
    if v["output_frame"] == "odom" and not v["use_odom"]:
        problems.append("output_frame odom needs use_odom: true")
    if v["fusion"] == "on" and not v["use_odom"]:
        problems.append("fusion on needs use_odom: true (fusion happens in odom)")
    overrides: dict[str, Category] = {}
    try:
        overrides = parse_overrides(_split(v["category_overrides"]))
        category_values = CategoryValues(v["free_value"], v["caution_value"],
                                         v["blocked_value"], v["hazard_value"])
    except CategoryError as exc:
        problems.append(str(exc))
        category_values = CategoryValues()
    vertical = tuple(_split(v["vertical_classes"]))
    try:
        geometry = GridGeometry.from_size(v["size_x"], v["size_y"], v["resolution"],
                                          v["origin_x"], v["origin_y"])
    except ValueError as exc:
        problems.append(str(exc))
    depth = None
    if not problems:
        depth, depth_problems = depth_config(v, geometry)
        problems += depth_problems
    if problems:
        raise ConfigError(problems)
    pose = CameraPose(v["camera_x"], v["camera_y"], v["camera_z"], v["camera_roll"],
                      v["camera_pitch"], v["camera_yaw"])
    fusion = v["use_odom"] if v["fusion"] == "auto" else v["fusion"] == "on"
    return CostmapConfig(v, geometry, pose, overrides, category_values, vertical, fusion,
                         depth)
