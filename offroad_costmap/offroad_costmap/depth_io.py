"""The costmap node's depth-mode wiring: subscriptions to depth images, their CameraInfo,
clouds and confidence images, the labelled cloud publisher, TF look-ups, diagnostics values.

Wiring only: buffering, pairing and the per-frame work are the core's
(:mod:`offroad_core.costmap.depthmode`). A broken input, and a source that drops out of a
frame, is counted in /diagnostics as ``sensor_<reason>`` (its own counters: the labels are
not rejected for it), logged as a warning at most once per 5 s per reason, and the node goes
on; the labels of a frame whose depth sources all dropped out are projected on flat ground
(``grids_flat_mode``; ``last_grid_mode`` says which mode made the newest grid).

Extrinsics: ``extrinsics: parameters`` maps ``base_frame``, ``camera_frame`` and ``lidar_frame``
from the ``camera_*``/``lidar_*`` parameters (tested over DDS here); ``extrinsics: tf`` looks
up any frame with ``tf2_ros`` at the cloud's stamp (else the newest transform: static mounts).
``tf2_ros`` is not installable in this environment: that path is imported lazily, never run by
the tests here, and without ``tf2_ros`` the node refuses to start (exit status 2) with one line
saying so.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from offroad_core.costmap.depth import DepthError
from offroad_core.costmap.extrinsics import Rigid
from offroad_core.costmap.params import CostmapConfig
from offroad_core.costmap.pipeline import CostmapPipeline, GridFrame, InputError
from offroad_core.costmap.pointcloud import CloudError
from offroad_core.node_runtime import ReasonLog
from offroad_core.params import ConfigError
from offroad_costmap.conversions import (
    aligned_cloud,
    cloud_message,
    depth_message,
    intrinsics_from_camera_info,
    labelled_cloud,
    labels_from_image,
)
from offroad_costmap.outputs import CLOUD_QOS


def tf_lookup(node: Any, base_frame: str) -> Any:
    """``lookup(frame, stamp) -> Rigid | None`` on a tf2_ros buffer; ConfigError without it."""
    try:
        import tf2_ros
        from rclpy.time import Time
    except ImportError as exc:
        raise ConfigError(f"extrinsics: tf needs tf2_ros, which is not importable ({exc}); "
                          "use extrinsics: parameters (camera_*, lidar_*)") from None
    buffer = tf2_ros.Buffer()
    node._tf_listener = tf2_ros.TransformListener(buffer, node)
    failures = (tf2_ros.LookupException, tf2_ros.ConnectivityException,
                tf2_ros.ExtrapolationException)

    def lookup(frame: str, stamp: float) -> Rigid | None:
        for when in (Time(nanoseconds=int(stamp * 1e9)), Time()):
            try:
                t = buffer.lookup_transform(base_frame, frame, when)
            except failures:
                continue
            tr, q = t.transform.translation, t.transform.rotation
            return Rigid.from_quaternion((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))
        return None
    return lookup


class DepthIO:
    """Depth-mode subscriptions and outputs of one node (module docstring)."""

    def __init__(self, node: Any, config: CostmapConfig, pipeline: CostmapPipeline,
                 guard: Any, problems: ReasonLog) -> None:
        """Create what ``config.depth`` enables (nothing when the depth mode is off)."""
        self._pipeline, self._problems = pipeline, problems
        self.modes: Counter[str] = Counter()
        self.last_mode = ""
        self._pub = self._aligned = None
        d = config.depth
        if d is None:
            return
        reliability = (ReliabilityPolicy.RELIABLE if config.input_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=4, reliability=reliability)
        sub = node.create_subscription
        if d.depth:
            sub(Image, config.depth_topic, guard("depth", self._on_depth), qos)
        if d.depth_camera_info:
            sub(CameraInfo, config.depth_camera_info_topic,
                guard("depth_camera_info", self._on_depth_info), qos)
        for topic in d.clouds:
            sub(PointCloud2, topic, guard("cloud", self._cloud_callback(topic)), qos)
        if d.confidence:
            sub(Image, config.confidence_topic, guard("confidence", self._on_confidence), qos)
        if config.publish_labelled_cloud:
            self._pub = node.create_publisher(PointCloud2, config.labelled_cloud_topic,
                                              CLOUD_QOS)
        if d.depth:
            self._aligned = node.create_publisher(PointCloud2, config.aligned_cloud_topic,
                                                  CLOUD_QOS)
        if d.extrinsics == "tf":
            pipeline.depth.lookup = tf_lookup(node, d.base_frame)

    def _on_depth(self, msg: Image) -> None:
        try:
            self._pipeline.depth.add_depth(depth_message(msg))
        except DepthError as exc:
            self._problems(exc.reason, str(exc))

    def _on_depth_info(self, msg: CameraInfo) -> None:
        try:
            self._pipeline.depth.depth_camera = intrinsics_from_camera_info(msg)
        except InputError as exc:
            self._problems(f"depth_{exc.reason}", str(exc))

    def _cloud_callback(self, topic: str) -> Any:
        def on_cloud(msg: PointCloud2) -> None:
            try:
                self._pipeline.depth.add_cloud(cloud_message(msg, topic))
            except CloudError as exc:
                self._problems(exc.reason, str(exc))
        return on_cloud

    def _on_confidence(self, msg: Image) -> None:
        try:
            image = labels_from_image(msg)
        except InputError as exc:
            self._problems(f"confidence_{exc.reason}", str(exc))
            return
        stamp = msg.header.stamp
        self._pipeline.depth.add_confidence(stamp.sec + stamp.nanosec * 1e-9, image.copy())

    def perceived(self, frame: GridFrame, stamp: Any, config: CostmapConfig) -> None:
        """Count the frame's mode; publish its labelled cloud (depth mode, base_link)."""
        self.modes[frame.mode] += 1
        self.last_mode = frame.mode
        if frame.depth is None:
            return
        if self._pub is not None:
            d = config.depth
            points = frame.depth.points(d.labelled_min_level, d.labelled_max_points)
            self._pub.publish(labelled_cloud(points, config.base_frame, stamp))
        if self._aligned is not None and self._aligned.get_subscription_count() > 0:
            xyz = frame.depth.aligned_points()
            if xyz is not None:
                self._aligned.publish(aligned_cloud(xyz, config.camera_frame, stamp))

    def diagnostics(self) -> dict[str, str]:
        """Diagnostics values of the depth mode (empty when it is off)."""
        if self._pipeline.depth is None:
            return {}
        values = {"grids_depth_mode": str(self.modes["depth"]),
                  "grids_flat_mode": str(self.modes["flat"]), "last_grid_mode": self.last_mode,
                  "sensor_problems": str(self._problems.total)}
        values.update({f"sensor_{r}": str(n) for r, n in sorted(self._problems.counts.items())})
        return values
