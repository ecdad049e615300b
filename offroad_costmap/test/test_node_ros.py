"""Acceptance of the costmap node over real DDS: the node runs in its own process (started with
the shipped ``config/costmap.yaml`` through ``--params-file``), this test process publishes
labels, SegmentationInfo, CameraInfo and odometry and subscribes to the outputs with rclpy.

Label images are ray-cast from the independent test scene (``scene.py``); the expected grid is
the core (``GroundProjector``) run in this process on the same labels and parameters.
"""

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from offroad_core.camera import Camera, CameraIntrinsics
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, ModelInfo
from offroad_core.ontology import CLASS_NAMES, CLASSES
from offroad_core.stamps import stamp_seconds
from offroad_core.testing import spin_until
from offroad_core.testing import stop_process as stop_node
from offroad_costmap.test.scene import Scene

pytestmark = pytest.mark.ros

PARAMS_FILE = Path(__file__).parents[1] / "config" / "costmap.yaml"
W, H = 160, 136
INTR = CameraIntrinsics.from_fov(W, H, 90)
# Small grid and label size keep table building fast on a shared machine.
BASE = {"resolution": 0.1, "camera_x": 0.3, "camera_z": 1.0, "camera_pitch": 0.26,
        "diagnostics_period": 0.2, "publish_debug_image": True}
# How late the 10 Hz watchdog timer may run on a loaded machine. Measured: the all-unknown
# grid 591 ms after the last labels' grid reached the test at load 8-12 (budget 500 + 100 ms
# + this). The sum, 0.9 s, still fails a watchdog that waits twice stale_timeout (>= 1 s).
WATCHDOG_LATENESS_S = 0.3


def node_args(overrides: dict) -> list[str]:
    """``--ros-args --params-file costmap.yaml -p name:=value ...``."""
    args = [sys.executable, "-m", "offroad_costmap.costmap_node", "--ros-args",
            "--params-file", str(PARAMS_FILE)]
    for name, value in {**BASE, **overrides}.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["-p", f"{name}:={text}"]
    return args


def start_node(**overrides) -> subprocess.Popen:
    return subprocess.Popen(node_args(overrides), env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def expected_values(labels: np.ndarray, **overrides) -> tuple[np.ndarray, GridGeometry]:
    """The core's grid for ``labels`` with the node's parameters."""
    pipeline = CostmapPipeline(validate({**BASE, **overrides}))
    pipeline.set_model_info(ModelInfo(tuple(range(len(CLASS_NAMES))), CLASS_NAMES))
    pipeline.set_camera(INTR)
    frame = pipeline.process(labels, 0.0, 0.0)
    return frame.values, frame.geometry


def scene_labels(seed: int) -> np.ndarray:
    pose = validate(BASE).pose
    return Scene.random(seed).render(Camera(INTR, pose))


def grid_array(msg) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.int8).reshape(msg.info.height, msg.info.width)


