"""Depth-mode inputs: PointCloud2 bytes, depth images, alignment, extrinsics, stamp pairing."""

import math
import struct

import numpy as np
import pytest

from offroad_core.camera import CameraIntrinsics, CameraPose
from offroad_core.costmap.depth import DepthAlignment, DepthError, decode_depth
from offroad_core.costmap.extrinsics import FrameError, FrameTable, Rigid, StaticTree, optical_rigid
from offroad_core.costmap.pointcloud import (
    FLOAT32,
    UINT8,
    CloudError,
    Field,
    cloud_xyz,
    pack_cloud,
    read_fields,
)
from offroad_core.costmap.sensors import CloudMessage, DepthMessage, SensorSync


def test_cloud_round_trip_keeps_every_column_and_dtype():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    cls = rng.integers(0, 7, 50).astype(np.uint8)
    fields, step, data = pack_cloud([("x", xyz[:, 0]), ("y", xyz[:, 1]), ("z", xyz[:, 2]),
                                     ("class", cls)])
    assert step == 13 and [f.datatype for f in fields] == [FLOAT32] * 3 + [UINT8]
    cols = read_fields(fields, 50, 1, step, step * 50, data, False, ("x", "y", "z", "class"))
    np.testing.assert_array_equal(np.stack([cols["x"], cols["y"], cols["z"]], 1), xyz)
    np.testing.assert_array_equal(cols["class"], cls)


def test_cloud_big_endian_padded_rows_and_float64():
    # 2 rows x 2 points, point: z f8 at 0, x f4 at 8, y f4 at 12, 4 pad bytes; row pad 6 bytes
    fields = (Field("z", 0, 8), Field("x", 8, 7), Field("y", 12, 7))
    rows = []
    for r in range(2):
        row = b"".join(struct.pack(">dff", 10 * r + c + 0.5, r, c) + b"\0" * 4 for c in range(2))
        rows.append(row + b"\xff" * 6)
    x, y, z = cloud_xyz(fields, 2, 2, 20, 46, b"".join(rows), True)
    np.testing.assert_array_equal(x, [0, 0, 1, 1])
    np.testing.assert_array_equal(y, [0, 1, 0, 1])
    np.testing.assert_array_equal(z, [0.5, 1.5, 10.5, 11.5])


@pytest.mark.parametrize("case, reason", [
    ("no_z", "cloud_missing_fields"), ("count", "cloud_missing_fields"),
    ("too_large", "cloud_too_large"), ("truncated", "bad_cloud"), ("offset", "bad_cloud")])
def test_bad_clouds_are_refused_with_a_reason(case, reason):
    fields = [Field("x", 0, 7), Field("y", 4, 7), Field("z", 8, 7)]
    width, data = 10, bytes(12 * 10)
    if case == "no_z":
        fields = fields[:2]
    elif case == "count":
        fields[2] = Field("z", 8, 7, count=3)
    elif case == "too_large":
        width = 10**9                       # absurd count: refused before reading the data
    elif case == "truncated":
        data = data[:-1]
    elif case == "offset":
        fields[2] = Field("z", 10, 7)
    with pytest.raises(CloudError) as err:
        cloud_xyz(fields, width, 1, 12, 12 * width, data, False, max_points=1_000_000)
    assert err.value.reason == reason


def test_depth_16uc1_and_32fc1_mark_every_invalid_pixel():
    mm = np.array([[0, 1500], [65535, 10]], np.uint16)
    img = decode_depth("16UC1", 2, 2, 4, mm.tobytes())
    img16 = img.depth
    assert img.invalid == 1 and img.negative == 0
    np.testing.assert_allclose(img.depth, [[np.nan, 1.5], [65.535, 0.01]], rtol=1e-6)
    m = np.array([[np.nan, 0.0, -1.0], [np.inf, 2.5, -np.inf]], np.float32)
    img = decode_depth("32FC1", 2, 3, 12, m.tobytes())
    assert img.invalid == 5 and img.negative == 2
    assert np.isnan(img.depth).sum() == 5 and img.depth[1, 1] == 2.5
    padded = np.zeros((2, 8), np.uint8)                 # step 8 > 2 x 2 bytes
    padded[:, :4] = mm.view(np.uint8)
    assert decode_depth("16UC1", 2, 2, 8, padded.tobytes()).depth[0, 1] == img16[0, 1]


@pytest.mark.parametrize("encoding, size, reason", [
    ("rgb8", 16, "depth_bad_encoding"), ("16UC1", 7, "depth_bad_size"),
    ("32FC1", 8, "depth_bad_size")])
def test_bad_depth_images_are_refused(encoding, size, reason):
    with pytest.raises(DepthError) as err:
        decode_depth(encoding, 2, 2, 4, bytes(size))
    assert err.value.reason == reason


def test_alignment_reads_the_depth_pixel_under_each_label_pixel_centre():
    cam = CameraIntrinsics(480, 408, 300.0, 310.0, 239.5, 203.5)
    labels = cam.scaled(160, 136)
    align = DepthAlignment(labels, cam)
    index = np.arange(480 * 408, dtype=np.float32).reshape(408, 480)
    got = align.sample(index).reshape(136, 160)
    # the label pixel centre u' is the depth pixel centre (u' + 0.5) * 3 - 0.5 = 3 u' + 1
    v, u = np.mgrid[0:136, 0:160]
    np.testing.assert_array_equal(got, (3 * v + 1) * 480 + 3 * u + 1)
    with pytest.raises(DepthError) as err:
        align.sample(index[:-1])
    assert err.value.reason == "depth_size_mismatch"
    assert DepthAlignment(labels, labels).identity


