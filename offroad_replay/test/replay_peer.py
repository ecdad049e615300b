"""Subscriber process for the replay tests: records what ``offroad replay`` publishes.

Usage: replay_peer.py IMAGE_TOPIC INFO_TOPIC LATCHED_TOPIC EXPECTED_IMAGES TIMEOUT_S
Prints ``ready`` once subscribed, then one JSON line: per image (arrival wall time, header
stamp ns, first pixel byte), camera_info stamps, /clock values (ns), latched message count.
"""

import json
import sys
import time

import rclpy
from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def main() -> int:
    image_topic, info_topic, latched_topic = sys.argv[1:4]
    expected, timeout = int(sys.argv[4]), float(sys.argv[5])
    rclpy.init()
    node = rclpy.create_node("replay_peer")
    got = {"images": [], "infos": [], "clock": [], "latched": 0}
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(
        Image, image_topic,
        lambda m: got["images"].append([time.monotonic(), stamp_ns(m.header), m.data[0]]),
        reliable)
    node.create_subscription(CameraInfo, info_topic,
                             lambda m: got["infos"].append(stamp_ns(m.header)), reliable)
    node.create_subscription(
        Clock, "/clock",
        lambda m: got["clock"].append(m.clock.sec * 1_000_000_000 + m.clock.nanosec),
        QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(
        OccupancyGrid, latched_topic, lambda m: got.__setitem__("latched", got["latched"] + 1),
        QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.TRANSIENT_LOCAL))
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got["images"]) < expected:
        rclpy.spin_once(node, timeout_sec=0.05)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps(got), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