class Peer:
    """rclpy peer in this test process."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from offroad_seg_msgs.msg import SegmentationInfo

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("costmap_test_peer", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pub = self.node.create_publisher
        self.labels_pub = pub(Image, "segmentation/labels", self.qos)
        self.info_pub = pub(SegmentationInfo, "segmentation/info", self.latched)
        self.cam_pub = pub(CameraInfo, "segmentation/camera_info", self.qos)
        self.odom_pub = pub(Odometry, "odom", QoSProfile(depth=50,
                                                         reliability=ReliabilityPolicy.RELIABLE))
        self.grids: list[tuple[object, float]] = []
        self.clouds: list = []
        self.debug: list = []
        self.diagnostics: list = []
        sub = self.node.create_subscription
        grid_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)
        sub(OccupancyGrid, "costmap/grid", lambda m: self.grids.append((m, time.monotonic())),
            grid_qos)
        sub(PointCloud2, "costmap/obstacles", self.clouds.append, self.qos)
        sub(Image, "costmap/debug_image", self.debug.append, self.qos)
        sub(DiagnosticArray, "/diagnostics", self.diagnostics.append, self.qos)
        self.Image, self.CameraInfo, self.SegmentationInfo = Image, CameraInfo, SegmentationInfo
        self.Odometry, self.OccupancyGrid, self.grid_qos = Odometry, OccupancyGrid, grid_qos

    def spin(self, seconds: float, until=None) -> bool:
        return spin_until(self.executor, seconds, until)

    def wait_for_node(self, proc: subprocess.Popen) -> None:
        ok = self.spin(30, lambda: self.labels_pub.get_subscription_count() > 0
                       and self.cam_pub.get_subscription_count() > 0
                       and self.info_pub.get_subscription_count() > 0)
        assert ok, f"node did not come up: {stop_node(proc)}"

    @staticmethod
    def stamp(offset: float = 0.0):
        from builtin_interfaces.msg import Time

        ns = time.time_ns() + int(offset * 1e9)
        return Time(sec=ns // 10**9, nanosec=ns % 10**9)

    def send_info(self, names=CLASS_NAMES) -> None:
        msg = self.SegmentationInfo(class_ids=list(range(len(names))), class_names=list(names),
                                    ignore_value=255, height=H, width=W)
        msg.class_categories = [c.category.value for c in CLASSES][: len(names)]
        self.info_pub.publish(msg)

    def send_camera_info(self, intr: CameraIntrinsics = INTR) -> None:
        self.cam_pub.publish(self.CameraInfo(
            width=intr.width, height=intr.height, distortion_model="plumb_bob",
            d=[0.0] * 5, k=[intr.fx, 0.0, intr.cx, 0.0, intr.fy, intr.cy, 0.0, 0.0, 1.0]))

    def labels_msg(self, labels: np.ndarray, stamp=None, encoding: str = "mono8"):
        msg = self.Image(encoding=encoding, height=labels.shape[0], width=labels.shape[1],
                         step=labels.shape[1])
        msg.data = np.ascontiguousarray(labels).tobytes()
        msg.header.stamp = stamp if stamp is not None else self.stamp()
        msg.header.frame_id = "camera_optical_frame"
        return msg

    def grid_for(self, stamp, wait: float = 10.0):
        """The grid with header.stamp == ``stamp`` (None if none arrives within ``wait``)."""
        def find():
            return next((m for m, _ in self.grids if m.header.stamp == stamp), None)
        self.spin(wait, lambda: find() is not None)
        return find()

    def send(self, labels: np.ndarray, stamp=None, wait: float = 10.0, **kwargs):
        msg = self.labels_msg(labels, stamp, **kwargs)
        self.labels_pub.publish(msg)
        return self.grid_for(msg.header.stamp, wait)

    def send_odom(self, stamp, x: float, y: float, yaw: float) -> None:
        msg = self.Odometry()
        msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, "odom", "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = (math.sin(yaw / 2),
                                                                    math.cos(yaw / 2))
        self.odom_pub.publish(msg)

    def latest_diagnostics(self):
        self.diagnostics.clear()
        self.spin(5, lambda: len(self.diagnostics) > 0)
        assert self.diagnostics, "no /diagnostics"
        status = self.diagnostics[-1].status[0]
        return status, {kv.key: kv.value for kv in status.values}

    def diagnostics_until(self, done, timeout: float = 10.0):
        """The first /diagnostics from now on whose values satisfy ``done`` (else the last):
        waits for the node's own account instead of a fixed delay (slow on a loaded machine)."""
        self.diagnostics.clear()

        def values():
            return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}
        self.spin(timeout, lambda: bool(self.diagnostics) and done(values()))
        assert self.diagnostics, "no /diagnostics"
        return self.diagnostics[-1].status[0], values()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def calibrated(proc: subprocess.Popen) -> Peer:
    """A peer whose SegmentationInfo and CameraInfo the node has (its diagnostics say so)."""
    peer = Peer()
    peer.wait_for_node(proc)
    peer.send_info()
    peer.send_camera_info()
    _, diag = peer.diagnostics_until(lambda d: d["have_segmentation_info"] == "True"
                                     and d["have_camera_info"] == "True")
    assert diag["have_segmentation_info"] == diag["have_camera_info"] == "True", diag
    return peer


