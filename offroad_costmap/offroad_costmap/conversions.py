"""Build and read ROS messages for the costmap node (message types only, no rclpy)."""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from offroad_core.camera import CameraIntrinsics
from offroad_core.costmap.grid import GridGeometry, grid_picture

LABEL_ENCODINGS = ("mono8", "8UC1")


class InputError(ValueError):
    """A bad input message; ``reason`` is a short key for the diagnostics counters."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason key next to the message."""
        super().__init__(message)
        self.reason = reason


def labels_from_image(msg: Image) -> np.ndarray:
    """(H, W) uint8 view of a mono8 label image; :class:`InputError` on bad encoding/size."""
    if msg.encoding not in LABEL_ENCODINGS:
        raise InputError("bad_encoding", f"labels encoding {msg.encoding!r}; expected mono8")
    h, w, step = msg.height, msg.width, msg.step
    if h == 0 or w == 0 or step < w:
        raise InputError("bad_size", f"labels {w}x{h} with step {step}")
    if len(msg.data) < step * (h - 1) + w:
        raise InputError("bad_size", f"labels {w}x{h} step {step} need "
                         f"{step * (h - 1) + w} bytes, got {len(msg.data)}")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if step == w:
        return data[: h * w].reshape(h, w)
    return np.lib.stride_tricks.as_strided(data, (h, w), (step, 1))


def intrinsics_from_camera_info(msg: CameraInfo) -> CameraIntrinsics:
    """Camera intrinsics of a CameraInfo; :class:`InputError` for an unusable calibration."""
    try:
        return CameraIntrinsics.from_camera_info(msg.width, msg.height, msg.k, msg.d,
                                                 msg.distortion_model)
    except ValueError as exc:
        raise InputError("bad_camera_info", f"camera_info: {exc}") from None


def occupancy_grid(values: np.ndarray, geometry: GridGeometry, frame_id: str,
                   stamp: Time) -> OccupancyGrid:
    """An OccupancyGrid of int8 ``values`` (ny, nx) with ``geometry``."""
    msg = OccupancyGrid()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.info.map_load_time = stamp
    msg.info.resolution = float(geometry.resolution)
    msg.info.width, msg.info.height = geometry.nx, geometry.ny
    msg.info.origin.position.x = float(geometry.origin_x)
    msg.info.origin.position.y = float(geometry.origin_y)
    msg.info.origin.orientation.w = 1.0
    msg.data = array.array("b", np.ascontiguousarray(values, dtype=np.int8).tobytes())
    return msg


def obstacle_cloud(values: np.ndarray, geometry: GridGeometry, lethal: int, height: float,
                   frame_id: str, stamp: Time) -> PointCloud2:
    """PointCloud2 (x, y, z float32) with one point at the centre of every cell >= ``lethal``."""
    xs, ys = geometry.cell_centres()
    mask = values >= lethal
    points = np.zeros((int(mask.sum()), 3), dtype=np.float32)
    points[:, 0], points[:, 1], points[:, 2] = xs[mask], ys[mask], height
    msg = PointCloud2()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.height, msg.width = 1, len(points)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate("xyz")]
    msg.is_bigendian = False
    msg.point_step, msg.row_step = 12, 12 * len(points)
    msg.is_dense = True
    msg.data = points.tobytes()
    return msg


def debug_image(values: np.ndarray, frame_id: str, stamp: Time) -> Image:
    """rgb8 Image of :func:`grid_picture`."""
    picture = grid_picture(values)
    msg = Image()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.height, msg.width = picture.shape[:2]
    msg.encoding, msg.step = "rgb8", 3 * picture.shape[1]
    msg.data = picture.tobytes()
    return msg
