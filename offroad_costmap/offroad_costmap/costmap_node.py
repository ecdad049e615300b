"""The costmap node: segmentation labels + camera model -> nav_msgs/OccupancyGrid for Nav2.

Wiring only; the work lives in plain modules (:mod:`.projection`, :mod:`.categories`,
:mod:`.fusion`, :mod:`.params`, :mod:`.messages`).

Fail-safe policy: the grid is never FREE without fresh evidence. A label frame is accepted
only when SegmentationInfo and CameraInfo are known, it decodes, its size matches both, it is
younger than ``stale_timeout`` and (with ``use_odom``) odometry covers its stamp; anything else
is rejected, counted by reason in /diagnostics and logged (throttled), and the node goes on.
When no frame was accepted for ``stale_timeout`` (also from the start) the watchdog drops the
fused evidence, publishes an all-unknown grid every ``watchdog_period`` (or nothing, with
``stale_action: silent``) and /diagnostics reports ERROR. Invalid parameters: one clear error
and exit status 2.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from offroad_core.camera import Camera
from offroad_core.costmap.categories import CategoryError, LabelTable
from offroad_core.costmap.fusion import EvidenceGrid, Pose2D, PoseHistory, yaw_from_quaternion
from offroad_core.costmap.params import PARAMETERS, ConfigError, CostmapConfig, validate
from offroad_core.costmap.projection import GroundProjector, ProjectionError, ProjectionTables
from offroad_core.params import descriptor
from offroad_core.stamps import stamp_seconds
from offroad_costmap.conversions import (
    InputError,
    debug_image,
    intrinsics_from_camera_info,
    labels_from_image,
    obstacle_cloud,
    occupancy_grid,
)
from offroad_seg_msgs.msg import SegmentationInfo

NODE_NAME = "offroad_costmap"
EXIT_CONFIG_ERROR = 2
LOG_THROTTLE_S = 5.0


class CostmapNode(Node):
    """Labels in, OccupancyGrid out (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare and validate every parameter (one block), create the ROS entities."""
        super().__init__(NODE_NAME, **kwargs)
        self.config: CostmapConfig = self._declare_and_validate()
        c = self.config
        self._info: SegmentationInfo | None = None
        self._label_table: LabelTable | None = None
        self._camera_info: CameraInfo | None = None
        self._projector: GroundProjector | None = None
        self._projector_key: tuple | None = None
        self._poses = PoseHistory(c.odom_history)
        self._evidence = EvidenceGrid(c.geometry, c.decay_time) if c.fusion else None
        self._last_accepted: float | None = None
        self._last_pose: Pose2D | None = None
        self._rejected: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self._accepted = 0
        self._accepted_at_diag = 0
        self._rejected_at_diag = 0
        self._project_ms: list[float] = []
        self._last_problem = ""
        self._stale_published = 0

        reliability = (ReliabilityPolicy.RELIABLE if c.input_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        inputs = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE)
        self._pub_grid = self.create_publisher(OccupancyGrid, c.grid_topic, latched)
        self._pub_cloud = (self.create_publisher(PointCloud2, c.obstacles_topic, out)
                           if c.publish_obstacles else None)
        self._pub_debug = (self.create_publisher(Image, c.debug_image_topic, out)
                           if c.publish_debug_image else None)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Image, c.labels_topic, self._on_labels, inputs)
        self.create_subscription(SegmentationInfo, c.info_topic, self._on_info, latched)
        self.create_subscription(CameraInfo, c.camera_info_topic, self._on_camera_info, inputs)
        if c.use_odom:
            self.create_subscription(Odometry, c.odom_topic, self._on_odom,
                                     QoSProfile(depth=50, reliability=reliability))
        self.create_timer(c.watchdog_period, self._watchdog)
        self.create_timer(c.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(
            f"grid {c.geometry.nx}x{c.geometry.ny} cells at {c.resolution} m in "
            f"{c.output_frame}; camera at {c.pose}; fusion {'on' if c.fusion else 'off'}; "
            f"stale_timeout {c.stale_timeout} s ({c.stale_action})")

    def _declare_and_validate(self) -> CostmapConfig:
        """Declare every parameter; raise one ConfigError listing every problem (rclpy's
        type/range refusals and :func:`validate`'s checks of the declared values)."""
        refused = []
        for spec in PARAMETERS:
            try:
                self.declare_parameter(spec.name, spec.default, descriptor(spec))
            except ParameterException as exc:
                refused.append(f"{spec.name}: {exc}")
        values = {s.name: self.get_parameter(s.name).value for s in PARAMETERS
                  if self.has_parameter(s.name)}
        try:
            config = validate(values)
        except ConfigError as exc:
            refused.append(str(exc).removeprefix("invalid parameters: "))
        if refused:
            raise ConfigError("invalid parameters: " + "; ".join(refused))
        return config

    # ------------------------------------------------------------------ helpers
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _reject(self, reason: str, message: str) -> None:
        """Count a rejected input; log it at most once per LOG_THROTTLE_S for each reason
        (one throttle per reason: a frequent problem must not hide a different one)."""
        self._rejected[reason] += 1
        self._last_problem = f"{reason}: {message}"
        now = time.monotonic()
        if now - self._logged_at.get(reason, -math.inf) >= LOG_THROTTLE_S:
            self._logged_at[reason] = now
            self.get_logger().error(f"rejected labels ({reason}, {self._rejected[reason]} so "
                                    f"far): {message}")

    def _output_frame(self) -> str:
        c = self.config
        return c.odom_frame if c.output_frame == "odom" else c.base_frame

    # ------------------------------------------------------------------ callbacks
    def _on_info(self, msg: SegmentationInfo) -> None:
        """Build the label table from the model's class names."""
        try:
            table = LabelTable.build(list(msg.class_ids), list(msg.class_names),
                                     self.config.categories, self.config.vertical_classes,
                                     msg.ignore_value)
        except CategoryError as exc:
            self._reject("bad_info", str(exc))
            return
        if table.unmapped:
            self.get_logger().warning(f"classes without a category give no evidence: "
                                      f"{', '.join(table.unmapped)}")
        self._info, self._label_table = msg, table
        self._projector = None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Remember the newest calibration (tables are rebuilt when it changes)."""
        self._camera_info = msg

    def _on_odom(self, msg: Odometry) -> None:
        """Append the planar pose to the history."""
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        self._poses.add(stamp_seconds(msg.header.stamp),
                        Pose2D(p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)))

    def _on_labels(self, msg: Image) -> None:
        """Validate, project, fuse and publish one label frame; never raises."""
        try:
            self._process(msg)
        except Exception as exc:  # a bad frame must never stop the node
            self._reject("internal_error", f"{type(exc).__name__}: {exc}")

    def _process(self, msg: Image) -> None:
        c = self.config
        age = self._now() - stamp_seconds(msg.header.stamp)
        if age > c.stale_timeout:
            self._reject("stale", f"labels are {age:.3f} s old (stale_timeout "
                         f"{c.stale_timeout} s)")
            return
        try:
            labels = labels_from_image(msg)
            projector = self._projector_for(labels.shape)
        except InputError as exc:
            self._reject(exc.reason, str(exc))
            return
        if projector is None:
            return
        t0 = time.perf_counter()
        values = projector.project(labels).values
        self._project_ms = [*self._project_ms[-99:], (time.perf_counter() - t0) * 1e3]
        geometry = c.geometry
        if c.use_odom:
            pose = self._poses.at(stamp_seconds(msg.header.stamp))
            if pose is None:
                self._reject("no_pose", "no odometry covers the label stamp")
                return
            self._last_pose = pose
            stamp_s = stamp_seconds(msg.header.stamp)
            if self._evidence is not None:
                self._evidence.insert(values, pose, stamp_s)
                if c.output_frame == "odom":
                    values, geometry = self._evidence.in_odom(stamp_s, pose)
                else:
                    values = self._evidence.in_base(stamp_s, pose)
            elif c.output_frame == "odom":
                values, geometry = _frame_in_odom(values, geometry, pose)
        self._accepted += 1
        self._last_accepted = self._now()
        self._publish(values, geometry, msg.header.stamp)

    def _projector_for(self, shape: tuple[int, int]) -> GroundProjector | None:
        """The projector for this label size; None while info or camera_info is missing."""
        info, cam = self._info, self._camera_info
        if info is None:
            self._reject("no_segmentation_info", f"no SegmentationInfo on "
                         f"{self.config.info_topic} yet (transient-local, published by the "
                         f"segmentation node): grid stays unknown")
            return None
        if cam is None:
            self._reject("no_camera_info", f"no CameraInfo on {self.config.camera_info_topic} "
                         f"yet: grid stays unknown")
            return None
        h, w = shape
        if (info.height, info.width) != (h, w) and info.height and info.width:
            raise InputError("size_mismatch", f"labels {w}x{h} but SegmentationInfo says "
                             f"{info.width}x{info.height}")
        if (cam.height, cam.width) != (h, w):
            raise InputError("size_mismatch", f"labels {w}x{h} but camera_info is "
                             f"{cam.width}x{cam.height} (use segmentation/camera_info)")
        key = (h, w, tuple(cam.k), tuple(cam.d), cam.distortion_model)
        if self._projector is None or key != self._projector_key:
            intr = intrinsics_from_camera_info(cam)
            try:
                tables = ProjectionTables.build(Camera(intr, self.config.pose),
                                                self.config.geometry, self.config.max_range,
                                                self.config.oversample)
            except ProjectionError as exc:
                raise InputError("no_ground_in_view", str(exc)) from None
            self._projector = GroundProjector(tables, self._label_table,
                                              self.config.category_values,
                                              self.config.min_support, self.config.occlusion)
            self._projector_key = key
            self.get_logger().info(f"projection tables for {w}x{h} labels: "
                                   f"{tables.shape[0]}x{tables.shape[1]} ray samples")
        return self._projector

    # ------------------------------------------------------------------ output
    def _publish(self, values: np.ndarray, geometry: Any, stamp: Any) -> None:
        frame = self._output_frame()
        self._pub_grid.publish(occupancy_grid(values, geometry, frame, stamp))
        if self._pub_cloud is not None:
            lethal = min(self.config.blocked_value, self.config.hazard_value)
            self._pub_cloud.publish(obstacle_cloud(values, geometry, max(lethal, 1),
                                                   self.config.obstacle_point_height, frame,
                                                   stamp))
        if self._pub_debug is not None and self._pub_debug.get_subscription_count() > 0:
            self._pub_debug.publish(debug_image(values, frame, stamp))

    def _publish_unknown(self, stamp: Any) -> None:
        """All-unknown grid (geometry of the configured output frame)."""
        geometry = self.config.geometry
        if self.config.output_frame == "odom":
            pose = self._last_pose or Pose2D(0.0, 0.0, 0.0)
            geometry = geometry.translated(pose.x, pose.y).snapped()
        self._publish(np.full((geometry.ny, geometry.nx), -1, dtype=np.int8), geometry, stamp)

    def _stale(self) -> bool:
        return (self._last_accepted is None
                or self._now() - self._last_accepted > self.config.stale_timeout)

    def _watchdog(self) -> None:
        """Fail-safe: all-unknown grid while no labels are accepted; fused evidence is
        dropped (perception that stopped is not trusted when it comes back)."""
        if not self._stale():
            return
        if self._evidence is not None:
            self._evidence.clear()
        if self.config.stale_action == "unknown":
            self._stale_published += 1
            self._publish_unknown(self.get_clock().now().to_msg())

    def _publish_diagnostics(self) -> None:
        """ERROR when stale or uncalibrated, WARN on rejected inputs, OK otherwise."""
        c = self.config
        rejected = sum(self._rejected.values())
        new_rejected = rejected - self._rejected_at_diag
        new_accepted = self._accepted - self._accepted_at_diag
        self._rejected_at_diag, self._accepted_at_diag = rejected, self._accepted
        if self._stale():
            since = ("never" if self._last_accepted is None
                     else f"{self._now() - self._last_accepted:.2f} s ago")
            level = DiagnosticStatus.ERROR
            message = (f"stale: no labels accepted for > {c.stale_timeout} s (last {since}); "
                       f"grid is unknown" + (f"; {self._last_problem}" if self._last_problem
                                             else ""))
        elif self._info is None or self._camera_info is None:
            level, message = DiagnosticStatus.ERROR, self._last_problem or "not calibrated"
        elif new_rejected:
            level, message = DiagnosticStatus.WARN, f"{new_rejected} rejected: " \
                                                    f"{self._last_problem}"
        else:
            level, message = DiagnosticStatus.OK, "ok"
        values = {
            "labels_accepted": str(self._accepted),
            "labels_rejected": str(rejected),
            "rate_hz": f"{new_accepted / c.diagnostics_period:.2f}",
            "have_segmentation_info": str(self._info is not None),
            "have_camera_info": str(self._camera_info is not None),
            "unknown_grids_published_while_stale": str(self._stale_published),
            "last_problem": self._last_problem,
        }
        for reason, count in sorted(self._rejected.items()):
            values[f"rejected_{reason}"] = str(count)
        if self._project_ms:
            values["project_ms_median"] = f"{float(np.median(self._project_ms)):.2f}"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: costmap",
                                  message=message, hardware_id=c.base_frame,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._pub_diag.publish(array)


def _frame_in_odom(values: np.ndarray, geometry: Any, pose: Pose2D) -> tuple[np.ndarray, Any]:
    """One frame's grid resampled to the odom-aligned window (fusion off, output odom)."""
    store = EvidenceGrid(geometry, decay_time=0.0)
    store.insert(values, pose, 0.0)
    return store.in_odom(0.0, pose)


def main(args: list[str] | None = None) -> int:
    """Run the node; exit status 2 for invalid parameters."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = CostmapNode()
        except ConfigError as exc:
            print(f"[{NODE_NAME}] {exc}", file=sys.stderr)
            return EXIT_CONFIG_ERROR
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
