"""Synthetic rosbag2: round trip through the rosbags reader for both storages."""

import json
import math

import numpy as np
import pytest

from offroad_training import synth
from offroad_training.synth.bag import TOPICS, camera_from_dict, write_bag
from offroad_training.synth.trajectory import drive_along_track

pytest.importorskip("rosbags")


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_round_trip(tmp_path, storage):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    world = synth.SyntheticWorld.generate(5)
    cam = synth.default_camera(96, 80)
    states = drive_along_track(world, 4, rate_hz=5.0, speed=2.0)
    frames = [synth.render_frame(world, cam, seed=i, robot_pose=s.pose, time=s.time,
                                 topdown=synth.TopDownSpec(0.2, -1.0, -4.0, 10.0, 8.0))
              for i, s in enumerate(states)]
    path = tmp_path / "run"
    assert write_bag(path, iter(frames), storage=storage, rate_hz=5.0, start_ns=10**18) == 4
    assert not list(tmp_path.glob(".*"))  # staging removed
    ts = get_typestore(Stores.ROS2_JAZZY)
    got: dict[str, list] = {}
    with Reader(path) as reader:
        assert reader.message_count == 4 * len(TOPICS)
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == dict(TOPICS.values())
        for conn, stamp, raw in reader.messages():
            got.setdefault(conn.topic, []).append((stamp, ts.deserialize_cdr(raw, conn.msgtype)))
    for topic, items in got.items():
        assert [s for s, _ in items] == [10**18 + i * 200_000_000 for i in range(4)], topic
        for (stamp, msg) in items:
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
    for i, frame in enumerate(frames):
        img = got["/camera/image_raw"][i][1]
        assert (img.encoding, img.width, img.height, img.step) == ("rgb8", 96, 80, 288)
        assert img.header.frame_id == "camera_optical_frame"
        assert np.array_equal(img.data.reshape(80, 96, 3), frame.rgb)
        lab = got["/ground_truth/labels"][i][1]
        assert lab.encoding == "mono8" and lab.header == img.header
        assert np.array_equal(lab.data.reshape(80, 96), frame.labels)
        info = got["/camera/camera_info"][i][1]
        assert info.header == img.header and (info.width, info.height) == (96, 80)
        assert np.allclose(info.k.reshape(3, 3), cam.intrinsics.k)
        grid = got["/ground_truth/class_map"][i][1]
        assert grid.header.frame_id == "base_link"
        assert (grid.info.width, grid.info.height) == (50, 40)
        assert math.isclose(grid.info.resolution, 0.2, rel_tol=1e-6)
        assert (grid.info.origin.position.x, grid.info.origin.position.y) == (-1.0, -4.0)
        assert np.array_equal(grid.data.reshape(40, 50), frame.topdown.classes.astype(np.int8))
        odom = got["/odom"][i][1]
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
        x, y, yaw = frame.robot_pose
        q = odom.pose.pose.orientation
        assert math.isclose(odom.pose.pose.position.x, x) and math.isclose(
            odom.pose.pose.position.y, y)
        assert math.isclose(2 * math.atan2(q.z, q.w), yaw, abs_tol=1e-9)
        if i:
            assert odom.twist.twist.linear.x == pytest.approx(2.0, rel=0.02)
    cam_back = camera_from_dict(json.loads((path / "camera.json").read_text()))
    assert cam_back == cam
    with pytest.raises(FileExistsError):
        write_bag(path, iter(frames), storage=storage)


def test_bad_storage_and_distorted_camera_info(tmp_path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    from offroad_core.camera import Camera, CameraIntrinsics, CameraPose

    world = synth.SyntheticWorld.generate(1)
    with pytest.raises(ValueError, match="storage"):
        write_bag(tmp_path / "x", [], storage="rosbag1")
    cam = Camera(CameraIntrinsics(64, 48, 50.0, 50.0, 32.0, 24.0, "plumb_bob",
                                  (-0.1, 0.01, 0.0, 0.0, 0.0)), CameraPose(z=1.0, pitch=0.2))
    frame = synth.render_frame(world, cam, topdown=synth.TopDownSpec(0.5, 0.0, -2.0, 4.0, 4.0))
    write_bag(tmp_path / "d", [frame])
    ts = get_typestore(Stores.ROS2_JAZZY)
    with Reader(tmp_path / "d") as reader:
        conn = next(c for c in reader.connections if c.topic == "/camera/camera_info")
        (_, _, raw), = reader.messages(connections=[conn])
        info = ts.deserialize_cdr(raw, conn.msgtype)
    assert info.distortion_model == "plumb_bob"
    assert np.allclose(info.d, [-0.1, 0.01, 0, 0, 0])
    assert CameraIntrinsics.from_camera_info(info.width, info.height, info.k, info.d,
                                             info.distortion_model) == cam.intrinsics
