"""Publishes the sample messages until killed (one OS process of the DDS exchange test)."""

import sys

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from samples import sample_image, sample_info, sample_stats
from sensor_msgs.msg import Image

from offroad_seg_msgs.msg import SegmentationInfo, SegmentationStats


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("dds_sample_publisher")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    info_pub = node.create_publisher(SegmentationInfo, "segmentation/info", latched)
    stats_pub = node.create_publisher(SegmentationStats, "segmentation/stats", reliable)
    image_pub = node.create_publisher(Image, "camera/image_raw", reliable)
    info_pub.publish(sample_info())
    stats, image = sample_stats(), sample_image()

    def tick() -> None:
        stats_pub.publish(stats)
        image_pub.publish(image)

    node.create_timer(0.1, tick)
    print("publisher ready", flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
