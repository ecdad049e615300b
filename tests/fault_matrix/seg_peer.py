"""The segmentation node under the fault matrix: its process, a DDS peer and the case runners.

One node process serves many cases in sequence. A case publishes a bad input, waits until
/diagnostics counts it under the expected reason, then publishes a good frame and waits for
its labels (the node still serves), and checks the log named the reason the first time it
occurred, that no output carries the bad input's stamp and that nothing else was counted.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from matrix import NodeProcess, Peer, Problems, Tally

from offroad_core import imaging

NODE = "offroad_segmentation"
IMG_H, IMG_W = 128, 160
K = [100.0, 0.0, 79.5, 0.0, 100.0, 63.5, 0.0, 0.0, 1.0]


def node_env() -> dict[str, str]:
    """The test session's ROS environment with plain, unbuffered log lines."""
    return {**os.environ, "RCUTILS_COLORIZED_OUTPUT": "0", "RCUTILS_LOGGING_BUFFERED_STREAM": "0"}


def seg_args(model: Path, *params: str, ros_args: tuple[str, ...] = ()) -> list[str]:
    """Command line of the node with the test's base parameters plus ``params``."""
    args = [sys.executable, "-m", "offroad_seg_node.segmentation_node", "--ros-args", *ros_args,
            "-p", f"model_path:={model}", "-p", "provider:=cpu", "-p",
            "qos_reliability:=reliable", "-p", "diagnostics_period:=0.2"]
    for p in params:
        args += ["-p", p]
    return args


