"""Replay a rosbag2 (sqlite3 or mcap) into the live ROS graph: the bag reading and scheduling
logic, without rclpy. The thin publisher is :mod:`offroad_replay.replay_node`
(``offroad replay BAG`` / ``replay``); it exists for machines without ``ros2 bag play``
(the PyPI ROS wheels have no rosbag2). On the robot, ``ros2 bag play`` is the tool of choice.

Decisions (what a user of ``ros2 bag play`` expects, written down):

* Messages are published as the **raw CDR bytes** stored in the bag (rclpy's serialized
  publishing, ``Publisher.publish(bytes)``), exactly like ``ros2 bag play``: no deserialise /
  re-serialise cost (a 1280x1080 rgb8 frame costs nothing to forward), and every message type
  works for which rclpy can import the Python class (needed only to create the publisher).
  Topics whose type cannot be imported are skipped and listed, never fatal.
* Timing follows the bag's **receive timestamps** (the rosbag2 log time), scaled by ``rate``;
  header stamps inside the messages are untouched. ``/clock`` (``rosgraph_msgs/Clock``)
  carries that bag time: once before every message and every ``1 / clock_hz`` in between, so
  nodes with ``use_sim_time: true`` see the header stamps as "now". With ``loop`` the clock
  jumps back to the start of the bag at every pass, as with ``ros2 bag play --loop``
  (the header stamps in the bag cannot be shifted without rewriting every message).
* ``start_offset`` seconds after the bag's first message are skipped (every pass of a loop).
* QoS per topic: reliable, keep-last ``depth`` (10), volatile; a topic recorded with a
  transient-local publisher (latched: SegmentationInfo, maps) is replayed transient-local so
  late subscribers still get it. ``--qos TOPIC=reliable|best_effort|latched`` overrides one
  topic (source name). A reliable publisher matches best-effort and reliable subscribers.
* A publisher that falls behind (rate too high for the machine) does not skip messages: it
  publishes late and reports the lateness (p50/max) at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rosbags.rosbag2 import Reader

QOS_CHOICES = ("reliable", "best_effort", "latched")
DEFAULT_DEPTH = 10
CLOCK_TOPIC = "/clock"


class BagError(ValueError):
    """A missing, unreadable or corrupt bag, or replay options that do not fit it."""


@dataclass(frozen=True)
class QosSpec:
    """Publisher QoS of one replayed topic."""

    reliability: str = "reliable"  # reliable | best_effort
    durability: str = "volatile"  # volatile | transient_local
    depth: int = DEFAULT_DEPTH

    @classmethod
    def from_name(cls, name: str, depth: int = DEFAULT_DEPTH) -> QosSpec:
        """``reliable``, ``best_effort`` or ``latched`` (reliable + transient-local, depth 1)."""
        if name == "latched":
            return cls("reliable", "transient_local", 1)
        if name in ("reliable", "best_effort"):
            return cls(name, "volatile", depth)
        raise BagError(f"QoS {name!r} is not one of {', '.join(QOS_CHOICES)}")


@dataclass(frozen=True)
class TopicPlan:
    """One bag topic to replay: source name in the bag, target name in the graph, type, QoS."""

    source: str
    target: str
    msgtype: str  # "pkg/msg/Type"
    count: int
    qos: QosSpec


@dataclass
class ReplayOptions:
    """What ``offroad replay`` was asked to do (see the module docstring)."""

    rate: float = 1.0
    loop: bool = False
    start_offset: float = 0.0
    topics: Sequence[str] = ()
    remaps: Sequence[str] = ()
    qos: Sequence[str] = ()
    clock_hz: float = 100.0  # 0 disables /clock
    max_loops: int = 0  # with loop: stop after this many passes (0 = forever)

    def check(self) -> None:
        """Raise :class:`BagError` for values that make no sense."""
        if not self.rate > 0:
            raise BagError(f"--rate must be > 0, got {self.rate}")
        if self.start_offset < 0:
            raise BagError(f"--start-offset must be >= 0, got {self.start_offset}")
        if self.clock_hz < 0:
            raise BagError(f"--clock-hz must be >= 0 (0 disables /clock), got {self.clock_hz}")


def parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    """``["old:=new", ...]`` -> ``{old: new}``; names are made absolute (``/`` prefix)."""
    table = {}
    for item in remaps:
        old, sep, new = item.partition(":=")
        if not sep or not old.strip() or not new.strip():
            raise BagError(f"remap {item!r}: expected OLD:=NEW (e.g. /camera/image_raw:=/image)")
        table[_absolute(old.strip())] = _absolute(new.strip())
    return table


def parse_qos_overrides(items: Sequence[str]) -> dict[str, QosSpec]:
    """``["TOPIC=reliable|best_effort|latched", ...]`` -> ``{topic: QosSpec}``."""
    table = {}
    for item in items:
        topic, sep, name = item.rpartition("=")
        if not sep or not topic.strip():
            raise BagError(f"--qos {item!r}: expected TOPIC={'|'.join(QOS_CHOICES)}")
        table[_absolute(topic.strip())] = QosSpec.from_name(name.strip())
    return table


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else f"/{topic}"


def recorded_qos(offered: Sequence[object]) -> QosSpec:
    """QoS for replaying a topic, from the profiles its publishers offered when recorded."""
    durabilities = {getattr(getattr(q, "durability", None), "name", "") for q in offered}
    if durabilities == {"TRANSIENT_LOCAL"}:
        return QosSpec("reliable", "transient_local", 1)
    return QosSpec()


def open_reader(path: str | Path) -> Reader:
    """Open a rosbag2 bag (directory with metadata.yaml, or a single .db3/.mcap file).

    Returns an open ``rosbags.rosbag2.Reader``; raises :class:`BagError` with the path and the
    cause when it is missing or cannot be read.
    """
    from rosbags.rosbag2 import Reader, ReaderError

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is a directory without metadata.yaml: not a rosbag2 bag "
                       "(pass the bag directory, or a single .db3/.mcap file)")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as exc:
        raise BagError(f"cannot read bag {path}: {exc}") from exc
    return reader


class BagSource:
    """A bag opened for replay: which topics, in what order, with which QoS."""

    def __init__(self, path: str | Path, options: ReplayOptions) -> None:
        """Open the bag and plan the topics; :class:`BagError` on any problem."""
        options.check()
        self.path = Path(path)
        self.options = options
        self.reader = open_reader(path)
        remaps = parse_remaps(options.remaps)
        overrides = parse_qos_overrides(options.qos)
        wanted = {_absolute(t) for t in options.topics}
        in_bag = {c.topic for c in self.reader.connections}
        missing = sorted(wanted - in_bag)
        if missing:
            raise BagError(f"topic(s) not in {self.path}: {', '.join(missing)}; the bag has "
                           f"{', '.join(sorted(in_bag)) or 'no topics'}")
        self.connections = [c for c in self.reader.connections
                            if not wanted or c.topic in wanted]
        plans: dict[str, TopicPlan] = {}
        for conn in self.connections:
            if conn.topic in plans:
                if plans[conn.topic].msgtype != conn.msgtype:
                    raise BagError(f"{self.path}: topic {conn.topic} has two types "
                                   f"({plans[conn.topic].msgtype}, {conn.msgtype})")
                old = plans[conn.topic]
                plans[conn.topic] = TopicPlan(old.source, old.target, old.msgtype,
                                              old.count + conn.msgcount, old.qos)
                continue
            offered = getattr(conn.ext, "offered_qos_profiles", [])
            plans[conn.topic] = TopicPlan(conn.topic, remaps.get(conn.topic, conn.topic),
                                          conn.msgtype, conn.msgcount,
                                          overrides.get(conn.topic, recorded_qos(offered)))
        unused = sorted(set(remaps) - set(plans))
        if unused:
            raise BagError(f"remap source(s) not replayed: {', '.join(unused)}")
        self.plans = plans
        self.start_ns = int(self.reader.start_time)
        self.end_ns = int(self.reader.end_time)
        self.first_ns = self.start_ns + round(options.start_offset * 1e9)
        if self.reader.message_count == 0:
            raise BagError(f"{self.path} holds no messages")
        if self.first_ns >= self.end_ns:
            raise BagError(f"--start-offset {options.start_offset} s is past the end of the bag "
                           f"({(self.end_ns - self.start_ns) / 1e9:.3f} s long)")

    def messages(self) -> Iterator[tuple[str, int, bytes]]:
        """One pass: ``(source topic, bag time ns, CDR bytes)`` in bag time order."""
        from rosbags.rosbag2 import ReaderError

        try:
            for conn, stamp, data in self.reader.messages(self.connections, start=self.first_ns):
                yield conn.topic, int(stamp), bytes(data)
        except (ReaderError, OSError, ValueError, KeyError) as exc:
            raise BagError(f"corrupt bag {self.path}: {exc}") from exc

    def drop(self, topics: Sequence[str]) -> None:
        """Do not replay these source topics (e.g. their message type cannot be imported)."""
        for topic in topics:
            self.plans.pop(topic, None)
        self.connections = [c for c in self.connections if c.topic in self.plans]

    def close(self) -> None:
        """Close the bag."""
        self.reader.close()

    def describe(self) -> str:
        """Human-readable summary of the bag and the replay plan."""
        lines = [f"{self.path}: {(self.end_ns - self.start_ns) / 1e9:.3f} s, "
                 f"{self.reader.message_count} messages"]
        for plan in self.plans.values():
            arrow = f" -> {plan.target}" if plan.target != plan.source else ""
            lines.append(f"  {plan.source}{arrow} [{plan.msgtype}] x{plan.count} "
                         f"({plan.qos.reliability}, {plan.qos.durability})")
        return "\n".join(lines)


@dataclass
class ReplayStats:
    """What a replay published and how late it was against the schedule."""

    published: dict[str, int] = field(default_factory=dict)
    clock_messages: int = 0
    passes: int = 0
    lateness_ms: list[float] = field(default_factory=list)

    def summary(self, targets: dict[str, str] | None = None) -> str:
        """One line per topic (``targets``: source -> published name) plus the lateness."""
        targets = targets or {}
        lines = [f"{targets.get(topic, topic)}: {count}"
                 for topic, count in sorted(self.published.items())]
        lines.append(f"/clock: {self.clock_messages}; passes: {self.passes}")
        if self.lateness_ms:
            late = np.asarray(self.lateness_ms)
            lines.append(f"lateness vs schedule: p50 {np.median(late):.2f} ms, "
                         f"max {late.max():.2f} ms")
        return "\n".join(lines)


def replay(source: BagSource, publish: Callable[[str, bytes], None],
           publish_clock: Callable[[int], None] | None = None, *,
           now: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep,
           keep_going: Callable[[], bool] = lambda: True) -> ReplayStats:
    """Publish every planned message of ``source`` on schedule; return the statistics.

    ``publish(source_topic, cdr)`` sends one message, ``publish_clock(bag_ns)`` one ``/clock``
    (``None`` or ``clock_hz == 0``: no clock). ``now``/``sleep`` are injectable for tests;
    ``keep_going()`` returning False stops the replay between messages.
    """
    opts = source.options
    clock = publish_clock if opts.clock_hz > 0 else None
    clock_period = 1.0 / opts.clock_hz if clock else None
    stats = ReplayStats(published=dict.fromkeys(source.plans, 0))
    while keep_going():
        wall0 = now()

        def bag_now(wall0: float = wall0) -> int:
            return source.first_ns + round((now() - wall0) * opts.rate * 1e9)

        for topic, stamp, data in source.messages():
            due = wall0 + (stamp - source.first_ns) / 1e9 / opts.rate
            while True:
                remaining = due - now()
                if remaining <= 0 or not keep_going():
                    break
                if clock_period is None:
                    sleep(remaining)
                    continue
                sleep(min(remaining, clock_period))
                if due - now() > 0:
                    clock(min(bag_now(), stamp))
                    stats.clock_messages += 1
            if not keep_going():
                return stats
            stats.lateness_ms.append(max(0.0, (now() - due) * 1e3))
            if clock is not None:
                clock(stamp)
                stats.clock_messages += 1
            publish(topic, data)
            stats.published[topic] += 1
        stats.passes += 1
        if not opts.loop or (opts.max_loops and stats.passes >= opts.max_loops):
            break
    return stats