def test_grid_equals_the_core_with_the_labels_stamp_latched_cloud_and_debug_image():
    proc = start_node()
    peer = None
    try:
        peer = calibrated(proc)
        for seed in (1, 2):
            labels = scene_labels(seed)
            peer.send_camera_info()
            stamp = peer.stamp()
            grid = peer.send(labels, stamp)
            assert grid is not None, f"no grid for frame {seed}"
            values, geometry = expected_values(labels)
            assert grid.header.stamp == stamp and grid.header.frame_id == "base_link"
            assert (grid.info.width, grid.info.height) == (geometry.nx, geometry.ny)
            assert grid.info.resolution == pytest.approx(0.1)
            assert grid.info.origin.position.x == pytest.approx(-2.0)
            assert grid.info.origin.position.y == pytest.approx(-5.0)
            np.testing.assert_array_equal(grid_array(grid), values)
            assert (values == 100).sum() > 5 and (values == 0).sum() > 500
        peer.spin(2, lambda: any(c.header.stamp == stamp for c in peer.clouds)
                  and any(d.header.stamp == stamp for d in peer.debug))
        cloud = next(c for c in peer.clouds if c.header.stamp == stamp)
        points = np.frombuffer(bytes(cloud.data), np.float32).reshape(-1, 3)
        xs, ys = geometry.cell_centres()
        lethal = values >= 100
        assert cloud.header.frame_id == "base_link" and len(points) == lethal.sum()
        np.testing.assert_allclose(points[:, :2], np.stack([xs[lethal], ys[lethal]], 1),
                                   atol=1e-5)
        np.testing.assert_allclose(points[:, 2], 0.2)
        image = next(d for d in peer.debug if d.header.stamp == stamp)
        assert (image.encoding, image.width, image.height) == ("rgb8", geometry.ny, geometry.nx)
        # A subscriber that joins late still gets the newest grid (reliable, transient-local).
        late: list = []
        peer.node.create_subscription(peer.OccupancyGrid, "costmap/grid", late.append,
                                      peer.grid_qos)
        assert peer.spin(5, lambda: len(late) > 0), "no latched grid for a late subscriber"
        assert late[0].header.stamp == stamp
        publishers = peer.node.get_publishers_info_by_topic("/costmap/grid")
        assert len(publishers) == 1
        qos = publishers[0].qos_profile
        assert qos.reliability == peer.grid_qos.reliability
        assert qos.durability == peer.grid_qos.durability
        status, diag = peer.latest_diagnostics()
        assert status.level == DiagnosticStatus.OK, status.message
        assert diag["labels_accepted"] == "2" and diag["labels_rejected"] == "0"
    finally:
        if peer is not None:
            peer.close()
        out = stop_node(proc)
    assert proc.returncode == 0, out


