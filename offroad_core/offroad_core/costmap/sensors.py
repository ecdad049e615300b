"""Input synchronisation of the depth mode: depth images, clouds and confidence images wait
in short buffers until the labels with their stamp arrive. No ROS import.

Labels come last (they need inference), so every other input is buffered (the newest
``BUFFER_SIZE`` per source) and joined to a label image by stamp: the message of each source
nearest to the label stamp within ``sync_tolerance`` seconds (the confidence image: the same
stamp). A configured source with no such message drops out of that frame: ``*_unpaired``
when it has messages but none close enough in time (clocks or rates that do not match),
``*_missing`` when it has none at all or only older than ``MISSING_AFTER`` seconds (a silent
sensor). Messages are only checked on arrival (cheap header checks: encoding, sizes, fields,
point count); decoding happens when a message is used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from offroad_core.costmap.depth import DEPTH_ENCODINGS, DepthError
from offroad_core.costmap.pointcloud import XYZ, CloudError, Field

BUFFER_SIZE = 8
MISSING_AFTER = 1.0  # s: a source whose newest message is this much older than the labels


@dataclass(frozen=True)
class DepthMessage:
    """The raw fields of one ``sensor_msgs/Image`` depth image."""

    stamp: float
    frame_id: str
    encoding: str
    height: int
    width: int
    step: int
    data: Any
    is_bigendian: bool = False


@dataclass(frozen=True)
class CloudMessage:
    """The raw fields of one ``sensor_msgs/PointCloud2``; ``source`` is its topic."""

    stamp: float
    frame_id: str
    fields: tuple[Field, ...]
    width: int
    height: int
    point_step: int
    row_step: int
    data: Any
    is_bigendian: bool = False
    source: str = "cloud"


@dataclass
class Paired:
    """What joins one label frame: depth, clouds, confidence, and the sources that dropped out
    (reason, message)."""

    depth: DepthMessage | None = None
    clouds: list[CloudMessage] = field(default_factory=list)
    confidence: Any = None
    dropped: list[tuple[str, str]] = field(default_factory=list)


class StampBuffer:
    """The newest messages of one source, looked up by nearest stamp."""

    def __init__(self, size: int = BUFFER_SIZE) -> None:
        """Keep ``size`` messages."""
        self._items: deque[tuple[float, Any]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, stamp: float, item: Any) -> None:
        """Buffer one message."""
        self._items.append((stamp, item))

    def newest(self) -> float | None:
        """Stamp of the newest message, None when empty."""
        return max((s for s, _ in self._items), default=None)

    def gap(self, stamp: float) -> float:
        """Smallest |message stamp - stamp| (inf when empty)."""
        return min((abs(s - stamp) for s, _ in self._items), default=float("inf"))

    def nearest(self, stamp: float, tolerance: float) -> Any:
        """The message nearest to ``stamp`` within ``tolerance``, else None."""
        best = min(self._items, key=lambda item: abs(item[0] - stamp), default=None)
        if best is None or abs(best[0] - stamp) > tolerance:
            return None
        return best[1]

    def clear(self) -> None:
        """Forget every message."""
        self._items.clear()


class SensorSync:
    """Buffers of one depth source, any number of cloud sources and the confidence image."""

    def __init__(self, tolerance: float, depth: bool, clouds: Sequence[str], confidence: bool,
                 max_points: int) -> None:
        """Which sources are configured; ``max_points`` bounds a cloud's point count."""
        self.tolerance, self.max_points = tolerance, max_points
        self.depth = StampBuffer() if depth else None
        self.clouds = {name: StampBuffer() for name in clouds}
        self.confidence = StampBuffer() if confidence else None

    def add_depth(self, msg: DepthMessage) -> None:
        """Buffer a depth image; :class:`DepthError` for a broken header."""
        if self.depth is None:
            return
        if msg.encoding.lower() not in DEPTH_ENCODINGS:
            raise DepthError("depth_bad_encoding", f"depth encoding {msg.encoding!r} is not "
                             "16UC1 (mm) or 32FC1 (m)")
        self.depth.add(msg.stamp, msg)

    def add_cloud(self, msg: CloudMessage) -> None:
        """Buffer a cloud; :class:`CloudError` for a too large cloud or no x/y/z fields."""
        buffer = self.clouds.get(msg.source)
        if buffer is None:
            return
        n = int(msg.width) * int(msg.height)
        if n > self.max_points:
            raise CloudError("cloud_too_large", f"cloud on {msg.source} has {n} points "
                             f"({msg.width}x{msg.height}), more than max_cloud_points "
                             f"{self.max_points}")
        names = {f.name for f in msg.fields}
        missing = [name for name in XYZ if name not in names]
        if missing:
            raise CloudError("cloud_missing_fields", f"cloud on {msg.source} has no field(s) "
                             f"{', '.join(missing)} (fields: {', '.join(sorted(names)) or 'none'})")
        buffer.add(msg.stamp, msg)

    def add_confidence(self, stamp: float, image: Any) -> None:
        """Buffer a confidence image (joined by exact stamp)."""
        if self.confidence is not None:
            self.confidence.add(stamp, image)

    def take(self, stamp: float) -> Paired:
        """The inputs joining the labels stamped ``stamp``."""
        out = Paired()
        if self.depth is not None:
            out.depth = self.depth.nearest(stamp, self.tolerance)
            if out.depth is None:
                out.dropped.append(self._why("depth", self.depth, stamp))
        for name, buffer in self.clouds.items():
            msg = buffer.nearest(stamp, self.tolerance)
            if msg is None:
                out.dropped.append(self._why("cloud", buffer, stamp, name))
            else:
                out.clouds.append(msg)
        if self.confidence is not None:
            out.confidence = self.confidence.nearest(stamp, 1e-6)
        return out

    def _why(self, kind: str, buffer: StampBuffer, stamp: float,
             name: str = "") -> tuple[str, str]:
        what = f"{kind} {name}".strip()
        newest = buffer.newest()
        if newest is None or stamp - newest > MISSING_AFTER:
            age = "none received" if newest is None else f"newest {stamp - newest:.2f} s older"
            return f"{kind}_missing", f"{what}: no message for the labels at {stamp:.3f} ({age})"
        return f"{kind}_unpaired", (f"{what}: no message within sync_tolerance "
                                    f"{self.tolerance} s of the labels at {stamp:.3f} (nearest "
                                    f"{buffer.gap(stamp):.3f} s)")

    def clear(self) -> None:
        """Forget every buffered message."""
        for buffer in (self.depth, self.confidence, *self.clouds.values()):
            if buffer is not None:
                buffer.clear()
