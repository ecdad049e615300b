"""The costmap node's depth mode over real DDS: labels + depth image (at twice the label
resolution, with its own CameraInfo) + a LiDAR cloud in, grid + labelled cloud out, equal to the
core (``CostmapPipeline``) run in this process on the same inputs; bad inputs counted and
survived. Scenes: ``depth_scene.py`` (analytic ray casting)."""

import numpy as np
import pytest
from rclpy.duration import Duration

from offroad_core.camera import Camera, CameraPose
from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, ModelInfo
from offroad_core.costmap.pointcloud import Field, cloud_xyz, pack_cloud, read_fields
from offroad_core.costmap.sensors import CloudMessage, DepthMessage
from offroad_core.ontology import CLASS_NAMES
from offroad_costmap.test.depth_scene import Box, ReliefScene
from offroad_costmap.test.test_node_ros import BASE, INTR, Peer, grid_array, start_node, stop_node

pytestmark = pytest.mark.ros

CAMERA = INTR.scaled(320, 272)          # the depth image's camera: 2 x the labels
LIDAR = CameraPose(0.0, 0.0, 1.3)
DEPTH = {"depth_topic": "camera/depth/image_raw", "depth_camera_info_topic": "camera/camera_info",
         "cloud_topics": "lidar/points", "lidar_z": LIDAR.z, "terrain_resolution": 0.2,
         "sync_tolerance": 0.05, "labelled_cloud_points": "lethal", "stale_timeout": 5.0}
SCENE = ReliefScene(boxes=[Box(4.0, 4.4, -1.5, -0.7, 0.9, cls=3), Box(-1.8, -1.4, 2, 2.6, 0.5)],
                    ramp_start=3.0, ramp_grade=0.1, patches=[(5.0, 1.0, 0.5, 4)])


def inputs():
    pose = validate(BASE).pose
    labels, _ = SCENE.render(Camera(INTR, pose))
    _, depth = SCENE.render(Camera(CAMERA, pose))
    pts, _ = SCENE.lidar((LIDAR.x, LIDAR.y, LIDAR.z), rings=32, columns=720)
    return labels, depth, pts


def depth_image(peer, depth, stamp, encoding="16UC1", size=None):
    h, w = size or depth.shape
    if encoding == "16UC1":
        data = np.nan_to_num(depth * 1000, nan=0).astype(np.uint16)[:h, :w].tobytes()
    else:
        data = depth.astype(np.float32)[:h, :w].tobytes()
    msg = peer.Image(encoding=encoding, height=h, width=w, step=w * (2 if encoding == "16UC1"
                                                                       else 4))
    msg.data = data
    msg.header.stamp, msg.header.frame_id = stamp, "camera_optical_frame"
    return msg


def cloud(peer, pts, stamp, frame="lidar_link", names=("x", "y", "z"), width=None):
    from sensor_msgs.msg import PointCloud2, PointField

    fields, step, data = pack_cloud([(n, pts[:, i]) for i, n in enumerate(names)])
    msg = PointCloud2(height=1, width=width or len(pts), point_step=step,
                      row_step=step * len(pts), is_dense=True)
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=1)
                  for f in fields]
    msg.data = data
    msg.header.stamp, msg.header.frame_id = stamp, frame
    return msg


def core(labels, depth_msg, cloud_msgs, stamp):
    """The offline core on the same inputs (the messages as the node receives them)."""
    pipeline = CostmapPipeline(validate({**BASE, **DEPTH}))
    pipeline.set_model_info(ModelInfo(tuple(range(len(CLASS_NAMES))), CLASS_NAMES))
    pipeline.set_camera(INTR)
    pipeline.depth.depth_camera = CAMERA
    t = stamp.sec + stamp.nanosec * 1e-9
    if depth_msg is not None:
        pipeline.depth.add_depth(DepthMessage(t, "camera_optical_frame", depth_msg.encoding,
                                              depth_msg.height, depth_msg.width, depth_msg.step,
                                              bytes(depth_msg.data)))
    for m in cloud_msgs:
        s = m.header.stamp
        fields = tuple(Field(f.name, f.offset, f.datatype, f.count) for f in m.fields)
        pipeline.depth.add_cloud(CloudMessage(s.sec + s.nanosec * 1e-9, m.header.frame_id,
                                              fields, m.width, m.height, m.point_step,
                                              m.row_step, bytes(m.data), False, "lidar/points"))
    return pipeline.process(labels, t, t)


