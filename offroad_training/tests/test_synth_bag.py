"""Synthetic rosbag2: round trip of every topic through the rosbags reader, both storages."""

import json
import math

import numpy as np
import pytest

from offroad_core.camera import R_BODY_FROM_OPTICAL
from offroad_training import synth
from offroad_training.synth.bag import TOPICS, bag_topics, camera_from_dict, write_bag
from offroad_training.synth.trajectory import drive_along_track

pytest.importorskip("rosbags")

LIDAR = synth.LidarSpec(x=0.1, z=1.1, pitch=0.05, rings=8, azimuth_resolution_deg=2.0,
                        max_range=40.0)
TOP = synth.TopDownSpec(0.2, -1.0, -4.0, 10.0, 8.0)
POINT_TYPES = {2: "u1", 4: "<u2", 7: "<f4"}


def _frames(world, cam, n=4, **kw):
    states = drive_along_track(world, n, rate_hz=5.0, speed=2.0, start_x=5.0)
    return [synth.render_frame(world, cam, seed=i, robot_pose=s.pose, time=s.time, topdown=TOP,
                               **kw) for i, s in enumerate(states)]


def _read(path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    got: dict[str, list] = {}
    with Reader(path) as reader:
        conns = {c.topic: c for c in reader.connections}
        for conn, stamp, raw in reader.messages():
            got.setdefault(conn.topic, []).append((stamp, ts.deserialize_cdr(raw, conn.msgtype)))
    return conns, got


def _points(msg) -> np.ndarray:
    """PointCloud2 -> structured array (fields from the message)."""
    dtype = np.dtype({"names": [f.name for f in msg.fields],
                      "formats": [POINT_TYPES[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    assert not msg.is_bigendian and msg.row_step == msg.point_step * msg.width
    return np.frombuffer(msg.data.tobytes(), dtype).reshape(msg.height, msg.width)


def _limited(depth: np.ndarray) -> np.ndarray:
    """The exact depth with the bag's default range limit (65.535 m, the 16UC1 limit)."""
    with np.errstate(invalid="ignore"):
        return np.where(depth <= 65.535, depth, np.nan)


def _matrix(q) -> np.ndarray:
    x, y, z, w = q.x, q.y, q.z, q.w
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@pytest.fixture(scope="module")
def relief_frames():
    world = synth.SyntheticWorld.generate(5, length=120.0, half_width=30.0, relief="gentle")
    cam = synth.default_camera(96, 80)
    return cam, _frames(world, cam, lidar=LIDAR)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_round_trip(tmp_path, storage, relief_frames):
    cam, frames = relief_frames
    path = tmp_path / "run"
    assert write_bag(path, iter(frames), storage=storage, rate_hz=5.0, start_ns=10**18,
                     sidecars={"world.json": {"seed": 5}}) == 4
    assert not list(tmp_path.glob(".*"))  # staging removed
    conns, got = _read(path)
    topics = bag_topics(depth=True, lidar=True)
    assert topics == TOPICS
    assert {c.topic: c.msgtype for c in conns.values()} == dict(topics.values())
    assert [q.durability.name for q in conns["/tf_static"].ext.offered_qos_profiles] == [
        "TRANSIENT_LOCAL"]
    stamps = [10**18 + i * 200_000_000 for i in range(4)]
    for topic, items in got.items():
        assert [s for s, _ in items] == (stamps[:1] if topic == "/tf_static" else stamps), topic
        for stamp, msg in items:
            headers = [t.header for t in msg.transforms] if topic.startswith("/tf") else [
                msg.header]
            for header in headers:
                assert header.stamp.sec * 10**9 + header.stamp.nanosec == stamp, topic

    statics = {t.child_frame_id: t for t in got["/tf_static"][0][1].transforms}
    body, optical, lidar = statics["camera_link"], statics["camera_optical_frame"], statics[
        "lidar_link"]
    assert body.header.frame_id == "base_link" == lidar.header.frame_id
    assert optical.header.frame_id == "camera_link"
    tr = body.transform.translation
    assert np.allclose([tr.x, tr.y, tr.z], cam.pose.translation)
    assert np.allclose(_matrix(body.transform.rotation), cam.pose.rotation_body)
    assert np.allclose(_matrix(optical.transform.rotation), R_BODY_FROM_OPTICAL)
    tr = lidar.transform.translation
    assert np.allclose([tr.x, tr.y, tr.z], LIDAR.pose.translation)
    assert np.allclose(_matrix(lidar.transform.rotation), LIDAR.pose.rotation_body)

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
        depth = got["/camera/depth/image_raw"][i][1]
        assert depth.header == img.header and (depth.encoding, depth.step) == ("16UC1", 192)
        metres = synth.decode_depth(depth.data.view("<u2").reshape(80, 96), "16UC1")
        limited = _limited(frame.depth)
        hit = np.isfinite(limited)
        assert np.array_equal(np.isfinite(metres), hit) and hit.mean() > 0.5
        assert np.abs(metres[hit] - frame.depth[hit]).max() <= 0.0005 + 1e-6
        cloud = got["/camera/depth/points"][i][1]
        assert cloud.header == img.header and (cloud.height, cloud.width) == (80, 96)
        assert not cloud.is_dense and [f.name for f in cloud.fields] == ["x", "y", "z"]
        pts = _points(cloud)
        xyz = np.stack([pts["x"], pts["y"], pts["z"]], -1)
        assert np.array_equal(xyz, synth.depth_to_points(limited, cam), equal_nan=True)

        grid = got["/ground_truth/class_map"][i][1]
        assert grid.header.frame_id == "base_link"
        assert (grid.info.width, grid.info.height) == (50, 40)
        assert math.isclose(grid.info.resolution, 0.2, rel_tol=1e-6)
        assert (grid.info.origin.position.x, grid.info.origin.position.y) == (-1.0, -4.0)
        assert np.array_equal(grid.data.reshape(40, 50), frame.topdown.classes.astype(np.int8))
        elev = got["/ground_truth/elevation"][i][1]
        assert (elev.encoding, elev.height, elev.width) == ("32FC1", 40, 50)
        assert elev.header == grid.header
        values = elev.data.view("<f4").reshape(40, 50)
        assert np.array_equal(values, frame.topdown.elevation) and np.ptp(values) > 0.05

        lid = got["/lidar/points"][i][1]
        assert lid.header.frame_id == "lidar_link" and lid.header.stamp == img.header.stamp
        assert [(f.name, f.offset, f.datatype) for f in lid.fields] == [
            ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7), ("ring", 16, 4)]
        scan = frame.lidar
        p = _points(lid)[0]
        assert lid.is_dense and lid.height == 1 and lid.width == len(scan.points) > 500
        assert np.array_equal(np.stack([p["x"], p["y"], p["z"]], 1), scan.points)
        assert np.array_equal(p["ring"], scan.ring)
        assert np.array_equal(p["intensity"], scan.intensity)
        truth = got["/ground_truth/lidar_points"][i][1]
        assert truth.header == lid.header
        assert [(f.name, f.offset, f.datatype) for f in truth.fields][-1] == ("class_id", 12, 2)
        q = _points(truth)[0]
        assert np.array_equal(np.stack([q["x"], q["y"], q["z"]], 1), scan.points)
        assert np.array_equal(q["class_id"], scan.class_id)

        x, y, yaw = frame.robot_pose
        odom = got["/odom"][i][1]
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
        pos, q = odom.pose.pose.position, odom.pose.pose.orientation
        assert (pos.x, pos.y, pos.z) == pytest.approx((x, y, frame.base_z))
        assert math.isclose(2 * math.atan2(q.z, q.w), yaw, abs_tol=1e-9)
        if i:
            assert odom.twist.twist.linear.x == pytest.approx(2.0, rel=0.02)
        (tf,) = got["/tf"][i][1].transforms
        assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")
        tr = tf.transform.translation
        assert (tr.x, tr.y, tr.z) == pytest.approx((x, y, frame.base_z))
        assert np.allclose(_matrix(tf.transform.rotation)[:2, :2],
                           [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    assert len({f.base_z for f in frames}) > 1  # the drive goes up and down
    assert camera_from_dict(json.loads((path / "camera.json").read_text())) == cam
    lidar_json = json.loads((path / "lidar.json").read_text())
    assert synth.LidarSpec(**{k: lidar_json[k] for k in LIDAR.__dataclass_fields__}) == LIDAR
    assert json.loads((path / "world.json").read_text()) == {"seed": 5}
    with pytest.raises(FileExistsError):
        write_bag(path, iter(frames), storage=storage)


def test_32fc1_depth_decodes_to_the_same_metres(tmp_path, relief_frames):
    _, frames = relief_frames
    decoded = {}
    for encoding in ("16UC1", "32FC1"):
        write_bag(tmp_path / encoding, frames[:2], depth_encoding=encoding)
        _, got = _read(tmp_path / encoding)
        msg = got["/camera/depth/image_raw"][1][1]
        assert msg.encoding == encoding and msg.step == 96 * (2 if encoding == "16UC1" else 4)
        data = msg.data.view("<u2" if encoding == "16UC1" else "<f4").reshape(80, 96)
        decoded[encoding] = synth.decode_depth(data, encoding)
    a, b = decoded["16UC1"], decoded["32FC1"]
    assert np.array_equal(np.isfinite(a), np.isfinite(b))
    assert np.nanmax(np.abs(a - b)) <= 0.001
    assert np.array_equal(b, _limited(frames[1].depth), equal_nan=True)
    with pytest.raises(ValueError, match="depth encoding"):
        write_bag(tmp_path / "bad", frames[:1], depth_encoding="mono16")


def test_without_depth_and_lidar_only_the_base_topics(tmp_path):
    world = synth.SyntheticWorld.generate(5)
    cam = synth.default_camera(64, 48)
    frames = _frames(world, cam, n=2, depth=False)
    write_bag(tmp_path / "b", frames)
    conns, got = _read(tmp_path / "b")
    assert set(conns) == {t for t, _ in bag_topics(depth=False, lidar=False).values()}
    assert "/camera/depth/image_raw" not in conns and "/lidar/points" not in conns
    assert not (tmp_path / "b" / "lidar.json").exists()
    assert (got["/ground_truth/elevation"][0][1].data.view("<f4") == 0).all()
    mixed = [frames[0], _frames(world, cam, n=1)[0]]
    with pytest.raises(ValueError, match="differs from the first"):
        write_bag(tmp_path / "m", mixed)
    assert not (tmp_path / "m").exists()


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
