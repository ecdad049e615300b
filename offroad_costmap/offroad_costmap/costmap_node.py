"""The costmap node: segmentation labels + camera model -> nav_msgs/OccupancyGrid for Nav2.

Wiring only: the per-frame work is :class:`offroad_core.costmap.pipeline.CostmapPipeline`
(fail-safe policy in its docstring), parameters are :mod:`offroad_core.costmap.params`,
message conversions :mod:`.conversions`, publishers :mod:`.outputs`, diagnostics
:mod:`.diagnostics`.

A refused input is counted by reason in /diagnostics and logged (throttled per reason); a
callback that raises is counted as a fault and the node goes on. When no frame was accepted
for ``stale_timeout`` (also from the start) the watchdog drops the fused evidence, publishes an
all-unknown grid every ``watchdog_period`` (or nothing, with ``stale_action: silent``) and no
clouds at all (so Nav2's own timeouts trip), and /diagnostics reports ERROR. Invalid
parameters: one clear error and exit status 2.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from offroad_core.costmap.params import PARAMETERS, CostmapConfig, validate
from offroad_core.costmap.pipeline import CostmapPipeline, InputError, quaternion_yaw
from offroad_core.exit_codes import EXIT_BAD_INPUT
from offroad_core.node_runtime import (
    CallbackGuard,
    ReasonLog,
    accept_runtime_changes,
    declare_parameters,
    params_files_usable,
    run_node,
)
from offroad_core.stamps import stamp_seconds
from offroad_costmap.conversions import intrinsics_from_camera_info, labels_from_image, model_info
from offroad_costmap.depth_io import DepthIO
from offroad_costmap.diagnostics import CostmapHealth, diagnostic_status
from offroad_costmap.outputs import Outputs
from offroad_seg_msgs.msg import SegmentationInfo

NODE_NAME = "offroad_costmap"


class CostmapNode(Node):
    """Labels in, OccupancyGrid out (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare and validate every parameter (one block), create the ROS entities."""
        super().__init__(NODE_NAME, **kwargs)
        self.config: CostmapConfig = declare_parameters(self, PARAMETERS, validate)
        c = self.config
        self._sensors = ReasonLog(lambda text: self.get_logger().warning(f"depth mode: {text}"))
        self._pipeline = CostmapPipeline(c, on_tables=self.get_logger().info,
                                         on_sensor=self._sensors)
        self._problems = ReasonLog(lambda text: self.get_logger().error(f"rejected: {text}"))
        self._guard = CallbackGuard(self.get_logger())
        self._last_accepted: float | None = None
        self._accepted = self._accepted_at_diag = self._rejected_at_diag = 0
        self._project_ms: list[float] = []
        self._stale_published = 0
        accept_runtime_changes(self, PARAMETERS, self._apply_parameters)

        reliability = (ReliabilityPolicy.RELIABLE if c.input_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        inputs = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._outputs = Outputs(self, c)
        self._depth_io = DepthIO(self, c, self._pipeline, self._guard, self._sensors)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        guard = self._guard
        self.create_subscription(Image, c.labels_topic, guard("labels", self._on_labels), inputs)
        self.create_subscription(SegmentationInfo, c.info_topic, guard("info", self._on_info),
                                 latched)
        self.create_subscription(CameraInfo, c.camera_info_topic,
                                 guard("camera_info", self._on_camera_info), inputs)
        if c.use_odom:
            self.create_subscription(Odometry, c.odom_topic, guard("odom", self._on_odom),
                                     QoSProfile(depth=50, reliability=reliability))
        self.create_timer(c.watchdog_period, guard("watchdog", self._watchdog))
        self.create_timer(c.diagnostics_period, guard("diagnostics", self._publish_diagnostics))
        self.get_logger().info(
            f"grid {c.geometry.nx}x{c.geometry.ny} cells at {c.resolution} m in "
            f"{c.output_frame}; camera at {c.pose}; fusion {'on' if c.fusion else 'off'}; "
            f"stale_timeout {c.stale_timeout} s ({c.stale_action})")

    def _apply_parameters(self, values: dict[str, Any]) -> None:
        """Runtime change of dynamic parameters: validated like at start, then applied."""
        self.config = validate(values)
        self._pipeline.reconfigure(self.config)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ callbacks
    def _on_info(self, msg: SegmentationInfo) -> None:
        """Label meaning from the model: ids, names and categories."""
        try:
            unmapped = self._pipeline.set_model_info(model_info(msg))
        except InputError as exc:
            self._problems(exc.reason, str(exc))
            return
        if unmapped:
            self.get_logger().warning("classes without a category give no evidence: "
                                      + ", ".join(unmapped), once=True)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """The newest calibration at the label resolution (tables rebuilt when it changes)."""
        try:
            self._pipeline.set_camera(intrinsics_from_camera_info(msg))
        except InputError as exc:
            self._problems(exc.reason, str(exc))

    def _on_odom(self, msg: Odometry) -> None:
        """Append the planar pose to the history (broken or future-stamped poses are refused)."""
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        try:
            self._pipeline.add_odometry(stamp_seconds(msg.header.stamp), p.x, p.y,
                                        quaternion_yaw(q.x, q.y, q.z, q.w), self._now())
        except InputError as exc:
            self._problems(exc.reason, str(exc))

    def _on_labels(self, msg: Image) -> None:
        """Decode, project, fuse and publish one label frame."""
        t0 = time.perf_counter()
        try:
            frame = self._pipeline.process(labels_from_image(msg),
                                           stamp_seconds(msg.header.stamp), self._now())
        except InputError as exc:
            self._problems(exc.reason, str(exc))
            return
        self._project_ms = [*self._project_ms[-99:], (time.perf_counter() - t0) * 1e3]
        self._accepted += 1
        self._last_accepted = self._now()
        self._outputs.perceived(frame, msg.header.stamp, self.config)
        self._depth_io.perceived(frame, msg.header.stamp, self.config)

    # ------------------------------------------------------------------ fail-safe
    def _stale(self) -> bool:
        return (self._last_accepted is None
                or self._now() - self._last_accepted > self.config.stale_timeout)

    def _watchdog(self) -> None:
        """Fail-safe: all-unknown grid and no clouds while no labels are accepted; fused
        evidence is dropped (perception that stopped is not trusted when it comes back)."""
        if not self._stale():
            return
        self._pipeline.clear()
        if self.config.stale_action == "unknown":
            self._stale_published += 1
            self._outputs.stale(self._pipeline.unknown_frame(), self.get_clock().now().to_msg(),
                                self.config)

    def _publish_diagnostics(self) -> None:
        c, p = self.config, self._problems
        new_rejected, self._rejected_at_diag = p.total - self._rejected_at_diag, p.total
        new_accepted, self._accepted_at_diag = self._accepted - self._accepted_at_diag, \
            self._accepted
        extra = ({"project_ms_median": f"{float(np.median(self._project_ms)):.2f}"}
                 if self._project_ms else {})
        extra.update(self._depth_io.diagnostics())
        health = CostmapHealth(
            stale=self._stale(), since_accepted=None if self._last_accepted is None
            else self._now() - self._last_accepted, stale_timeout=c.stale_timeout,
            have_info=self._pipeline.info is not None,
            have_camera_info=self._pipeline.camera is not None, accepted=self._accepted,
            new_accepted=new_accepted, rejected=dict(p.counts), new_rejected=new_rejected,
            last_problem=p.last, period=c.diagnostics_period, stale_grids=self._stale_published,
            faults=dict(self._guard.faults), extra=extra)
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [diagnostic_status(f"{self.get_name()}: costmap", c.base_frame, health)]
        self._pub_diag.publish(array)


def main(args: list[str] | None = None) -> int:
    """Run the node; exit status 2 for invalid parameters or params files, 0 on Ctrl-C or
    shutdown."""
    if not params_files_usable(NODE_NAME, args):
        return EXIT_BAD_INPUT
    return run_node(CostmapNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
