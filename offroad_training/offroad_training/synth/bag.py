"""Write synthetic frames as a rosbag2 (sqlite3 or mcap) with ``rosbags`` (no ROS needed).

Topics (all messages of frame i share the stamp ``start + i / rate``):

* ``/camera/image_raw`` sensor_msgs/msg/Image: rgb8, frame_id ``camera_optical_frame``.
* ``/camera/camera_info`` sensor_msgs/msg/CameraInfo: same header; K, D (``plumb_bob`` or
  ``rational_polynomial``; an undistorted camera is ``plumb_bob`` with zeros), R = I,
  P = [K | 0].
* ``/ground_truth/labels`` sensor_msgs/msg/Image: mono8 class ids (255 ignore), same header.
* ``/ground_truth/class_map`` nav_msgs/msg/OccupancyGrid: frame_id ``base_link`` of the frame;
  data = class id 0..6, -1 unknown; row index along +y, column along +x, origin = outer corner
  of cell (0, 0) (the top-down map of :mod:`offroad_training.synth.render`).
* ``/odom`` nav_msgs/msg/Odometry: ``odom`` -> ``base_link`` pose; twist in ``base_link``
  (backward difference of consecutive poses; zero for the first frame).

The camera's mounting pose (base_link -> camera) is not a topic: it is written next to the
bag's metadata as ``camera.json`` (the same file ``offroad data synth`` writes to a dataset).
The bag directory is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from offroad_core.camera import Camera
from offroad_training.synth.render import SyntheticFrame

TOPICS = {
    "image": ("/camera/image_raw", "sensor_msgs/msg/Image"),
    "camera_info": ("/camera/camera_info", "sensor_msgs/msg/CameraInfo"),
    "labels": ("/ground_truth/labels", "sensor_msgs/msg/Image"),
    "class_map": ("/ground_truth/class_map", "nav_msgs/msg/OccupancyGrid"),
    "odom": ("/odom", "nav_msgs/msg/Odometry"),
}
CAMERA_FRAME = "camera_optical_frame"
BASE_FRAME = "base_link"
ODOM_FRAME = "odom"
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000
STORAGES = ("sqlite3", "mcap")


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
              progress: bool = False) -> int:
    """Write ``frames`` (consumed lazily, in order) to a new rosbag2 directory ``path``.

    Returns the number of frames written. Raises ``FileExistsError`` if ``path`` exists and
    ``ValueError`` for a bad storage or rate.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; rosbag2 writes a new directory (remove it first)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # rosbag2 names its storage file after the directory: write <parent>/.<name>.partial/<name>
    # and move it into place when complete.
    staging = path.with_name(f".{path.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    tmp = staging / path.name
    ts = get_typestore(Stores.ROS2_JAZZY)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    count = 0
    camera = None
    try:
        with Writer(tmp, version=9, storage_plugin=plugin) as writer:
            conns = {key: writer.add_connection(topic, msgtype, typestore=ts)
                     for key, (topic, msgtype) in TOPICS.items()}
            previous = None
            iterator = frames
            if progress:
                from tqdm import tqdm

                iterator = tqdm(frames, desc="bag", unit="frame")
            for frame in iterator:
                stamp_ns = start_ns + round(count * 1e9 / rate_hz)
                for key, msg in _messages(ts, frame, stamp_ns, previous, rate_hz).items():
                    writer.write(conns[key], stamp_ns,
                                 ts.serialize_cdr(msg, TOPICS[key][1]))
                previous = frame
                camera = frame.camera
                count += 1
        if camera is not None:
            (tmp / "camera.json").write_text(json.dumps(camera_to_dict(camera), indent=2) + "\n")
        tmp.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


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
            pose=Pose(position=Point(x=x, y=y, z=0.0),
                      orientation=Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2),
                                             w=math.cos(yaw / 2))),
            covariance=np.zeros(36)),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=Vector3(x=linear, y=0.0, z=0.0),
                                               angular=Vector3(x=0.0, y=0.0, z=angular)),
            covariance=np.zeros(36)))
    return {"image": image, "camera_info": info, "labels": labels, "class_map": grid,
            "odom": odom}
