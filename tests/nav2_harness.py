"""Shared by ``tests/test_nav2_*.py``: the shipped Nav2 examples read the way Nav2 Jazzy reads
them, and our costmap node started with the shipped robot parameters and fed from the test
process over DDS.

What Nav2 subscribes to, with which QoS, is taken from its source (navigation2, branch jazzy):
StaticLayer ``map_topic`` with reliable + transient-local + keep_last(1) when
``map_subscribe_transient_local`` (else depth 10, volatile) (static_layer.cpp 78-98);
ObstacleLayer sources with ``rmw_qos_profile_sensor_data`` at depth 50 (obstacle_layer.cpp
228-229, 262-263); collision monitor point clouds with ``SensorDataQoS`` (pointcloud.cpp 63-66).
The costmap nodes are named ``local_costmap``/``global_costmap`` in namespaces
``/local_costmap``/``/global_costmap`` (controller_server.cpp 71-73, planner_server.cpp 67-69,
nav2_util node_utils.cpp add_namespaces 43-54).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from offroad_core.camera import Camera, CameraIntrinsics
from offroad_core.costmap.params import CostmapConfig, validate
from offroad_core.ontology import CLASS_NAMES, CLASSES
from offroad_core.testing import spin_until
from offroad_core.testing import stop_process as stop

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "launch" / "config"
ROBOT_YAML = CONFIG / "robot.yaml"
NAV2_FILES = ("nav2_local_costmap.yaml", "nav2_global_costmap.yaml", "nav2_collision_monitor.yaml")
W, H = 160, 136
INTRINSICS = CameraIntrinsics.from_fov(W, H, 90)
LATENCY = 0.03             # s from taking an image to its labels reaching our node (simulated)


def robot_params() -> dict[str, Any]:
    """The costmap node's section of the shipped robot.yaml."""
    return yaml.safe_load(ROBOT_YAML.read_text())["/**/offroad_costmap"]["ros__parameters"]


def robot_config() -> CostmapConfig:
    """robot.yaml validated like the node does."""
    return validate(robot_params())


@dataclass(frozen=True)
class Nav2Node:
    """One Nav2 node of a shipped example: where it lives and its parameters."""

    file: str
    namespace: str
    name: str
    params: dict[str, Any]


def nav2_nodes() -> list[Nav2Node]:
    """Every node section of every shipped Nav2 example (``ns: {node: ...}`` or ``node: ...``)."""
    nodes = []
    for name in NAV2_FILES:
        for key, value in yaml.safe_load((CONFIG / name).read_text()).items():
            if "ros__parameters" in value:
                nodes.append(Nav2Node(name, "/", key, value["ros__parameters"]))
            else:
                for node, section in value.items():
                    nodes.append(Nav2Node(name, f"/{key}", node, section["ros__parameters"]))
    return nodes


@dataclass(frozen=True)
class Subscription:
    """A subscription Nav2 creates for our outputs."""

    node: Nav2Node
    what: str            # "plugin.source" or "plugin"
    topic: str           # as written in the YAML (Nav2 resolves it in node's namespace)
    kind: str            # "grid" or "cloud"
    transient_local: bool
    reliable: bool
    depth: int


def subscriptions(node: Nav2Node) -> list[Subscription]:
    """The subscriptions Nav2 Jazzy creates from ``node``'s parameters for grids and clouds."""
    p, out = node.params, []
    for plugin in p.get("plugins", []):
        layer = p[plugin]
        if layer["plugin"] == "nav2_costmap_2d::StaticLayer":
            latched = layer.get("map_subscribe_transient_local", True)
            out.append(Subscription(node, plugin, layer.get("map_topic") or p["map_topic"],
                                    "grid", latched, True, 1 if latched else 10))
        elif layer["plugin"] in ("nav2_costmap_2d::ObstacleLayer", "nav2_costmap_2d::VoxelLayer"):
            for source in layer["observation_sources"].split():
                s = layer[source]
                assert s["data_type"] == "PointCloud2", f"{node.file}: {plugin}.{source}"
                out.append(Subscription(node, f"{plugin}.{source}", s.get("topic", source),
                                        "cloud", False, False, 50))
    for source in p.get("observation_sources", []) if node.name == "collision_monitor" else []:
        s = p[source]
        if s["type"] == "pointcloud":
            out.append(Subscription(node, source, s["topic"], "cloud", False, False, 5))
    return out