def test_stale_labels_give_an_all_unknown_grid_and_error_within_timeout_plus_one_period():
    stale_timeout, period = 0.5, 0.1
    proc = start_node(stale_timeout=stale_timeout, watchdog_period=period)
    peer = None
    try:
        peer = calibrated(proc)
        free = np.zeros((H, W), np.uint8)
        free[: H // 3] = 6  # sky
        for _ in range(10):  # 10 Hz stream
            started = time.monotonic()
            peer.send_camera_info()
            last_stamp = peer.stamp()
            assert peer.send(free, last_stamp) is not None
            answered = time.time()  # the node accepted the last labels before this
            peer.spin(0.1 - (time.monotonic() - started))
        assert (grid_array(peer.grids[-1][0]) == 0).sum() > 100
        peer.grids.clear()

        def unknown_grid():
            return next(((m, t) for m, t in peer.grids if (grid_array(m) == -1).all()), None)
        assert peer.spin(5, lambda: unknown_grid() is not None), "no all-unknown grid"
        msg, arrived = unknown_grid()
        assert msg.header.frame_id == "base_link"
        # The fail-safe grid carries the node's clock when it was published (system time, as
        # the labels' stamps): timed by the node itself, not by delivery to this process. The
        # node accepted the last labels after their stamp and before their grid reached us.
        after_stamp = stamp_seconds(msg.header.stamp) - stamp_seconds(last_stamp)
        after_answer = stamp_seconds(msg.header.stamp) - answered
        print(f"\nstale -> all-unknown grid published {after_stamp * 1e3:.0f} ms after the last "
              f"labels' stamp, {after_answer * 1e3:.0f} ms after their grid reached the test "
              f"(stale_timeout {stale_timeout * 1e3:.0f} ms + watchdog {period * 1e3:.0f} ms)")
        # never before stale_timeout after the last accepted labels: exact, no slack
        assert after_stamp > stale_timeout
        # within stale_timeout + one watchdog period of accepting them, plus
        # WATCHDOG_LATENESS_S for a 10 Hz timer run late by a loaded machine
        assert after_answer <= stale_timeout + period + WATCHDOG_LATENESS_S
        assert not any((grid_array(m) == 0).any() for m, t in peer.grids if t > arrived)
        status, diag = peer.latest_diagnostics()
        assert status.level == DiagnosticStatus.ERROR and "stale" in status.message, status.message
        assert int(diag["unknown_grids_published_while_stale"]) >= 1
        # labels resume: the grid is back at once
        peer.send_camera_info()
        grid = peer.send(free)
        assert grid is not None and (grid_array(grid) == 0).sum() > 100
    finally:
        if peer is not None:
            peer.close()
        out = stop_node(proc)
    assert proc.returncode == 0, out


def test_old_missing_and_bad_inputs_are_counted_and_the_node_keeps_going():
    proc = start_node()
    peer = None
    try:
        peer = Peer()
        peer.wait_for_node(proc)
        labels = scene_labels(3)
        # each step waits for the node's diagnostics to account for it (not a fixed delay)
        assert peer.send(labels, wait=0.5) is None          # no SegmentationInfo yet
        _, diag = peer.diagnostics_until(lambda d: d["labels_rejected"] == "1")
        assert diag["rejected_no_segmentation_info"] == "1"
        peer.send_info()
        peer.diagnostics_until(lambda d: d["have_segmentation_info"] == "True")
        assert peer.send(labels, wait=0.5) is None          # no camera_info yet
        status, diag = peer.diagnostics_until(lambda d: d["labels_rejected"] == "2")
        assert diag["rejected_no_camera_info"] == "1"
        assert status.level == DiagnosticStatus.ERROR and "no CameraInfo" in status.message
        assert (grid_array(peer.grids[-1][0]) == -1).all()  # the watchdog's unknown grid
        peer.send_camera_info()
        peer.diagnostics_until(lambda d: d["have_camera_info"] == "True")
        for _ in range(3):                                  # older than stale_timeout
            assert peer.send(labels, peer.stamp(-1.0), wait=0.3) is None
        assert peer.send(labels[:, :W - 4].copy(), wait=0.3) is None   # wrong size
        assert peer.send(np.zeros((H, W), np.uint8), encoding="rgb8", wait=0.3) is None
        bad = peer.labels_msg(labels)
        bad.data = bytes(bad.data)[:-10]                    # truncated
        peer.labels_pub.publish(bad)
        peer.spin(0.3)
        grid = peer.send(labels)
        assert grid is not None, "node stopped after bad input"
        np.testing.assert_array_equal(grid_array(grid), expected_values(labels)[0])
        status, diag = peer.latest_diagnostics()
        assert diag["rejected_stale"] == "3"
        assert diag["rejected_size_mismatch"] == "1"
        assert diag["rejected_bad_encoding"] == "1"
        assert diag["rejected_truncated_data"] == "1"
        assert diag["labels_rejected"] == "8" and diag["labels_accepted"] == "1"
        assert proc.poll() is None
    finally:
        if peer is not None:
            peer.close()
        out = stop_node(proc)
    assert proc.returncode == 0, out
    assert out.count("[stale, ") == 1, out    # throttled per reason: 3 rejects, one log line
    assert "labels are 1." in out and "156x136 but SegmentationInfo says 160x136" in out


def test_odom_output_uses_the_pose_at_the_image_stamp_and_fusion_keeps_evidence():
    # The stamps are fixed from t0, 0.1-0.3 s in the past, while this process computes the
    # expected grid between the frames: on a loaded machine that outlasted stale_timeout 0.5 s
    # (labels refused as stale, fused evidence dropped); staleness is tested above.
    proc = start_node(use_odom=True, output_frame="odom", decay_time=3.0, stale_timeout=5.0)
    peer = None
    try:
        peer = calibrated(proc)
        assert peer.spin(10, lambda: peer.odom_pub.get_subscription_count() > 0)
        t0 = time.time() - 0.2
        for k in range(3):                                  # x = 10 t, y = -2, yaw 0
            stamp = peer.stamp(t0 + 0.2 * k - time.time())
            peer.send_odom(stamp, 2.0 * k, -2.0, 0.0)
        peer.spin(0.2)
        labels = scene_labels(4)
        stamp = peer.stamp(t0 + 0.1 - time.time())          # between odom 0 and 1: x = 1
        grid = peer.send(labels, stamp)
        assert grid is not None
        values, geometry = expected_values(labels)
        assert grid.header.frame_id == "odom"
        # a square window centred on the robot at the image stamp (1, -2)
        side = grid.info.width * 0.1
        assert grid.info.height == grid.info.width and side >= 2 * (0.3 + 8.0)
        assert grid.info.origin.position.x + side / 2 == pytest.approx(1.0)
        assert grid.info.origin.position.y + side / 2 == pytest.approx(-2.0)

        def placed(msg, x: float, y: float) -> np.ndarray:
            """``values`` (base_link, yaw 0) placed at robot position (x, y) in msg's window."""
            out = np.full((msg.info.height, msg.info.width), -1, np.int8)
            c0 = round((x + geometry.origin_x - msg.info.origin.position.x) / 0.1)
            r0 = round((y + geometry.origin_y - msg.info.origin.position.y) / 0.1)
            out[r0:r0 + geometry.ny, c0:c0 + geometry.nx] = values
            return out
        np.testing.assert_array_equal(grid_array(grid), placed(grid, 1.0, -2.0))
        # A frame that observes nothing (all sky) 0.2 s later keeps the fused evidence where it
        # was seen; 2 m on, the window has moved with the robot (odom_window_step 1 m).
        sky = peer.send(np.full((H, W), 6, np.uint8), peer.stamp(t0 + 0.3 - time.time()))
        assert sky is not None
        assert sky.info.origin.position.x == pytest.approx(grid.info.origin.position.x + 2.0)
        np.testing.assert_array_equal(grid_array(sky), placed(sky, 1.0, -2.0))
    finally:
        if peer is not None:
            peer.close()
        out = stop_node(proc)
    assert proc.returncode == 0, out


def test_invalid_parameters_exit_2_with_every_problem():
    proc = subprocess.run(node_args({"occlusion": "cone", "resolution": 5.0,
                                     "caution_value": "high"}),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "occlusion: 'cone' is not one of column, ray" in proc.stderr
    assert "resolution out of range" in proc.stderr
    assert "caution_value:" in proc.stderr