def send_camera_infos(peer):
    peer.send_camera_info()
    peer.cam_pub.publish(peer.CameraInfo(
        width=CAMERA.width, height=CAMERA.height, distortion_model="plumb_bob", d=[0.0] * 5,
        k=[CAMERA.fx, 0.0, CAMERA.cx, 0.0, CAMERA.fy, CAMERA.cy, 0.0, 0.0, 1.0]))


def test_depth_and_lidar_give_the_cores_grid_and_labelled_cloud_and_bad_input_is_survived():
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    proc = start_node(**DEPTH)
    peer = None
    try:
        peer = Peer()
        qos = peer.qos
        depth_pub = peer.node.create_publisher(Image, "camera/depth/image_raw", qos)
        info_pub = peer.node.create_publisher(CameraInfo, "camera/camera_info", qos)
        cloud_pub = peer.node.create_publisher(PointCloud2, "lidar/points", qos)
        points: list = []
        peer.node.create_subscription(PointCloud2, "costmap/labelled_points", points.append, qos)
        aligned: list = []
        peer.node.create_subscription(PointCloud2, "costmap/aligned_points", aligned.append, qos)
        peer.wait_for_node(proc)
        assert peer.spin(20, lambda: depth_pub.get_subscription_count() > 0
                         and cloud_pub.get_subscription_count() > 0
                         and peer.node.count_publishers("/costmap/aligned_points") > 0)
        peer.send_info()
        peer.send_camera_info()
        info_pub.publish(CameraInfo(width=CAMERA.width, height=CAMERA.height,
                                    distortion_model="plumb_bob", d=[0.0] * 5,
                                    k=[CAMERA.fx, 0, CAMERA.cx, 0, CAMERA.fy, CAMERA.cy, 0, 0, 1]))
        peer.spin(0.3)
        labels, depth, pts = inputs()

        def frame(depth_msg, cloud_msgs, stamp):
            if depth_msg is not None:
                depth_pub.publish(depth_msg)
            for m in cloud_msgs:
                cloud_pub.publish(m)
            # large messages on a loaded machine: the node's DDS acknowledged them (reliable
            # QoS; measured 0-6 ms, once 1.7 s: a small cloud waits for Fast DDS's 3 s
            # heartbeat, below this test's stale_timeout 5 s), then a moment for its callbacks
            for pub in (depth_pub, cloud_pub):
                assert pub.wait_for_all_acked(Duration(seconds=10)), "depth/cloud not delivered"
            peer.spin(0.3)
            peer.send_camera_info()
            return peer.send(labels, stamp)

        stamp = peer.stamp()
        near = peer.stamp(-0.02)                    # the LiDAR's scan, 20 ms before
        good = (depth_image(peer, depth, stamp), [cloud(peer, pts, near)])
        grid = frame(*good, stamp)
        assert grid is not None
        want = core(labels, *good, stamp)
        assert want.mode == "depth"
        np.testing.assert_array_equal(grid_array(grid), want.values)
        assert (want.values == 100).sum() > 20 and (want.values == 0).sum() > 500
        assert peer.spin(5, lambda: any(p.header.stamp == stamp for p in points))
        msg = next(p for p in points if p.header.stamp == stamp)
        fields = tuple(Field(f.name, f.offset, f.datatype, f.count) for f in msg.fields)
        got = read_fields(fields, msg.width, msg.height, msg.point_step, msg.row_step,
                          bytes(msg.data), False, ("x", "y", "z", "confidence", "class", "level"))
        ref = want.depth.points(3, 50000)
        np.testing.assert_array_equal(np.stack(cloud_xyz(fields, msg.width, 1, msg.point_step,
                                                         msg.row_step, bytes(msg.data), False),
                                               1), ref.xyz)
        np.testing.assert_array_equal(got["class"], ref.labels)
        np.testing.assert_array_equal(got["level"], ref.level)
        assert msg.header.frame_id == "base_link" and (got["level"] >= 3).all()
        # the pixel-aligned cloud (semantic segmentation layer): the labels' size, optical frame
        assert peer.spin(5, lambda: any(a.header.stamp == stamp for a in aligned))
        organised = next(a for a in aligned if a.header.stamp == stamp)
        assert (organised.height, organised.width) == labels.shape
        assert organised.header.frame_id == "camera_optical_frame"
        xyz = np.stack(cloud_xyz(tuple(Field(f.name, f.offset, f.datatype, f.count)
                                       for f in organised.fields), organised.width,
                                 organised.height, organised.point_step, organised.row_step,
                                 bytes(organised.data), False), 1)
        np.testing.assert_array_equal(xyz.reshape(*labels.shape, 3), want.depth.aligned_points())
        _, diag = peer.latest_diagnostics()
        assert diag["last_grid_mode"] == "depth" and diag["grids_depth_mode"] == "1"

        bad_inputs = [       # (depth image, clouds) for a label stamp t; each alone in time
            lambda t: (depth_image(peer, np.full_like(depth, np.nan), t, "32FC1"), []),
            lambda t: (depth_image(peer, -depth, t, "32FC1"), []),
            lambda t: (depth_image(peer, depth, t, size=(200, 320)), []),
            lambda t: (None, [cloud(peer, pts, t, names=("x", "y", "q"))]),
            lambda t: (None, [cloud(peer, pts, t, frame="velodyne")]),
            lambda t: (depth_image(peer, depth, shifted(t, -0.3)),
                       [cloud(peer, pts, shifted(t, 0.2))]),
            lambda t: (None, [cloud(peer, pts[:10], t, width=10**8)]),
        ]

        def shifted(t, dt):
            ns = t.sec * 10**9 + t.nanosec + int(dt * 1e9)
            return type(t)(sec=ns // 10**9, nanosec=ns % 10**9)

        for make in bad_inputs:
            peer.spin(0.3)                  # keep label stamps of frames 0.3 s apart
            stamp = peer.stamp()
            depth_msg, cloud_msgs = make(stamp)
            grid = frame(depth_msg, cloud_msgs, stamp)
            assert grid is not None, "node stopped after bad input"
            flat = core(labels, None, [], stamp)
            assert flat.mode == "flat"
            np.testing.assert_array_equal(grid_array(grid), flat.values)
        stamp = peer.stamp()
        good = (depth_image(peer, depth, stamp), [cloud(peer, pts, stamp)])
        grid = frame(*good, stamp)
        np.testing.assert_array_equal(grid_array(grid), core(labels, *good, stamp).values)
        _, diag = peer.latest_diagnostics()
        print({k: v for k, v in diag.items() if k.startswith(("sensor_", "grids_"))})
        for reason in ("depth_empty", "depth_negative", "depth_size_mismatch",
                       "cloud_missing_fields", "unknown_frame", "depth_unpaired",
                       "cloud_unpaired", "cloud_too_large"):
            assert int(diag.get(f"sensor_{reason}", 0)) >= 1, reason
        assert diag["grids_flat_mode"] == "7" and diag["grids_depth_mode"] == "2"
        assert diag["labels_rejected"] == "0" and proc.poll() is None
    finally:
        if peer is not None:
            peer.close()
        out = stop_node(proc)
    assert proc.returncode == 0, out


def test_extrinsics_tf_without_tf2_ros_exits_2_with_one_clear_line():
    import subprocess

    from offroad_costmap.test.test_node_ros import node_args

    proc = subprocess.run(node_args({**DEPTH, "extrinsics": "tf"}), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "extrinsics: tf needs tf2_ros" in proc.stderr + proc.stdout