def frame(seed: int, height: int = IMG_H, width: int = IMG_W) -> np.ndarray:
    """A deterministic smooth RGB frame."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    return imaging.resize_to_model(small, width, height)


class SegPeer(Peer):
    """Publishes images (raw and compressed) and CameraInfo; collects every output by stamp."""

    def __init__(self) -> None:
        """Publishers and subscriptions on the node's default topic names."""
        super().__init__("fault_matrix_seg_peer")
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        from offroad_seg_msgs.msg import SegmentationInfo

        pub, sub = self.node.create_publisher, self.node.create_subscription
        burst = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)  # bursts arrive
        self.raw_pub = pub(Image, "image", burst)
        self.compressed_pub = pub(CompressedImage, "image/compressed", burst)
        self.info_pub = pub(CameraInfo, "camera_info", self.qos)
        self.labels: dict[tuple[int, int], Any] = {}
        self.camera_info: dict[tuple[int, int], Any] = {}
        self.seg_infos: list[Any] = []
        sub(Image, "segmentation/labels", lambda m: self.labels.__setitem__(key(m), m), self.qos)
        sub(CameraInfo, "segmentation/camera_info",
            lambda m: self.camera_info.__setitem__(key(m), m), self.qos)
        sub(SegmentationInfo, "segmentation/info", self.seg_infos.append,
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.Image, self.CompressedImage, self.CameraInfo = Image, CompressedImage, CameraInfo
        self._n = 0

    def wait_for_node(self, node: NodeProcess, compressed: bool = False) -> None:
        """Until the node subscribed and published its SegmentationInfo."""
        pub = self.compressed_pub if compressed else self.raw_pub
        ok = self.spin(40, lambda: pub.get_subscription_count() > 0 and self.seg_infos
                       and self.diag_count > 0)
        assert ok, f"node did not come up: {node.text()[-2000:]}"

    def stamp(self, offset: float = 0.0) -> Any:
        """A unique stamp ``offset`` seconds from now."""
        from builtin_interfaces.msg import Time

        self._n += 1
        ns = time.time_ns() + int(offset * 1e9)
        ns = ns - ns % 1000 + self._n % 1000
        return Time(sec=ns // 10**9, nanosec=ns % 10**9)

    def raw(self, rgb: np.ndarray, encoding: str = "rgb8", stamp: Any = None) -> Any:
        """An Image of ``rgb`` in ``encoding``."""
        step, data = imaging.encode_image(rgb, encoding)
        msg = self.Image(encoding=encoding, height=rgb.shape[0], width=rgb.shape[1], step=step)
        msg.data = data
        msg.header.stamp = stamp if stamp is not None else self.stamp()
        msg.header.frame_id = "camera"
        return msg

    def compressed(self, data: bytes, fmt: str, stamp: Any = None) -> Any:
        """A CompressedImage."""
        msg = self.CompressedImage(format=fmt)
        msg.data = data
        msg.header.stamp = stamp if stamp is not None else self.stamp()
        msg.header.frame_id = "camera"
        return msg

    def camera(self, **changes: Any) -> Any:
        """A valid CameraInfo for the test frames, with ``changes``."""
        fields = {"width": IMG_W, "height": IMG_H, "k": K, "d": [0.0] * 5,
                  "distortion_model": "plumb_bob",
                  "p": [100.0, 0, 79.5, 0, 0, 100.0, 63.5, 0, 0, 0, 1, 0]}
        return self.CameraInfo(**{**fields, **changes})

    def publish(self, msg: Any) -> None:
        """Publish on the topic of the message's type."""
        if isinstance(msg, self.CameraInfo):
            self.info_pub.publish(msg)
        elif isinstance(msg, self.CompressedImage):
            self.compressed_pub.publish(msg)
        else:
            self.raw_pub.publish(msg)

    def labels_for(self, msg: Any, wait: float = 10.0) -> Any:
        """Publish ``msg`` and return its labels (None if none within ``wait``)."""
        self.publish(msg)
        k = key(msg)
        self.spin(wait, lambda: k in self.labels)
        return self.labels.get(k)

    def good(self, compressed: bool) -> Any:
        """A good frame on the node's input."""
        if compressed:
            return self.compressed(imaging.encode_compressed(frame(self._n), "jpeg"), "jpeg")
        return self.raw(frame(self._n))


def key(msg: Any) -> tuple[int, int]:
    """A message's stamp as a dict key."""
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def common_checks(peer: SegPeer, node: NodeProcess, mark: int, reason: str | None,
                  seen: set[str], compressed: bool, problems: Problems) -> None:
    """Alive; the next good frame is processed; the first log line of ``reason``; no
    traceback."""
    if not node.alive():
        problems.add("crash", f"exit status {node.proc.returncode}: {node.text()[-800:]}")
        return
    if peer.labels_for(peer.good(compressed)) is None:
        problems.add("hang", "the next good frame gave no labels within 10 s")
    if reason is not None and reason not in seen:
        if not node.wait_for_line(f"[{reason}, ", mark, 3.0):
            problems.add("unclear", f"no log line names {reason}")
        seen.add(reason)
    if any("Traceback" in line for line in node.output_since(mark)):
        problems.add("unclear", "traceback in the log: " + " | ".join(node.output_since(mark)))


def frame_case(peer: SegPeer, node: NodeProcess, tally: Tally, seen: set[str], label: str,
               msg: Any, reason: str | None, compressed: bool = False,
               needle: str = "") -> None:
    """One input frame: refused under ``reason`` (or, ``reason`` None, processed)."""
    problems = Problems()
    mark = node.mark()
    before = peer.counter(f"rejected_{reason}") if reason else 0
    total = peer.counter("frames_rejected")
    if reason is None:
        if peer.labels_for(msg) is None:
            problems.add("wrong", f"a valid frame gave no labels ({peer.diag.get('last_error')})")
    else:
        peer.publish(msg)
        if not peer.wait_counter(f"rejected_{reason}", before + 1) and node.alive():
            problems.add("wrong", (f"not counted as rejected_{reason} (last_error "
                                 f"{peer.diag.get('last_error')!r})"))
        elif needle and needle not in peer.diag.get("last_error", ""):
            problems.add("unclear", f"{needle!r} not in {peer.diag.get('last_error')!r}")
        if key(msg) in peer.labels:
            problems.add("wrong", "labels were published for the refused frame")
    common_checks(peer, node, mark, reason, seen, compressed, problems)
    peer.fresh_diagnostics()
    extra = peer.counter("frames_rejected") - total - (reason is not None)
    if extra and "crash" not in problems:
        problems.add("wrong", f"{extra} more rejection(s) than expected: {peer.diag}")
    tally.record(label, problems)
