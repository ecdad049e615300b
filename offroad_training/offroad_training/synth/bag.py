"""Write synthetic frames as a rosbag2 (sqlite3 or mcap) with ``rosbags`` (no ROS needed).

Topic contract (every message of frame i has the stamp ``start + i / rate`` in its header and as
its bag time; frames: ``odom`` -> ``base_link`` -> ``camera_link`` -> ``camera_optical_frame``,
``base_link`` -> ``lidar_link``):

* ``/camera/image_raw`` sensor_msgs/msg/Image: rgb8, frame_id ``camera_optical_frame``.
* ``/camera/camera_info`` sensor_msgs/msg/CameraInfo: same header; K, D (``plumb_bob`` or
  ``rational_polynomial``; an undistorted camera is ``plumb_bob`` with zeros), R = I,
  P = [K | 0]. It applies to the depth image too.
* ``/camera/depth/image_raw`` sensor_msgs/msg/Image (depth on): same header as the RGB image,
  the same pixels (registered: same camera, same CameraInfo); ``16UC1`` millimetres, 0 = no
  return (default) or ``32FC1`` metres, NaN = no return; depth along the optical axis (REP-118);
  returns beyond ``depth_max_range`` (default 65.535 m, the 16UC1 limit) are no return.
* ``/camera/depth/points`` sensor_msgs/msg/PointCloud2 (depth on): x, y, z float32 in
  ``camera_optical_frame``, organised like the image (height H, width W, point of pixel (v, u)
  at v * W + u), NaN where the depth image has no return (``is_dense`` false); ground-truth
  class of a point = ``/ground_truth/labels`` at its pixel.
* ``/lidar/points`` sensor_msgs/msg/PointCloud2 (LiDAR on): x, y, z, intensity float32 (offsets
  0, 4, 8, 12) + ring uint16 (offset 16), point_step 20, unorganised (height 1), dense, in
  ``lidar_link``, scan order; same stamp as the frame's image
  (:mod:`offroad_training.synth.lidar`).
* ``/ground_truth/labels`` sensor_msgs/msg/Image: mono8 class ids (255 ignore), same header as
  the RGB image.
* ``/ground_truth/class_map`` nav_msgs/msg/OccupancyGrid: frame_id ``base_link`` of the frame;
  data = class id 0..6, -1 unknown; row index along +y, column along +x, origin = outer corner
  of cell (0, 0) (the top-down map of :mod:`offroad_training.synth.topdown`).
* ``/ground_truth/elevation`` sensor_msgs/msg/Image: 32FC1, frame_id ``base_link``; the same
  grid as the class map of the same stamp (height = its rows along +y, width = its columns along
  +x, row 0 at origin_y, resolution and origin in the OccupancyGrid's info): ground height (m)
  at each cell centre in ``base_link`` (0 everywhere on a flat world).
* ``/ground_truth/lidar_points`` sensor_msgs/msg/PointCloud2 (LiDAR on): the points of
  ``/lidar/points`` in the same order, x, y, z float32 + class_id uint8 (offset 12), point_step
  16, frame ``lidar_link``: the ground-truth class of every LiDAR point.
* ``/tf_static`` tf2_msgs/msg/TFMessage, once at the first stamp, offered as transient local:
  ``base_link`` -> ``camera_link`` (the camera's mounting pose, camera body frame x forward,
  y left, z up), ``camera_link`` -> ``camera_optical_frame`` (fixed: z forward, x right, y
  down), ``base_link`` -> ``lidar_link`` (LiDAR on).
* ``/tf`` tf2_msgs/msg/TFMessage per frame: ``odom`` -> ``base_link`` (z = ground height under
  the robot; base_link stays level).
* ``/odom`` nav_msgs/msg/Odometry: ``odom`` -> ``base_link`` pose (z as in ``/tf``); twist in
  ``base_link`` (backward difference of consecutive poses; zero for the first frame).

Sidecars inside the bag directory: ``camera.json`` (intrinsics and mounting pose in base_link,
as ``offroad data synth`` writes to a dataset), ``lidar.json`` (LiDAR on: mounting pose and beam
pattern, :meth:`LidarSpec.to_dict`) and any extra JSON the caller passes (``world.json`` from
``offroad data synth --bag``: world seed, size and relief). The bag directory is written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from offroad_core.camera import Camera
from offroad_training.synth.depth import DEPTH_ENCODINGS, MAX_16UC1_M, depth_to_points
from offroad_training.synth.messages import (
    BASE_FRAME,
    CAMERA_FRAME,
    LIDAR_FRAME,
    ODOM_FRAME,
    MessageFactory,
)
from offroad_training.synth.render import SyntheticFrame

IMAGE, CLOUD, TF = "sensor_msgs/msg/Image", "sensor_msgs/msg/PointCloud2", "tf2_msgs/msg/TFMessage"
TOPICS = {
    "image": ("/camera/image_raw", IMAGE),
    "camera_info": ("/camera/camera_info", "sensor_msgs/msg/CameraInfo"),
    "labels": ("/ground_truth/labels", IMAGE),
    "class_map": ("/ground_truth/class_map", "nav_msgs/msg/OccupancyGrid"),
    "odom": ("/odom", "nav_msgs/msg/Odometry"),
    "elevation": ("/ground_truth/elevation", IMAGE),
    "tf": ("/tf", TF),
    "tf_static": ("/tf_static", TF),
    "depth": ("/camera/depth/image_raw", IMAGE),
    "depth_points": ("/camera/depth/points", CLOUD),
    "lidar_points": ("/lidar/points", CLOUD),
    "lidar_truth": ("/ground_truth/lidar_points", CLOUD),
}
"""Every topic a synthetic bag may hold (key -> (topic, type)); :func:`bag_topics` selects."""
DEPTH_KEYS = ("depth", "depth_points")
LIDAR_KEYS = ("lidar_points", "lidar_truth")
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000
STORAGES = ("sqlite3", "mcap")
__all__ = ["BASE_FRAME", "CAMERA_FRAME", "LIDAR_FRAME", "ODOM_FRAME", "TOPICS", "bag_topics",
           "camera_from_dict", "camera_to_dict", "write_bag"]


def bag_topics(depth: bool, lidar: bool) -> dict[str, tuple[str, str]]:
    """The topics of a bag with or without depth and LiDAR (key -> (topic, type))."""
    return {k: v for k, v in TOPICS.items()
            if (depth or k not in DEPTH_KEYS) and (lidar or k not in LIDAR_KEYS)}


def camera_to_dict(camera: Camera) -> dict:
    """JSON-ready description of a camera (intrinsics and mounting pose in base_link)."""
    i, p = camera.intrinsics, camera.pose
    return {"width": i.width, "height": i.height, "fx": i.fx, "fy": i.fy, "cx": i.cx,
            "cy": i.cy, "distortion_model": i.distortion_model, "d": list(i.d),
            "pose": {"frame_id": BASE_FRAME, "x": p.x, "y": p.y, "z": p.z, "roll": p.roll,
                     "pitch": p.pitch, "yaw": p.yaw,
                     "convention": "camera body frame (x forward, y left, z up) in base_link; "
                                   "R = Rz(yaw) Ry(pitch) Rx(roll); positive pitch looks down; "
                                   "optical frame = body rotated (z forward, x right, y down)"}}


def camera_from_dict(data: dict) -> Camera:
    """Inverse of :func:`camera_to_dict`."""
    from offroad_core.camera import CameraIntrinsics, CameraPose

    pose = data["pose"]
    return Camera(CameraIntrinsics(int(data["width"]), int(data["height"]), float(data["fx"]),
                                   float(data["fy"]), float(data["cx"]), float(data["cy"]),
                                   data.get("distortion_model", "none"),
                                   tuple(float(v) for v in data.get("d", ()))),
                  CameraPose(*(float(pose[k]) for k in ("x", "y", "z", "roll", "pitch", "yaw"))))


def write_bag(path: str | Path, frames: Iterable[SyntheticFrame], storage: str = "sqlite3",
              rate_hz: float = 10.0, start_ns: int = DEFAULT_START_NS,
              progress: bool = False, depth_encoding: str = "16UC1",
              depth_max_range: float = MAX_16UC1_M, sidecars: dict[str, dict] | None = None
              ) -> int:
    """Write ``frames`` (consumed lazily, in order) to a new rosbag2 directory ``path``.

    Depth topics are written when the frames carry depth, LiDAR topics when they carry a scan
    (decided by the first frame; every frame must agree). ``sidecars``: extra JSON files
    (name -> content) for the bag directory. Returns the number of frames written. Raises
    ``FileExistsError`` if ``path`` exists and ``ValueError`` for a bad storage, rate or depth
    encoding.
    """
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
    if depth_encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"depth encoding must be one of {', '.join(DEPTH_ENCODINGS)}, got "
                         f"{depth_encoding!r}")
    if not depth_max_range > 0:
        raise ValueError(f"depth max range must be > 0 m, got {depth_max_range}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; rosbag2 writes a new directory (remove it first)")
    frames = iter(frames)
    first = next(frames, None)
    has_depth = first is not None and first.depth is not None
    has_lidar = first is not None and first.lidar is not None
    topics = bag_topics(has_depth, has_lidar)
    path.parent.mkdir(parents=True, exist_ok=True)
    # rosbag2 names its storage file after the directory: write <parent>/.<name>.partial/<name>
    # and move it into place when complete.
    staging = path.with_name(f".{path.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    tmp = staging / path.name
    ts = get_typestore(Stores.ROS2_JAZZY)
    factory = MessageFactory(ts)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    latched = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE,
                  QosDurability.TRANSIENT_LOCAL, QosTime(0, 0), QosTime(0, 0),
                  QosLiveliness.AUTOMATIC, QosTime(0, 0), False)
    count = 0
    try:
        with Writer(tmp, version=9, storage_plugin=plugin) as writer:
            conns = {key: writer.add_connection(
                topic, msgtype, typestore=ts,
                offered_qos_profiles=[latched] if key == "tf_static" else [])
                for key, (topic, msgtype) in topics.items()}
            previous = None
            iterator = itertools.chain([first], frames) if first is not None else iter(())
            if progress:
                from tqdm import tqdm

                iterator = tqdm(iterator, desc="bag", unit="frame")
            for frame in iterator:
                if (frame.depth is not None, frame.lidar is not None) != (has_depth, has_lidar):
                    raise ValueError(f"frame {count} differs from the first in carrying depth "
                                     "or a LiDAR scan")
                stamp_ns = start_ns + round(count * 1e9 / rate_hz)
                msgs = _messages(ts, frame, stamp_ns, previous, rate_hz)
                msgs.update(_sensor_messages(factory, frame, stamp_ns, depth_encoding,
                                             depth_max_range))
                if count == 0:
                    msgs["tf_static"] = factory.tf_static(
                        stamp_ns, frame.camera.pose,
                        frame.lidar_spec.pose if frame.lidar_spec is not None else None)
                for key, msg in msgs.items():
                    writer.write(conns[key], stamp_ns, ts.serialize_cdr(msg, topics[key][1]))
                previous = frame
                count += 1
        files = dict(sidecars or {})
        if first is not None:
            files["camera.json"] = camera_to_dict(first.camera)
            if first.lidar_spec is not None:
                files["lidar.json"] = first.lidar_spec.to_dict()
        for name, content in files.items():
            (tmp / name).write_text(json.dumps(content, indent=2) + "\n")
        tmp.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


def _sensor_messages(factory: MessageFactory, frame: SyntheticFrame, stamp_ns: int,
                     depth_encoding: str, depth_max_range: float) -> dict:
    """Depth image and cloud, LiDAR clouds, elevation and /tf of one frame."""
    cam_header = factory.header(stamp_ns, CAMERA_FRAME)
    out = {"elevation": factory.image(factory.header(stamp_ns, BASE_FRAME),
                                      frame.topdown.elevation.astype("<f4"), "32FC1"),
           "tf": factory.tf_odom(stamp_ns, frame)}
    if frame.depth is not None:
        out["depth"] = factory.depth_image(cam_header, frame, depth_encoding, depth_max_range)
        # The cloud holds the returns of the depth image (16UC1 ends at 65.535 m).
        limit = min(depth_max_range, MAX_16UC1_M) if depth_encoding == "16UC1" else depth_max_range
        with np.errstate(invalid="ignore"):
            limited = np.where(frame.depth <= limit, frame.depth, np.nan)
        out["depth_points"] = factory.camera_cloud(cam_header,
                                                   depth_to_points(limited, frame.camera))
    if frame.lidar is not None:
        lidar_header = factory.header(stamp_ns, LIDAR_FRAME)
        out["lidar_points"] = factory.lidar_cloud(lidar_header, frame, truth=False)
        out["lidar_truth"] = factory.lidar_cloud(lidar_header, frame, truth=True)
    return out


def _messages(ts, frame: SyntheticFrame, stamp_ns: int, previous: SyntheticFrame | None,
              rate_hz: float) -> dict:
    t = ts.types
    Time = t["builtin_interfaces/msg/Time"]
    Header = t["std_msgs/msg/Header"]
    stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    cam_header = Header(stamp=stamp, frame_id=CAMERA_FRAME)
    h, w = frame.labels.shape
    Image = t["sensor_msgs/msg/Image"]
    image = Image(header=cam_header, height=h, width=w, encoding="rgb8", is_bigendian=0,
                  step=w * 3, data=np.ascontiguousarray(frame.rgb).reshape(-1))
    labels = Image(header=cam_header, height=h, width=w, encoding="mono8", is_bigendian=0,
                   step=w, data=np.ascontiguousarray(frame.labels).reshape(-1))

    intr = frame.camera.intrinsics
    if intr.distortion_model == "none":
        model, d = "plumb_bob", np.zeros(5)
    else:
        model, d = intr.distortion_model, intr.dist_coeffs
    k = intr.k
    p = np.concatenate([k, np.zeros((3, 1))], axis=1)
    info = t["sensor_msgs/msg/CameraInfo"](
        header=cam_header, height=h, width=w, distortion_model=model,
        d=np.asarray(d, dtype=np.float64), k=k.reshape(-1), r=np.eye(3).reshape(-1),
        p=p.reshape(-1), binning_x=0, binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                   do_rectify=False))

    Point = t["geometry_msgs/msg/Point"]
    Quaternion = t["geometry_msgs/msg/Quaternion"]
    Pose = t["geometry_msgs/msg/Pose"]
    top = frame.topdown
    ny, nx = top.classes.shape
    data = top.classes.astype(np.int16)
    data[data > 6] = -1
    grid = t["nav_msgs/msg/OccupancyGrid"](
        header=Header(stamp=stamp, frame_id=BASE_FRAME),
        info=t["nav_msgs/msg/MapMetaData"](
            map_load_time=stamp, resolution=float(top.resolution), width=nx, height=ny,
            origin=Pose(position=Point(x=float(top.origin_x), y=float(top.origin_y), z=0.0),
                        orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))),
        data=data.astype(np.int8).reshape(-1))

    x, y, yaw = frame.robot_pose
    linear = angular = 0.0
    if previous is not None:
        dt = 1.0 / rate_hz
        px, py, pyaw = previous.robot_pose
        c, s = math.cos(yaw), math.sin(yaw)
        linear = (c * (x - px) + s * (y - py)) / dt
        angular = math.remainder(yaw - pyaw, 2 * math.pi) / dt
    Vector3 = t["geometry_msgs/msg/Vector3"]
    odom = t["nav_msgs/msg/Odometry"](
        header=Header(stamp=stamp, frame_id=ODOM_FRAME), child_frame_id=BASE_FRAME,
        pose=t["geometry_msgs/msg/PoseWithCovariance"](
            pose=Pose(position=Point(x=x, y=y, z=float(frame.base_z)),
                      orientation=Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2),
                                             w=math.cos(yaw / 2))),
            covariance=np.zeros(36)),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=Vector3(x=linear, y=0.0, z=0.0),
                                               angular=Vector3(x=0.0, y=0.0, z=angular)),
            covariance=np.zeros(36)))
    return {"image": image, "camera_info": info, "labels": labels, "class_map": grid,
            "odom": odom}
