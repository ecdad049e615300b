"""The costmap node under the fault matrix: its process, a DDS peer and the case runner.

One node process serves many cases in sequence. A case sends bad input, waits until
/diagnostics counts it under the expected reason, then sends good labels (and odometry when
the node uses it) and waits for their grid (the node still serves), checks every grid seen in
between is well formed (finite origin, only -1/0/50/100), that no grid carries a refused
frame's stamp, that the log named the reason the first time and nothing else was counted.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from matrix import NodeProcess, Peer, Problems, Tally

from offroad_core.camera import CameraIntrinsics
from offroad_core.ontology import CLASS_NAMES, CLASSES

NODE = "offroad_costmap"
PARAMS_FILE = Path(__file__).resolve().parents[2] / "offroad_costmap" / "config" / "costmap.yaml"
W, H = 160, 136
INTR = CameraIntrinsics.from_fov(W, H, 90)
BASE = {"resolution": 0.1, "camera_z": 1.0, "camera_pitch": 0.26, "diagnostics_period": 0.2}
SKY, GROUND, OBSTACLE = (CLASS_NAMES.index(n) for n in ("sky", "smooth_ground", "obstacle"))
GRID_VALUES = {-1, 0, 50, 100}


def costmap_args(**overrides: Any) -> list[str]:
    """``--ros-args --params-file costmap.yaml -p name:=value ...`` with the test's base."""
    args = [sys.executable, "-m", "offroad_costmap.costmap_node", "--ros-args",
            "--params-file", str(PARAMS_FILE)]
    for name, value in {**BASE, **overrides}.items():
        args += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
    return args