def qos_of(sub: Subscription) -> Any:
    """The rclpy QoS profile equal to the one Nav2 uses for ``sub``."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=sub.depth,
        reliability=ReliabilityPolicy.RELIABLE if sub.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if sub.transient_local
        else DurabilityPolicy.VOLATILE)


def ground_labels(config: CostmapConfig) -> np.ndarray:
    """(H, W) labels for the robot camera looking at flat ground: smooth ground, a rough band
    3-4 m ahead (CAUTION), water 5-6 m ahead (HAZARD), an obstacle patch (BLOCKED), sky."""
    camera = Camera(INTRINSICS, config.pose)
    v, u = np.mgrid[0:H, 0:W]
    xy, hit = camera.pixels_to_ground(np.stack([u.ravel(), v.ravel()], 1).astype(float))
    x, y = xy[:, 0], xy[:, 1]
    labels = np.full(H * W, CLASS_NAMES.index("sky"), np.uint8)
    labels[hit] = CLASS_NAMES.index("smooth_ground")
    labels[hit & (x > 3) & (x < 4)] = CLASS_NAMES.index("rough_ground")
    labels[hit & (x > 5) & (x < 6) & (np.abs(y) < 1)] = CLASS_NAMES.index("water")
    labels[hit & (x > 4.4) & (x < 4.8) & (y > 1) & (y < 2)] = CLASS_NAMES.index("obstacle")
    return labels.reshape(H, W)


def start_costmap_node(extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """Our costmap node with the shipped robot.yaml, in the launch's default namespace ""."""
    cmd = [sys.executable, "-m", "offroad_costmap.costmap_node", "--ros-args",
           "--params-file", str(ROBOT_YAML), *extra]
    return subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wall_stamp(offset: float = 0.0) -> Any:
    """builtin_interfaces/Time of the system clock plus ``offset`` seconds."""
    from builtin_interfaces.msg import Time

    ns = time.time_ns() + int(offset * 1e9)
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def seconds(stamp: Any) -> float:
    """A Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


class Graph:
    """rclpy nodes of the test process: a feeder standing in for the camera pipeline and the
    robot's odometry, plus Nav2 stand-ins created on demand with Nav2's names."""

    def __init__(self) -> None:
        """One context, one executor, the feeder's publishers."""
        import rclpy
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from offroad_seg_msgs.msg import SegmentationInfo

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: dict[str, Any] = {}
        self.feeder = self.node("nav2_test_feeder", "/")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        c = robot_params()
        pub = self.feeder.create_publisher
        self.labels_pub = pub(Image, c["labels_topic"], reliable)
        self.info_pub = pub(SegmentationInfo, c["info_topic"], latched)
        self.cam_pub = pub(CameraInfo, c["camera_info_topic"], reliable)
        self.odom_pub = pub(Odometry, c["odom_topic"], QoSProfile(
            depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.Image, self.CameraInfo, self.Odometry = Image, CameraInfo, Odometry
        self.SegmentationInfo = SegmentationInfo
        self.pose = (0.0, 0.0, 0.0)

    def node(self, name: str, namespace: str) -> Any:
        """The test node ``name`` in ``namespace`` (created once)."""
        key = f"{namespace.rstrip('/')}/{name}"
        if key not in self.nodes:
            node = self.rclpy.create_node(name, namespace=namespace, context=self.context)
            self.executor.add_node(node)
            self.nodes[key] = node
        return self.nodes[key]

    def subscribe(self, sub: Subscription, callback: Any) -> Any:
        """Subscribe as Nav2 would: node name and namespace, the YAML's topic string, its QoS."""
        from nav_msgs.msg import OccupancyGrid
        from sensor_msgs.msg import PointCloud2

        node = self.node(sub.node.name, sub.node.namespace)
        kind = OccupancyGrid if sub.kind == "grid" else PointCloud2
        return node.create_subscription(kind, sub.topic, callback, qos_of(sub))

    def spin(self, seconds_: float, until: Any = None) -> bool:
        """Spin for up to ``seconds_`` (or until ``until()``)."""
        return spin_until(self.executor, seconds_, until)

    def wait_for(self, proc: subprocess.Popen) -> None:
        """Until our node subscribes to labels, camera info, info and odometry."""
        pubs = (self.labels_pub, self.cam_pub, self.info_pub, self.odom_pub)
        ok = self.spin(30, lambda: all(p.get_subscription_count() > 0 for p in pubs))
        assert ok, f"costmap node did not come up: {stop(proc)}"

    def calibrate(self) -> None:
        """SegmentationInfo (latched) and one CameraInfo."""
        msg = self.SegmentationInfo(class_ids=list(range(len(CLASS_NAMES))),
                                    class_names=list(CLASS_NAMES), ignore_value=255, height=H,
                                    width=W)
        msg.class_categories = [c.category.value for c in CLASSES]
        self.info_pub.publish(msg)
        self.send_camera_info()

    def send_camera_info(self) -> None:
        """CameraInfo at the label resolution."""
        i = INTRINSICS
        self.cam_pub.publish(self.CameraInfo(
            width=i.width, height=i.height, distortion_model="plumb_bob", d=[0.0] * 5,
            k=[i.fx, 0.0, i.cx, 0.0, i.fy, i.cy, 0.0, 0.0, 1.0]))

    def send_odom(self, stamp: Any = None) -> None:
        """The robot's pose ``self.pose`` (x, y, yaw) in odom, stamped now."""
        x, y, yaw = self.pose
        msg = self.Odometry()
        msg.header.stamp = stamp if stamp is not None else wall_stamp()
        msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        msg.pose.pose.orientation.z = math.sin(yaw / 2)
        msg.pose.pose.orientation.w = math.cos(yaw / 2)
        self.odom_pub.publish(msg)

    def send_labels(self, labels: np.ndarray, stamp: Any) -> None:
        """One mono8 label image stamped ``stamp`` (the image stamp)."""
        msg = self.Image(encoding="mono8", height=labels.shape[0], width=labels.shape[1],
                         step=labels.shape[1])
        msg.data = np.ascontiguousarray(labels).tobytes()
        msg.header.stamp, msg.header.frame_id = stamp, "camera_optical_frame"
        self.labels_pub.publish(msg)

    def drive(self, seconds_: float, labels: np.ndarray | None, rate: float = 10.0,
              latency: float = LATENCY) -> list[Any]:
        """Odometry at 50 Hz and (unless None) labels at ``rate`` stamped ``latency`` s in the
        past, for ``seconds_``; returns the image stamps sent."""
        sent, end = [], time.monotonic() + seconds_
        next_odom = next_labels = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_odom:
                self.send_odom()
                next_odom += 0.02
            if labels is not None and now >= next_labels:
                stamp = wall_stamp(-latency)
                self.send_labels(labels, stamp)
                sent.append(stamp)
                next_labels += 1.0 / rate
            self.executor.spin_once(timeout_sec=0.002)
        return sent

    def close(self) -> None:
        """Destroy every node and the context."""
        self.executor.shutdown()
        for node in self.nodes.values():
            node.destroy_node()
        self.rclpy.shutdown(context=self.context)
