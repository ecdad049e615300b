"""The robot's install: both nodes start and process a frame in a virtual environment that has
only the runtime core (``offroad_core``), ROS 2 and the runtime dependencies — no torch, no
``offroad_training``, no training extras (docs/architecture.md, docker/robot.Dockerfile).

The environment is built for real with pip from the project's pinned versions (the wheels come
from pip's cache after ``make setup``; about a minute), the nodes run from this workspace's
``install/`` with that environment's interpreter, and this test process talks to them over DDS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install"
# What the robot image installs besides apt's ROS 2 (docker/robot.Dockerfile): the runtime
# message packages, rclpy, and the core's own dependencies.
ROS_RUNTIME = ["ros-jazzy-rclpy[fastrtps]", "ros-jazzy-std-msgs", "ros-jazzy-builtin-interfaces",
               "ros-jazzy-geometry-msgs", "ros-jazzy-sensor-msgs", "ros-jazzy-nav-msgs",
               "ros-jazzy-diagnostic-msgs", "ros-jazzy-lifecycle-msgs",
               "ros-jazzy-rosgraph-msgs"]
TRAINING_ONLY = ("torch", "offroad_training", "albumentations", "onnxscript")
H, W = 48, 64

pytestmark = [pytest.mark.slow, pytest.mark.ros, pytest.mark.timeout(900)]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def robot_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("robot") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "-c", str(ROOT / "requirements" / "constraints.txt")]
    _run([*pip, *ROS_RUNTIME, "setuptools<80"], timeout=900)
    source = venv.parent / "offroad_core"  # a copy: building in the tree would leave build/
    shutil.copytree(ROOT / "offroad_core", source, ignore=shutil.ignore_patterns(
        "tests", "build", "*.egg-info", "__pycache__"))
    _run([*pip, f"{source}[qnn]"], timeout=900)
    probe = ("import importlib.util as u; print([m for m in " + repr(TRAINING_ONLY)
             + " if u.find_spec(m)])")
    assert _run([str(python), "-c", probe], cwd=venv).stdout.strip() == "[]"
    return python


def _node_env(python: Path) -> dict[str, str]:
    """The environment ``source install/local_setup.bash`` gives on top of the robot venv (this
    workspace's packages only: the main environment's paths are removed first)."""
    main_venv = str(Path(sys.executable).parents[1])
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH",
                         "COLCON_PREFIX_PATH", "LD_LIBRARY_PATH",
                         "_ROS_WHEELS_BOOTSTRAP_COMPLETE")}  # the wheels re-exec to set it
    base["PATH"] = os.pathsep.join([str(python.parent)] + [
        p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(main_venv)])
    base["AMENT_PREFIX_PATH"] = str(python.parents[1])
    dump = subprocess.run(["bash", "-c", f"source {INSTALL / 'local_setup.bash'} && env -0"],
                          env=base, capture_output=True, check=True).stdout
    env = dict(item.split("=", 1) for item in dump.decode().split("\0") if "=" in item)
    assert main_venv not in env.get("PYTHONPATH", "")
    return env


def test_both_nodes_run_a_frame_without_torch_or_training(robot_python, tmp_path):
    import rclpy
    from nav_msgs.msg import OccupancyGrid
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from offroad_core.testing import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny.onnx", H, W)
    env = _node_env(robot_python)
    check = _run([str(robot_python), "-c", "import sys, offroad_seg_node.segmentation_node, "
                  "offroad_costmap.costmap_node; print(sorted(m for m in sys.modules if "
                  "m.split('.')[0] in ('torch', 'offroad_training')))"], env=env, cwd=tmp_path)
    assert check.stdout.strip() == "[]"
    seg = subprocess.Popen(
        [str(robot_python), "-m", "offroad_seg_node.segmentation_node", "--ros-args",
         "-p", f"model_path:={model}", "-p", "provider:=cpu", "-p", "use_camera_info:=true",
         "-p", "qos_reliability:=reliable", "-p", "image_topic:=image",
         "-p", "camera_info_topic:=camera_info"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    costmap = subprocess.Popen(
        [str(robot_python), "-m", "offroad_costmap.costmap_node", "--ros-args",
         "-p", "stale_timeout:=5.0", "-p", "camera_pitch:=0.4", "-p", "max_range:=6.0"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("robot_venv_peer")
    try:
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        labels, grids = [], []
        node.create_subscription(Image, "segmentation/labels", labels.append, reliable)
        node.create_subscription(OccupancyGrid, "costmap/grid", grids.append, latched)
        image_pub = node.create_publisher(Image, "image", reliable)
        info_pub = node.create_publisher(CameraInfo, "camera_info", reliable)
        rgb = np.random.default_rng(0).integers(0, 256, (2 * H, 2 * W, 3), dtype=np.uint8)
        deadline = time.monotonic() + 120
        sent = None
        while time.monotonic() < deadline and not (labels and any(
                g.header.stamp == sent for g in grids)):
            assert seg.poll() is None and costmap.poll() is None, "a node exited"
            if image_pub.get_subscription_count():
                stamp = node.get_clock().now().to_msg()
                f = float(W)
                info = CameraInfo(width=2 * W, height=2 * H, k=[f, 0.0, W - 0.5, 0.0, f,
                                                                H - 0.5, 0.0, 0.0, 1.0])
                info.header.stamp = stamp
                info_pub.publish(info)
                msg = Image(height=2 * H, width=2 * W, encoding="rgb8", step=6 * W)
                msg.header.stamp, msg.header.frame_id = stamp, "camera_optical_frame"
                msg.data = rgb.tobytes()
                image_pub.publish(msg)
                sent = stamp
            rclpy.spin_once(node, timeout_sec=0.5)
        assert labels, "no label image from the segmentation node"
        assert (labels[-1].height, labels[-1].width) == (H, W)
        assert any(g.header.stamp == sent for g in grids), "no grid for the frame"
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        outputs = []
        for proc in (seg, costmap):
            proc.send_signal(2)
            outputs.append(proc.communicate(timeout=30)[0])
    assert seg.returncode == 0 and costmap.returncode == 0, "\n".join(outputs)
