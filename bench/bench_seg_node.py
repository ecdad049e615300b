"""Benchmark of offroad_seg_node's host work and of DDS transport of large images.

    python bench/bench_seg_node.py [--frames 200] [--dds-frames 150] [--skip-dds]

1. Host overhead per 1280x1080 rgb8 frame, EXCLUDING the engine run: message -> model input
   (decode + resize) plus model output -> published message (labels Image, stats fractions).
   The node's path (zero-copy decode, uint8 model input, uint8 labels from the graph,
   ``msg.data = labels.tobytes()``) against a naive path in the same run (float normalisation and
   NCHW transpose on the CPU, float logits, numpy argmax, numpy array assigned to ``msg.data``).
   Target: node median <= 3 ms, ratio >= 5x.
2. DDS transport latency (receive time - header.stamp) of 1280x1080 rgb8 at 30 Hz between two
   processes, best-effort and reliable, with the default Fast DDS configuration and with
   ``launch/config/fastdds_large_images.xml``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "launch" / "config" / "fastdds_large_images.xml"
WIDTH, HEIGHT = 1280, 1080


def _camera_message(rgb: np.ndarray):
    """A received-like sensor_msgs/Image (data is rclpy's array.array after deserialisation)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.frame_id = "camera"
    msg.height, msg.width, msg.encoding, msg.step = HEIGHT, WIDTH, "rgb8", WIDTH * 3
    msg.data = rgb.tobytes()
    return deserialize_message(serialize_message(msg), Image)


def bench_host(frames: int) -> dict[str, float]:
    """Time the node's host path and the naive path on the same frames."""
    from sensor_msgs.msg import Image

    from offroad_core.contract import DEFAULT_HEIGHT, DEFAULT_WIDTH
    from offroad_core.engine import InferenceEngine
    from offroad_core.imaging import resize_to_model
    from offroad_core.segmentation.pipeline import FramePipeline
    from offroad_core.testing import build_tiny_model
    from offroad_seg_node.conversions import array_to_image, class_fractions, message_to_rgb

    tmp = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    labels_model = build_tiny_model(tmp / "labels.onnx", DEFAULT_HEIGHT, DEFAULT_WIDTH)
    logits_model = build_tiny_model(tmp / "logits.onnx", DEFAULT_HEIGHT, DEFAULT_WIDTH,
                                    output_kind="logits")
    pipeline = FramePipeline(InferenceEngine(labels_model, "cpu", num_threads=1))
    contract = pipeline.contract
    mean = np.array(contract.mean, np.float32)
    std = np.array(contract.std, np.float32)
    rng = np.random.default_rng(0)
    rgb = cv2_smooth(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    msg = _camera_message(rgb)
    # engine outputs computed once, outside the timed regions
    model_out = pipeline.infer(pipeline.preprocess(message_to_rgb(msg)))
    logits = InferenceEngine(logits_model, "cpu", num_threads=1).run(
        resize_to_model(rgb, contract.width, contract.height)).logits[None]

    ours, naive = [], []
    for _ in range(frames):
        t0 = time.perf_counter()
        model_input = pipeline.preprocess(message_to_rgb(msg))
        t1 = time.perf_counter()
        result = pipeline.postprocess(model_input, model_out)
        array_to_image(result.labels, "mono8", msg.header)
        class_fractions(result.labels, contract.num_classes)
        t2 = time.perf_counter()
        ours.append((t1 - t0) + (t2 - t1))

        t0 = time.perf_counter()
        frame = np.frombuffer(msg.data, np.uint8).reshape(HEIGHT, WIDTH, 3)
        resized = resize_to_model(frame, contract.width, contract.height)
        tensor = ((resized.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)[None]
        tensor = np.ascontiguousarray(tensor)
        t1 = time.perf_counter()
        labels = np.argmax(logits, axis=1)[0].astype(np.uint8)
        naive_msg = Image()
        naive_msg.header = msg.header
        naive_msg.height, naive_msg.width = labels.shape
        naive_msg.encoding, naive_msg.step = "mono8", labels.shape[1]
        naive_msg.data = labels.reshape(-1)  # numpy array assigned: element-wise copy
        t2 = time.perf_counter()
        naive.append((t1 - t0) + (t2 - t1))
    return {"ours_ms": float(np.median(ours) * 1e3),
            "ours_p90_ms": float(np.percentile(ours, 90) * 1e3),
            "naive_ms": float(np.median(naive) * 1e3)}


def cv2_smooth(rgb: np.ndarray) -> np.ndarray:
    """Blur noise into a photo-like image (JPEG/resize cost closer to a real frame)."""
    import cv2

    return cv2.GaussianBlur(rgb, (0, 0), 3)


# ---------------------------------------------------------------------------- DDS transport
def _qos(reliability: str):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                      else ReliabilityPolicy.BEST_EFFORT)


def run_publisher(reliability: str, frames: int) -> None:
    """Peer process: publish ``frames`` 1280x1080 rgb8 images at 30 Hz once a reader matched."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_image_publisher")
    pub = node.create_publisher(Image, "bench_image", _qos(reliability))
    data = np.random.default_rng(1).integers(0, 256, HEIGHT * WIDTH * 3, dtype=np.uint8).tobytes()
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)
    msg = Image()
    msg.height, msg.width, msg.encoding, msg.step = HEIGHT, WIDTH, "rgb8", WIDTH * 3
    msg.data = data
    start = time.monotonic()
    for i in range(frames):
        time.sleep(max(0.0, start + i / 30.0 - time.monotonic()))
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = str(i)
        pub.publish(msg)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def run_subscriber(reliability: str, frames: int) -> None:
    """Peer process: receive for the publisher's duration; print latencies as JSON."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_image_subscriber")
    latencies: list[float] = []

    def on_image(msg: Image) -> None:
        now = node.get_clock().now().nanoseconds
        latencies.append((now - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) / 1e6)

    node.create_subscription(Image, "bench_image", on_image, _qos(reliability))
    print("ready", flush=True)
    end = time.monotonic() + 30 + frames / 30.0 + 3
    while time.monotonic() < end and len(latencies) < frames:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(latencies), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def bench_dds(reliability: str, profile: bool, frames: int) -> dict[str, float]:
    """Run publisher and subscriber processes; return delivered count and p50/p90 latency."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = env.get("ROS_DOMAIN_ID", "") or "42"
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if profile:
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    me = [sys.executable, __file__]
    sub = subprocess.Popen([*me, "--role", "sub", reliability, str(frames)], env=env,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout.readline().strip() == "ready"
        subprocess.run([*me, "--role", "pub", reliability, str(frames)], env=env, check=True,
                       timeout=120)
        out, _ = sub.communicate(timeout=60)
    finally:
        if sub.poll() is None:
            sub.kill()
    lat = np.array(json.loads(out.strip().splitlines()[-1]))
    return {"delivered": int(lat.size), "sent": frames,
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p90_ms": float(np.percentile(lat, 90)) if lat.size else float("nan")}


def main() -> int:
    """Run the benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--dds-frames", type=int, default=150)
    parser.add_argument("--skip-dds", action="store_true")
    parser.add_argument("--role", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        role, reliability, frames = args.role
        (run_publisher if role == "pub" else run_subscriber)(reliability, int(frames))
        return 0
    host = bench_host(args.frames)
    ratio = host["naive_ms"] / host["ours_ms"]
    print(f"host overhead per 1280x1080 rgb8 frame (engine run excluded), {args.frames} frames:")
    print(f"  node path : median {host['ours_ms']:.2f} ms, p90 {host['ours_p90_ms']:.2f} ms "
          f"(target <= 3 ms: {'OK' if host['ours_ms'] <= 3 else 'MISSED'})")
    print(f"  naive path: median {host['naive_ms']:.2f} ms")
    print(f"  ratio     : {ratio:.1f}x (target >= 5x: {'OK' if ratio >= 5 else 'MISSED'})")
    if args.skip_dds:
        return 0
    print(f"DDS transport 1280x1080 rgb8 at 30 Hz, {args.dds_frames} frames, two processes:")
    for profile in (False, True):
        for reliability in ("best_effort", "reliable"):
            r = bench_dds(reliability, profile, args.dds_frames)
            name = "shipped profile" if profile else "default Fast DDS"
            print(f"  {name:16s} {reliability:11s}: delivered {r['delivered']:3d}/{r['sent']}, "
                  f"p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
