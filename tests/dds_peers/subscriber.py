"""Receives one of each sample message and prints their fields as JSON, then exits."""

import json
import time

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from samples import fields_of
from sensor_msgs.msg import Image

from offroad_seg_msgs.msg import SegmentationInfo, SegmentationStats


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("dds_sample_subscriber")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    received: dict = {}

    def keep(key):
        return lambda msg: received.setdefault(key, fields_of(msg))

    node.create_subscription(SegmentationInfo, "segmentation/info", keep("info"), latched)
    node.create_subscription(SegmentationStats, "segmentation/stats", keep("stats"), reliable)
    node.create_subscription(Image, "camera/image_raw", keep("image"), reliable)
    deadline = time.monotonic() + 60
    while len(received) < 3 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(received), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
