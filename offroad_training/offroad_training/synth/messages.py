"""ROS 2 messages of a synthetic frame, built with a ``rosbags`` typestore (no ROS install):
images, CameraInfo, OccupancyGrid, Odometry, PointCloud2 and TF. The topic contract they make up
is documented in :mod:`offroad_training.synth.bag`."""

from __future__ import annotations

import math

import numpy as np

from offroad_core.camera import R_BODY_FROM_OPTICAL, CameraPose
from offroad_training.synth.depth import encode_depth
from offroad_training.synth.render import SyntheticFrame

CAMERA_FRAME = "camera_optical_frame"
CAMERA_BODY_FRAME = "camera_link"
LIDAR_FRAME = "lidar_link"
BASE_FRAME = "base_link"
ODOM_FRAME = "odom"

# sensor_msgs/PointField datatypes
UINT8, UINT16, FLOAT32 = 2, 4, 7
CAMERA_CLOUD_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
LIDAR_DTYPE = np.dtype({"names": ["x", "y", "z", "intensity", "ring"],
                        "formats": ["<f4", "<f4", "<f4", "<f4", "<u2"],
                        "offsets": [0, 4, 8, 12, 16], "itemsize": 20})
LIDAR_TRUTH_DTYPE = np.dtype({"names": ["x", "y", "z", "class_id"],
                              "formats": ["<f4", "<f4", "<f4", "u1"],
                              "offsets": [0, 4, 8, 12], "itemsize": 16})
_FIELD_TYPES = {np.dtype("<f4"): FLOAT32, np.dtype("<u2"): UINT16, np.dtype("u1"): UINT8}


def quaternion(rot: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix."""
    m = np.asarray(rot, np.float64)
    w = math.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = math.copysign(math.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
    n = math.sqrt(x * x + y * y + z * z + w * w)
    return x / n, y / n, z / n, w / n


class MessageFactory:
    """Builds the messages of one frame with the types of ``typestore``."""

    def __init__(self, typestore) -> None:
        self.t = typestore.types

    def header(self, stamp_ns: int, frame_id: str):
        """std_msgs/Header."""
        time = self.t["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000,
                                                      nanosec=stamp_ns % 1_000_000_000)
        return self.t["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)

    def image(self, header, data: np.ndarray, encoding: str):
        """sensor_msgs/Image of a (H, W[, C]) little-endian array."""
        data = np.ascontiguousarray(data)
        h, w = data.shape[:2]
        return self.t["sensor_msgs/msg/Image"](
            header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
            step=w * data.itemsize * (data.shape[2] if data.ndim == 3 else 1),
            data=data.view(np.uint8).reshape(-1))

    def depth_image(self, header, frame: SyntheticFrame, encoding: str, max_range: float):
        """The frame's depth as a 16UC1 (mm) or 32FC1 (m) image."""
        return self.image(header, encode_depth(frame.depth, encoding, max_range), encoding)

    def cloud(self, header, points: np.ndarray, height: int, width: int, dense: bool):
        """sensor_msgs/PointCloud2 of a structured array (fields from its dtype)."""
        Field = self.t["sensor_msgs/msg/PointField"]
        dtype = points.dtype
        fields = [Field(name=name, offset=dtype.fields[name][1],
                        datatype=_FIELD_TYPES[dtype.fields[name][0]], count=1)
                  for name in dtype.names]
        return self.t["sensor_msgs/msg/PointCloud2"](
            header=header, height=height, width=width, fields=fields, is_bigendian=False,
            point_step=dtype.itemsize, row_step=dtype.itemsize * width,
            data=np.ascontiguousarray(points).view(np.uint8).reshape(-1), is_dense=dense)

    def camera_cloud(self, header, points: np.ndarray):
        """Organised x, y, z cloud (H, W, 3), NaN = no return."""
        h, w = points.shape[:2]
        out = np.empty(h * w, CAMERA_CLOUD_DTYPE)
        flat = points.reshape(-1, 3)
        out["x"], out["y"], out["z"] = flat[:, 0], flat[:, 1], flat[:, 2]
        return self.cloud(header, out, h, w, dense=False)

    def lidar_cloud(self, header, frame: SyntheticFrame, truth: bool):
        """The frame's LiDAR points (x, y, z, intensity, ring) or their truth (x, y, z,
        class_id), unorganised."""
        scan = frame.lidar
        out = np.zeros(len(scan.points), LIDAR_TRUTH_DTYPE if truth else LIDAR_DTYPE)
        out["x"], out["y"], out["z"] = scan.points[:, 0], scan.points[:, 1], scan.points[:, 2]
        if truth:
            out["class_id"] = scan.class_id
        else:
            out["intensity"], out["ring"] = scan.intensity, scan.ring
        return self.cloud(header, out, 1, len(out), dense=True)

    def transform(self, header, child: str, translation, rot: np.ndarray):
        """geometry_msgs/TransformStamped header.frame_id -> ``child``."""
        qx, qy, qz, qw = quaternion(rot)
        x, y, z = (float(v) for v in translation)
        return self.t["geometry_msgs/msg/TransformStamped"](
            header=header, child_frame_id=child,
            transform=self.t["geometry_msgs/msg/Transform"](
                translation=self.t["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
                rotation=self.t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)))

    def tf_static(self, stamp_ns: int, camera_pose: CameraPose, lidar_pose: CameraPose | None):
        """tf2_msgs/TFMessage: base_link -> camera_link -> camera_optical_frame, and
        base_link -> lidar_link."""
        base = self.header(stamp_ns, BASE_FRAME)
        transforms = [
            self.transform(base, CAMERA_BODY_FRAME, camera_pose.translation,
                           camera_pose.rotation_body),
            self.transform(self.header(stamp_ns, CAMERA_BODY_FRAME), CAMERA_FRAME,
                           (0.0, 0.0, 0.0), R_BODY_FROM_OPTICAL)]
        if lidar_pose is not None:
            transforms.append(self.transform(base, LIDAR_FRAME, lidar_pose.translation,
                                             lidar_pose.rotation_body))
        return self.t["tf2_msgs/msg/TFMessage"](transforms=transforms)

    def tf_odom(self, stamp_ns: int, frame: SyntheticFrame):
        """tf2_msgs/TFMessage: odom -> base_link of the frame."""
        x, y, yaw = frame.robot_pose
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return self.t["tf2_msgs/msg/TFMessage"](transforms=[self.transform(
            self.header(stamp_ns, ODOM_FRAME), BASE_FRAME, (x, y, frame.base_z), rot)])