def scene_labels() -> np.ndarray:
    """Sky above, ground below, an obstacle in the middle (something for occlusion to hide)."""
    labels = np.full((H, W), GROUND, np.uint8)
    labels[: H // 3] = SKY
    labels[H // 2: H // 2 + 20, W // 2 - 10: W // 2 + 10] = OBSTACLE
    return labels


class CostmapPeer(Peer):
    """Publishes labels, SegmentationInfo, CameraInfo and odometry; collects grids."""

    def __init__(self) -> None:
        """Publishers and subscriptions on the node's default topic names."""
        super().__init__("fault_matrix_costmap_peer")
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from offroad_seg_msgs.msg import SegmentationInfo

        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pub = self.node.create_publisher
        self.labels_pub = pub(Image, "segmentation/labels", self.qos)
        self.info_pub = pub(SegmentationInfo, "segmentation/info", latched)
        self.cam_pub = pub(CameraInfo, "segmentation/camera_info", self.qos)
        self.odom_pub = pub(Odometry, "odom", QoSProfile(depth=50,
                                                         reliability=ReliabilityPolicy.RELIABLE))
        self.grids: list[Any] = []
        self.node.create_subscription(
            OccupancyGrid, "costmap/grid", self._on_grid,
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.Image, self.CameraInfo, self.Odometry = Image, CameraInfo, Odometry
        self.SegmentationInfo = SegmentationInfo
        self.use_odom = False
        self.x = 0.0

    def _on_grid(self, msg: Any) -> None:
        self.grids = [*self.grids[-300:], msg]

    def wait_for_node(self, node: NodeProcess) -> None:
        """Until the node subscribed to every input and publishes diagnostics."""
        ok = self.spin(40, lambda: self.labels_pub.get_subscription_count() > 0
                       and self.cam_pub.get_subscription_count() > 0
                       and (not self.use_odom or self.odom_pub.get_subscription_count() > 0)
                       and self.diag_count > 0)
        assert ok, f"node did not come up: {node.text()[-2000:]}"

    @staticmethod
    def stamp(offset: float = 0.0) -> Any:
        """A stamp ``offset`` seconds from now."""
        from builtin_interfaces.msg import Time

        ns = time.time_ns() + int(offset * 1e9)
        return Time(sec=ns // 10**9, nanosec=ns % 10**9)

    def info(self, **changes: Any) -> Any:
        """A valid SegmentationInfo for the ontology's classes, with ``changes``."""
        fields = {"class_ids": list(range(len(CLASS_NAMES))), "class_names": list(CLASS_NAMES),
                  "class_categories": [c.category.value for c in CLASSES], "ignore_value": 255,
                  "height": H, "width": W}
        return self.SegmentationInfo(**{**fields, **changes})

    def camera(self, **changes: Any) -> Any:
        """A valid CameraInfo at the label resolution, with ``changes``."""
        fields = {"width": W, "height": H, "distortion_model": "plumb_bob", "d": [0.0] * 5,
                  "k": [INTR.fx, 0.0, INTR.cx, 0.0, INTR.fy, INTR.cy, 0.0, 0.0, 1.0]}
        return self.CameraInfo(**{**fields, **changes})

    def labels(self, labels: np.ndarray | None = None, stamp: Any = None, **fields: Any) -> Any:
        """A mono8 label Image (``fields`` override header-less attributes)."""
        labels = scene_labels() if labels is None else labels
        msg = self.Image(encoding="mono8", height=labels.shape[0], width=labels.shape[1],
                         step=labels.shape[1])
        msg.data = np.ascontiguousarray(labels).tobytes()
        msg.header.stamp = stamp if stamp is not None else self.stamp()
        msg.header.frame_id = "camera_optical_frame"
        for name, value in fields.items():
            setattr(msg, name, value)
        return msg

    def odom(self, stamp: Any, x: float, y: float = 0.0, yaw: float = 0.0, **q: float) -> Any:
        """An Odometry at (x, y, yaw); ``q`` overrides quaternion components."""
        msg = self.Odometry()
        msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, "odom", "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        o = msg.pose.pose.orientation
        o.x, o.y, o.z, o.w = 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)
        for name, value in q.items():
            setattr(o, name, value)
        return msg

    def publish(self, msg: Any) -> None:
        """Publish on the topic of the message's type."""
        pub = {self.Image: self.labels_pub, self.CameraInfo: self.cam_pub,
               self.SegmentationInfo: self.info_pub, self.Odometry: self.odom_pub}[type(msg)]
        pub.publish(msg)

    def calibrate(self) -> None:
        """Send the good SegmentationInfo and CameraInfo."""
        self.publish(self.info())
        self.publish(self.camera())
        self.spin(0.3)

    def grid_for(self, stamp: Any, wait: float = 10.0) -> Any:
        """The grid stamped ``stamp`` (None if none arrives within ``wait``)."""
        def find() -> Any:
            return next((g for g in reversed(self.grids) if g.header.stamp == stamp), None)
        self.spin(wait, lambda: find() is not None)
        return find()

    def good_grid(self, labels: np.ndarray | None = None, wait: float = 10.0) -> Any:
        """Good labels (after a pose at their stamp when the node uses odometry); their grid."""
        stamp = self.stamp()
        if self.use_odom:
            self.x += 0.05
            self.publish(self.odom(stamp, self.x, -1.0, 0.2))
            self.spin(0.05)
        self.publish(self.labels(labels, stamp))
        return self.grid_for(stamp, wait)


def grid_problem(grid: Any) -> str:
    """'' if ``grid`` is well formed, else what is wrong with it."""
    o = grid.info.origin.position
    if not (math.isfinite(o.x) and math.isfinite(o.y) and math.isfinite(grid.info.resolution)):
        return f"grid origin ({o.x}, {o.y}) is not finite"
    values = set(np.unique(np.frombuffer(bytes(grid.data), np.int8)).tolist())
    if not values <= GRID_VALUES or len(grid.data) != grid.info.width * grid.info.height:
        return f"grid values {sorted(values)[:8]} / size {len(grid.data)}"
    return ""


def costmap_case(peer: CostmapPeer, node: NodeProcess, tally: Tally, seen: set[str],
                 label: str, send: Any, reason: str | None, needle: str = "",
                 after: Any = None) -> None:
    """``send()`` publishes the bad input (returning the stamps of labels it sent); it is
    counted as ``rejected_<reason>`` (``reason`` None: nothing is counted and the labels it
    sent get grids); ``after()`` restores what the case changed; then good labels are
    processed."""
    problems = Problems()
    mark, first_grid = node.mark(), len(peer.grids)
    before = peer.counter(f"rejected_{reason}") if reason else 0
    total = peer.counter("labels_rejected")
    stamps = send() or []
    if reason is not None:
        if not peer.wait_counter(f"rejected_{reason}", before + 1) and node.alive():
            problems.add("wrong", f"not counted as rejected_{reason} (last_problem "
                                  f"{peer.diag.get('last_problem')!r})")
        elif needle and needle not in peer.diag.get("last_problem", ""):
            problems.add("unclear", f"{needle!r} not in {peer.diag.get('last_problem')!r}")
        peer.spin(0.2)
        if any(g.header.stamp in stamps for g in peer.grids[first_grid:]):
            problems.add("wrong", "a grid was published for the refused labels")
    else:
        for stamp in stamps:
            if peer.grid_for(stamp, 5.0) is None:
                problems.add("wrong", "accepted labels gave no grid "
                                      f"({peer.diag.get('last_problem')})")
    if after is not None:
        after()
    if not node.alive():
        problems.add("crash", f"exit status {node.proc.returncode}: {node.text()[-1500:]}")
    elif peer.good_grid() is None:
        problems.add("hang", "the next good labels gave no grid within 10 s")
    for grid in peer.grids[first_grid:]:
        if grid_problem(grid):
            problems.add("wrong", grid_problem(grid))
            break
    if reason is not None and reason not in seen:
        if not node.wait_for_line(f"[{reason}, ", mark, 3.0):
            problems.add("unclear", f"no log line names {reason}")
        seen.add(reason)
    if any("Traceback" in line for line in node.output_since(mark)):
        problems.add("unclear", "traceback: " + " | ".join(node.output_since(mark))[-1500:])
    peer.fresh_diagnostics()
    extra = peer.counter("labels_rejected") - total - (reason is not None)
    if extra and node.alive():
        problems.add("wrong", f"{extra} more rejection(s) than expected: {peer.diag}")
    tally.record(label, problems)
