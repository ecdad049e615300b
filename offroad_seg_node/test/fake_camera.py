"""Camera stand-in process: publish one rgb8 frame at a fixed rate with fresh stamps.

    python fake_camera.py <seconds> <rate_hz> <height> <width> <reliability>

Prints "started" once the node's subscription matched and "sent <n> <last stamp ns>" at the
end.
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main() -> None:
    seconds, rate = float(sys.argv[1]), float(sys.argv[2])
    height, width, reliability = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    rclpy.init()
    node = rclpy.create_node("fake_camera")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE
                     if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT)
    pub = node.create_publisher(Image, "image", qos)
    while pub.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    msg.data = rgb.tobytes()
    msg.header.frame_id = "cam"
    print("started", flush=True)
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        sent += 1
    last = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    print(f"sent {sent} {last}", flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
