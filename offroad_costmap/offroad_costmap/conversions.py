"""Message <-> array conversions of the costmap node (message packages only, no rclpy)."""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from offroad_core.camera import CameraIntrinsics
from offroad_core.costmap.clouds import clearing_points, marking_points
from offroad_core.costmap.depthmap import DepthPoints
from offroad_core.costmap.grid import GridGeometry, grid_picture
from offroad_core.costmap.pipeline import InputError, ModelInfo
from offroad_core.costmap.pointcloud import Field, pack_cloud
from offroad_core.costmap.sensors import CloudMessage, DepthMessage
from offroad_core.imaging import ImageDecodeError, decode_labels
from offroad_core.stamps import stamp_seconds
from offroad_seg_msgs.msg import SegmentationInfo


def labels_from_image(msg: Image) -> np.ndarray:
    """(H, W) uint8 view of a mono8 label image; :class:`InputError` on bad encoding/size."""
    try:
        return decode_labels(msg.encoding, msg.height, msg.width, msg.step, msg.data)
    except ImageDecodeError as exc:
        raise InputError(exc.reason, str(exc)) from None


def intrinsics_from_camera_info(msg: CameraInfo) -> CameraIntrinsics:
    """Camera intrinsics of a CameraInfo; :class:`InputError` for an unusable calibration."""
    try:
        return CameraIntrinsics.from_camera_info(msg.width, msg.height, msg.k, msg.d,
                                                 msg.distortion_model)
    except ValueError as exc:
        raise InputError("bad_camera_info", f"camera_info: {exc}") from None


def model_info(msg: SegmentationInfo) -> ModelInfo:
    """The label meaning the costmap needs from a SegmentationInfo message."""
    return ModelInfo(tuple(int(v) for v in msg.class_ids), tuple(msg.class_names),
                     tuple(msg.class_categories), int(msg.ignore_value), int(msg.height),
                     int(msg.width))


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
    """PointCloud2 (x, y, z float32) with one point at the centre of every cell >= ``lethal``
    (the marking source)."""
    return xy_cloud(marking_points(values, geometry, lethal), height, frame_id, stamp)


def clearing_cloud(values: np.ndarray, geometry: GridGeometry, lethal: int,
                   origin: tuple[float, float], height: float, frame_id: str,
                   stamp: Time) -> PointCloud2:
    """PointCloud2 of :func:`offroad_core.costmap.clouds.clearing_points` (clearing source)."""
    return xy_cloud(clearing_points(values, geometry, lethal, origin), height, frame_id, stamp)


def xy_cloud(xy: np.ndarray, height: float, frame_id: str, stamp: Time) -> PointCloud2:
    """PointCloud2 (x, y, z float32) of (N, 2) points at z = ``height``."""
    points = np.zeros((len(xy), 3), dtype=np.float32)
    points[:, :2], points[:, 2] = xy, height
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


# ------------------------------------------------------------------ depth mode (docs/depth.md)
def depth_message(msg: Image) -> DepthMessage:
    """The raw fields of a depth image (decoded by the core when it joins labels)."""
    return DepthMessage(stamp_seconds(msg.header.stamp), msg.header.frame_id, msg.encoding,
                        msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))


def cloud_message(msg: PointCloud2, source: str) -> CloudMessage:
    """The raw fields of a PointCloud2 received on topic ``source``."""
    fields = tuple(Field(f.name, f.offset, f.datatype, f.count) for f in msg.fields)
    return CloudMessage(stamp_seconds(msg.header.stamp), msg.header.frame_id, fields,
                        msg.width, msg.height, msg.point_step, msg.row_step, msg.data,
                        bool(msg.is_bigendian), source)


def labelled_cloud(points: DepthPoints, frame_id: str, stamp: Time) -> PointCloud2:
    """PointCloud2 x, y, z, confidence (float32), class, level (uint8) of depth-mode points."""
    xyz = points.xyz
    fields, step, data = pack_cloud([("x", xyz[:, 0]), ("y", xyz[:, 1]), ("z", xyz[:, 2]),
                                     ("confidence", points.confidence),
                                     ("class", points.labels), ("level", points.level)])
    msg = PointCloud2()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.height, msg.width = 1, len(points.level)
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=1)
                  for f in fields]
    msg.is_bigendian, msg.is_dense = False, True
    msg.point_step, msg.row_step = step, step * len(points.level)
    msg.data = data
    return msg


def aligned_cloud(xyz: np.ndarray, frame_id: str, stamp: Time) -> PointCloud2:
    """Organised PointCloud2 (height H, width W; x, y, z float32) of (H, W, 3) points."""
    h, w = xyz.shape[:2]
    flat = xyz.reshape(-1, 3)
    fields, step, data = pack_cloud([("x", flat[:, 0]), ("y", flat[:, 1]), ("z", flat[:, 2])])
    msg = PointCloud2()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.height, msg.width = h, w
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=1)
                  for f in fields]
    msg.is_bigendian, msg.is_dense = False, False
    msg.point_step, msg.row_step = step, step * w
    msg.data = data
    return msg