def test_transforms_compose_like_the_camera_model():
    pose = CameraPose(0.3, -0.1, 0.9, 0.05, 0.3, -0.2)
    half = [math.sin(a / 2) for a in (pose.yaw,)]
    q_yaw = (0.0, 0.0, half[0], math.cos(pose.yaw / 2))
    assert np.allclose(Rigid.from_quaternion((0, 0, 0), q_yaw).rotation,
                       CameraPose(yaw=pose.yaw).rotation_body)
    tree = StaticTree()
    tree.add("base_link", "camera_link", Rigid.from_pose(pose))
    # REP-103 optical frame: q = (-0.5, 0.5, -0.5, 0.5) from the body frame
    tree.add("camera_link", "camera_optical_frame",
             Rigid.from_quaternion((0, 0, 0), (-0.5, 0.5, -0.5, 0.5)))
    found = tree.lookup("base_link", "camera_optical_frame")
    want = optical_rigid(pose)
    np.testing.assert_allclose(found.rotation, want.rotation, atol=1e-12)
    np.testing.assert_allclose(found.translation, want.translation)
    back = found.camera_pose()
    np.testing.assert_allclose([back.x, back.y, back.z, back.roll, back.pitch, back.yaw],
                               [0.3, -0.1, 0.9, 0.05, 0.3, -0.2], atol=1e-9)
    assert tree.lookup("base_link", "elsewhere") is None
    frames = FrameTable("base_link", {"camera_optical_frame": want})
    x, y, z = frames.to_base("/camera_optical_frame", 0.0).apply(
        np.float32([0.0]), np.float32([0.0]), np.float32([2.0]))
    np.testing.assert_allclose([x[0], y[0], z[0]],
                               want.translation + 2.0 * want.rotation[:, 2], rtol=1e-6)
    with pytest.raises(FrameError, match="lidar_frame"):
        frames.to_base("velodyne", 0.0)
    with pytest.raises(FrameError):
        Rigid.from_quaternion((0, 0, 0), (0, 0, 0, 0))


def _cloud(stamp, source="lidar", width=10, names="xyz"):
    fields = tuple(Field(n, 4 * i, FLOAT32) for i, n in enumerate(names))
    return CloudMessage(stamp, "lidar_link", fields, width, 1, 12, 12 * width, bytes(12 * width),
                        False, source)


def test_stamp_pairing_reports_unpaired_and_missing_sources():
    sync = SensorSync(0.03, depth=True, clouds=("lidar", "tof"), confidence=False,
                      max_points=1000)
    for stamp in (10.0, 10.1, 10.2):
        sync.add_depth(DepthMessage(stamp, "cam", "16UC1", 1, 1, 2, b"\0\0"))
        sync.add_cloud(_cloud(stamp + 0.025))
    paired = sync.take(10.1)
    assert paired.depth.stamp == 10.1
    assert [c.stamp for c in paired.clouds] == [pytest.approx(10.125)]
    assert [r for r, _ in paired.dropped] == ["cloud_missing"]           # tof never sent
    paired = sync.take(10.15)                # depth 0.05 s away, cloud 10.125: 0.025
    assert paired.depth is None and len(paired.clouds) == 1
    assert [r for r, _ in paired.dropped] == ["depth_unpaired", "cloud_missing"]
    assert sync.take(12.0).dropped[0][0] == "depth_missing"             # 1.8 s: silent
    with pytest.raises(CloudError) as err:
        sync.add_cloud(_cloud(10.3, width=5000))
    assert err.value.reason == "cloud_too_large"
    with pytest.raises(CloudError) as err:
        sync.add_cloud(_cloud(10.3, names="xy"))
    assert err.value.reason == "cloud_missing_fields"
    with pytest.raises(DepthError):
        sync.add_depth(DepthMessage(10.3, "cam", "bgr8", 1, 1, 3, b"\0\0\0"))


def test_clouds_move_with_the_robot_between_their_stamp_and_the_labels():
    from offroad_core.costmap.depthmode import planar_motion
    from offroad_core.costmap.fusion import Pose2D, PoseHistory

    poses = PoseHistory(5.0)
    poses.add(0.0, Pose2D(0.0, 0.0, 0.0))
    poses.add(1.0, Pose2D(2.0, 0.0, math.pi / 2))       # 2 m forward, turned left 90 deg
    moved = planar_motion(poses)(0.5, 1.0)               # cloud at 0.5 s, labels at 1.0 s
    # at 0.5 s the robot was at (1, 0) heading 45 deg; a point 1 m ahead of it then is at
    # odom (1 + cos 45, sin 45), seen from the pose at 1.0 s (2, 0, 90 deg)
    x, y, z = moved.apply(np.float32([1.0]), np.float32([0.0]), np.float32([0.3]))
    ox, oy = 1 + math.cos(math.pi / 4) - 2.0, math.sin(math.pi / 4)
    np.testing.assert_allclose([x[0], y[0], z[0]], [oy, -ox, 0.3], atol=1e-6)
    assert planar_motion(poses)(-3.0, 1.0) is None       # not covered: no correction
