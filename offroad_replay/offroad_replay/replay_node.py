"""``offroad replay BAG`` / ``replay``: the thin rclpy publisher over :mod:`.bag_replay`.

One node (``offroad_bag_replay``), one publisher per replayed topic (raw CDR), ``/clock``.
Exit status: 0 done or stopped (SIGINT/SIGTERM, e.g. by launch: a stop is not a crash, the
summary says "stopped"), 2 bad bag or options (one clear error line). Signals are stop
requests (:mod:`offroad_core.node_signals`), looked at between messages and while waiting.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Any

from offroad_core.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from offroad_core.node_signals import (
    defer_stop_signals,
    ignore_stop_signals,
    restore_signals,
    stop_requested,
)
from offroad_replay.bag_replay import (
    CLOCK_TOPIC,
    QOS_CHOICES,
    BagError,
    BagSource,
    QosSpec,
    ReplayOptions,
    replay,
)

NODE_NAME = "offroad_bag_replay"
EXIT_BAG_ERROR = EXIT_BAD_INPUT


def message_class(msgtype: str) -> Any:
    """The rclpy message class of ``pkg/msg/Type``; ImportError/AttributeError if absent."""
    pkg, _, name = msgtype.rpartition("/")
    module = importlib.import_module(pkg.replace("/", "."))
    return getattr(module, name)


def _qos_profile(spec: QosSpec) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=spec.depth,
        reliability=(ReliabilityPolicy.RELIABLE if spec.reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if spec.durability == "transient_local"
                    else DurabilityPolicy.VOLATILE))


def _wait_for_subscribers(node: Any, publishers: dict[str, Any], topics: list[str],
                          timeout: float) -> None:
    """Block until each of ``topics`` (target names) has a matched subscription."""
    deadline = time.monotonic() + timeout
    by_target = {pub.topic_name: pub for pub in publishers.values()}
    for topic in topics:
        name = topic if topic.startswith("/") else f"/{topic}"
        pub = by_target.get(name)
        if pub is None:
            raise BagError(f"--wait-for {topic}: not a replayed topic "
                           f"({', '.join(sorted(by_target))})")
        while pub.get_subscription_count() == 0:
            if stop_requested() is not None:
                return
            if time.monotonic() > deadline:
                raise BagError(f"--wait-for {topic}: no subscriber within {timeout:.0f} s")
            time.sleep(0.02)


def run(args: argparse.Namespace) -> int:
    """Replay the bag described by parsed ``args``; returns the exit status."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    options = ReplayOptions(rate=args.rate, loop=args.loop, start_offset=args.start_offset,
                            topics=args.topics or (), remaps=args.remap or (),
                            qos=args.qos or (), clock_hz=0.0 if args.no_clock else args.clock_hz,
                            max_loops=args.max_loops)
    try:
        source = BagSource(args.bag, options)
    except BagError as exc:
        print(f"offroad replay: {exc}", file=sys.stderr)
        return EXIT_BAG_ERROR
    previous_handlers = defer_stop_signals()
    rclpy.init(args=args.ros_args, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(NODE_NAME)
    log = node.get_logger()
    try:
        publishers = {}
        skipped = []
        for plan in source.plans.values():
            try:
                cls = message_class(plan.msgtype)
            except (ImportError, AttributeError):
                skipped.append(plan)
                continue
            publishers[plan.source] = node.create_publisher(cls, plan.target,
                                                            _qos_profile(plan.qos))
        if skipped:
            log.warning("skipping topics whose message type rclpy cannot import (build/source "
                        "the package that defines it): "
                        + ", ".join(f"{p.source} [{p.msgtype}]" for p in skipped))
            source.drop([p.source for p in skipped])
        if not publishers:
            raise BagError(f"nothing to replay from {args.bag}: no importable message types")
        clock_pub = None
        if options.clock_hz > 0:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, 10)
        log.info(source.describe())
        _wait_for_subscribers(node, publishers, args.wait_for or [], args.wait_timeout)
        if args.delay > 0:
            time.sleep(args.delay)

        def publish(topic: str, data: bytes) -> None:
            publishers[topic].publish(data)

        def publish_clock(stamp_ns: int) -> None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, 1_000_000_000)
            clock_pub.publish(msg)

        stats = replay(source, publish, publish_clock if clock_pub is not None else None,
                       keep_going=lambda: stop_requested() is None and rclpy.ok())
        stopped = stop_requested() is not None
        log.info(f"replay {'stopped by a signal' if stopped else 'finished'}:\n" + stats.summary(
            {p.source: p.target for p in source.plans.values()}))
        if args.linger > 0 and not stopped:
            time.sleep(args.linger)
        return EXIT_OK
    except BagError as exc:
        if stop_requested() is not None:
            return EXIT_OK
        log.error(str(exc))
        return EXIT_BAG_ERROR
    finally:
        source.close()
        node.destroy_node()
        rclpy.try_shutdown()
        restore_signals(previous_handlers)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The replay options (shared by ``offroad replay`` and ``replay``)."""
    parser.add_argument("bag", help="rosbag2 directory (metadata.yaml) or a .db3/.mcap file")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--loop", action="store_true", help="play again from the start "
                        "(the /clock jumps back at every pass)")
    parser.add_argument("--max-loops", type=int, default=0,
                        help="with --loop: stop after this many passes (0 = until Ctrl-C)")
    parser.add_argument("--start-offset", type=float, default=0.0, metavar="SECONDS",
                        help="skip this many seconds after the first message")
    parser.add_argument("--topics", nargs="+", metavar="TOPIC",
                        help="replay only these topics (names in the bag)")
    parser.add_argument("--remap", action="append", metavar="OLD:=NEW",
                        help="publish bag topic OLD as NEW (repeatable)")
    parser.add_argument("--qos", action="append", metavar="TOPIC=PROFILE",
                        help=f"publisher QoS of a bag topic: {', '.join(QOS_CHOICES)} "
                             "(default: reliable; latched when recorded transient-local)")
    parser.add_argument("--clock-hz", type=float, default=100.0,
                        help="/clock publishing rate between messages (Hz)")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--delay", type=float, default=0.5, metavar="SECONDS",
                        help="wait after creating the publishers (DDS discovery)")
    parser.add_argument("--wait-for", action="append", metavar="TOPIC",
                        help="before playing, wait until TOPIC (target name) has a subscriber "
                             "(repeatable)")
    parser.add_argument("--wait-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="give up --wait-for after this long")
    parser.add_argument("--linger", type=float, default=0.5, metavar="SECONDS",
                        help="keep the publishers alive this long after the last message "
                             "(reliable delivery of the tail)")
    parser.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER,
                        help="ROS arguments passed to rclpy.init (e.g. -r __ns:=/robot)")


def register(subparsers: Any) -> None:
    """Add ``offroad replay`` (entry point group ``offroad.commands``)."""
    parser = subparsers.add_parser(
        "replay", help="play a rosbag2 (sqlite3/mcap) into the ROS graph with /clock",
        description="Play a rosbag2 bag into the live ROS graph (for machines without "
                    "`ros2 bag play`): raw CDR per topic, /clock, rate, loop, offset, remaps.")
    add_arguments(parser)
    parser.set_defaults(func=_run_with_ros_args)


def _run_with_ros_args(args: argparse.Namespace) -> int:
    # Never let rcl read sys.argv: it would take "--remap a:=b" for a (deprecated) ROS remap.
    program = sys.argv[0] if sys.argv else "replay"
    args.ros_args = [program, "--ros-args", *args.ros_args] if args.ros_args else [program]
    return run(args)


def main(argv: list[str] | None = None) -> int:
    """Console script ``replay`` (same options as ``offroad replay``); its process ignores
    SIGINT/SIGTERM once the exit status is decided."""
    defer_stop_signals()
    try:
        parser = argparse.ArgumentParser(prog="replay",
                                         description=__doc__.splitlines()[0])
        add_arguments(parser)
        return _run_with_ros_args(parser.parse_args(argv))
    finally:
        ignore_stop_signals()


if __name__ == "__main__":
    sys.exit(main())
