"""A bag's camera frames joined with their ground truth, read with ``rosbags`` (no rclpy).

Images, ground-truth labels and class maps are joined by header stamp; frames come out in bag
order, each once its ground truth is complete or can no longer arrive (``join_window`` seconds
of bag time after the image). CameraInfo messages go to a callback as they are read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offroad_core.imaging import decode_compressed, decode_image
from offroad_core.stamps import stamp_ns
from offroad_replay.bag_replay import BagError, open_reader

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


@dataclass
class Topics:
    """Bag topics of a frame (defaults: the layout of ``offroad data synth --bag``)."""

    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    labels: str = "/ground_truth/labels"
    class_map: str = "/ground_truth/class_map"


@dataclass
class Frame:
    """One image message and the ground-truth messages with the same header stamp."""

    image: Any = None
    msgtype: str = ""
    labels: Any = None
    class_map: Any = None
    bag_ns: int = 0

    @property
    def stamp_ns(self) -> int:
        """Header stamp of the image (ns)."""
        return stamp_ns(self.image.header.stamp)


def decode_frame(frame: Frame) -> np.ndarray:
    """RGB uint8 of the frame's Image or CompressedImage; ``ImageDecodeError`` if bad."""
    msg = frame.image
    if frame.msgtype.endswith("CompressedImage"):
        return decode_compressed(msg.format, msg.data)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def messages(reader: Any, connections: list[Any], bag: str | Path) -> Iterator[tuple[Any, int,
                                                                                   Any]]:
    """Deserialised ``(connection, bag time ns, message)``; :class:`BagError` if corrupt."""
    from rosbags.rosbag2 import ReaderError
    from rosbags.serde import SerdeError
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_JAZZY)
    try:
        for conn, bag_ns, raw in reader.messages(connections):
            yield conn, int(bag_ns), typestore.deserialize_cdr(raw, conn.msgtype)
    except (ReaderError, SerdeError, KeyError, ValueError, IndexError, AssertionError) as exc:
        raise BagError(f"corrupt bag {bag}: {type(exc).__name__}: {exc}") from exc


class BagFrames:
    """An open bag: which topics it has, and its frames (a context manager)."""

    def __init__(self, bag: str | Path, topics: Topics | None = None,
                 join_window: float = 1.0, extra: tuple[str, ...] = (),
                 extra_wait: float = 0.0) -> None:
        """Open ``bag``; :class:`BagError` when it is missing, unreadable or has no image topic.
        ``extra`` topics (depth images, clouds) go to :meth:`frames`' ``on_extra`` as read; a
        frame then waits until the bag time is ``extra_wait`` s past it (they may come later)."""
        self.bag = bag
        self.topics = t = topics or Topics()
        self.join_window_ns = int(join_window * 1e9)
        self.reader = open_reader(bag)
        conns = {c.topic: c for c in self.reader.connections}
        image = conns.get(t.image)
        if image is None or image.msgtype not in IMAGE_TYPES:
            self.reader.close()
            raise BagError(f"{bag}: no image topic {t.image} (Image or CompressedImage); "
                           f"topics: {', '.join(sorted(conns))}")
        self.with_labels = t.labels in conns
        self.with_map = t.class_map in conns
        self.with_camera_info = t.camera_info in conns
        self._extra = tuple(name for name in extra if name in conns)
        self._extra_wait_ns = int(extra_wait * 1e9)
        self._connections = [conns[name] for name in (t.image, t.camera_info, t.labels,
                                                       t.class_map, *self._extra)
                             if name in conns]

    def __enter__(self) -> BagFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the bag."""
        self.reader.close()

    def frames(self, on_camera_info: Callable[[Any], None] | None = None,
               on_extra: Callable[[str, Any], None] | None = None) -> Iterator[Frame]:
        """Every frame in bag order, with the ground truth that arrived for it."""
        t = self.topics
        pending: OrderedDict[int, Frame] = OrderedDict()
        for conn, bag_ns, msg in messages(self.reader, self._connections, self.bag):
            if conn.topic == t.camera_info:
                if on_camera_info is not None:
                    on_camera_info(msg)
                continue
            if conn.topic in self._extra:
                if on_extra is not None:
                    on_extra(conn.topic, msg)
                continue
            frame = pending.setdefault(stamp_ns(msg.header.stamp), Frame(bag_ns=bag_ns))
            if conn.topic == t.image:
                frame.image, frame.msgtype, frame.bag_ns = msg, conn.msgtype, bag_ns
            elif conn.topic == t.labels:
                frame.labels = msg
            else:
                frame.class_map = msg
            yield from self._ready(pending, bag_ns)
        yield from self._ready(pending, None)

    def _ready(self, pending: OrderedDict[int, Frame], bag_ns: int | None) -> Iterator[Frame]:
        """The oldest frames whose ground truth is complete or expired (None: the bag ended)."""
        while pending:
            stamp, frame = next(iter(pending.items()))
            complete = frame.image is not None and (not self.with_labels or frame.labels
                                                    is not None) \
                and (not self.with_map or frame.class_map is not None)
            expired = bag_ns is None or bag_ns - frame.bag_ns > self.join_window_ns
            if self._extra and not expired:
                complete = complete and bag_ns - frame.bag_ns > self._extra_wait_ns
            if not (complete or expired):
                return
            pending.pop(stamp)
            if frame.image is not None:  # ground truth without its image is dropped
                yield frame
