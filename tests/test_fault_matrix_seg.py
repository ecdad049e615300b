"""Fault matrix of the segmentation node (issue 15), raw input: one real node process over DDS
fed malformed images, absurd sizes, odd stamps, bursts with memory sampled, runtime parameter
changes and broken CameraInfo, in sequence. Machinery: ``tests/fault_matrix``.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fault_matrix"))
from matrix import NodeProcess, Problems, RssSampler, new_tally
from seg_peer import (
    IMG_H,
    IMG_W,
    NODE,
    SegPeer,
    common_checks,
    frame,
    frame_case,
    key,
    node_env,
    seg_args,
)

from offroad_core.testing import build_tiny_model

pytestmark = pytest.mark.ros
MB = 2**20
BURST_GROWTH_FLOOR_MB = 50  # measured peak - idle: +5.4 MB (truncated burst), +4.4 MB (good)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", 64, 80,
                            confidence=True, seed=3)


def image_cases(peer: SegPeer) -> list:
    """(label, message, reason or None for accepted, text the diagnostics must show)."""
    def changed(base=None, **fields):
        msg = base if base is not None else peer.raw(frame(1))
        for name, value in fields.items():
            setattr(msg, name, value)
        return msg

    nv12 = peer.raw(frame(2), "nv12")
    padded = peer.raw(frame(3))
    rows = np.frombuffer(bytes(padded.data), np.uint8).reshape(IMG_H, IMG_W * 3)
    padded.data, padded.step = np.pad(rows, ((0, 0), (0, 13))).tobytes(), IMG_W * 3 + 13
    bgr = changed(peer.raw(frame(8), "bgr8"), encoding="BGR8")
    bgr.header.frame_id = ""
    from builtin_interfaces.msg import Time
    return [
        ("image: encoding bayer_rggb8", changed(encoding="bayer_rggb8"), "unsupported_encoding",
         "bayer_rggb8"),
        ("image: empty encoding", changed(encoding=""), "unsupported_encoding", "''"),
        ("image: depth encoding 16UC1", changed(encoding="16UC1"), "unsupported_encoding",
         "16UC1"),
        ("image: height 0", changed(height=0), "zero_size", "zero size"),
        ("image: width 0", changed(width=0), "zero_size", "zero size"),
        ("image: no data", changed(data=b""), "truncated_data", "the message has 0"),
        ("image: one byte short", changed(data=bytes(IMG_H * IMG_W * 3 - 1)), "truncated_data",
         "needs"),
        ("image: step shorter than a row", changed(step=IMG_W * 3 - 1), "bad_step", "step"),
        ("image: step 2^31", changed(step=2**31), "truncated_data", "needs"),
        ("image: declares 12000x12000", changed(height=12000, width=12000, step=36000),
         "too_large", "12000x12000"),
        ("image: width 2^32-1", changed(width=2**32 - 1, step=2**32 - 1), "too_large",
         "4294967295"),
        ("image: rgba8 declared on rgb8 rows", changed(encoding="rgba8"), "bad_step", "rgba8"),
        ("image: yuv422 odd width", changed(peer.raw(frame(4), "yuv422"), width=IMG_W - 1),
         "bad_dimensions", "even width"),
        ("image: nv12 odd height", changed(peer.raw(frame(5), "nv12"), height=IMG_H - 1),
         "bad_dimensions", "even width and height"),
        ("image: nv12 without its chroma plane",
         changed(nv12, data=bytes(nv12.data)[: IMG_H * IMG_W]), "truncated_data", "nv12"),
        ("image: 1x1 pixel", peer.raw(frame(6, 1, 1)), None, ""),
        ("image: 4096x1 strip", peer.raw(frame(7, 1, 4096)), None, ""),
        ("image: rows padded by 13 bytes, is_bigendian 1", changed(padded, is_bigendian=1),
         None, ""),
        ("image: upper-case BGR8, empty frame_id", bgr, None, ""),
        ("image: stamped 1 h in the future (passed through)",
         peer.raw(frame(9), stamp=peer.stamp(3600.0)), None, ""),
        ("image: stamp zero (passed through)", peer.raw(frame(10), stamp=Time()), None, ""),
    ]


def burst_case(peer, node, tally, label, messages) -> None:
    """Publish ``messages`` back to back; every received frame is processed, dropped or
    rejected; peak RSS stays within the floor of the idle figure; the node then serves."""
    problems = Problems()
    before = {k: peer.counter(k) for k in ("frames_received", "frames_processed",
                                           "frames_dropped", "frames_rejected")}
    with RssSampler(node.pid) as rss:
        idle = rss.now()
        for msg in messages:  # ~300 Hz: faster than the node decodes and infers
            peer.publish(msg)
            peer.spin(0.003)
        peer.spin(3)
        peer.fresh_diagnostics()
        peak = rss.peak
    delta = {k: peer.counter(k) - v for k, v in before.items()}
    accounted = delta["frames_processed"] + delta["frames_dropped"] + delta["frames_rejected"]
    if delta["frames_received"] < 1 or accounted != delta["frames_received"]:
        problems.add("wrong", f"counters do not add up: {delta}")
    growth = (peak - idle) / MB
    print(f"\n{label}: idle {idle / MB:.0f} MB, peak {peak / MB:.0f} MB (+{growth:.1f} MB), "
          f"{delta}")
    if growth > BURST_GROWTH_FLOOR_MB:
        problems.add("wrong", f"peak RSS {growth:.0f} MB above idle")
    common_checks(peer, node, node.mark(), None, set(), False, problems)
    tally.record(label, problems)


PARAMETER_CASES = [
    # (name, value, accepted, text the refusal must contain)
    ("provider", "gpu", False, "read-only"),
    ("performance_mode", "turbo", False, "read-only"),
    ("input_transport", "x", False, "read-only"),
    ("model_path", "/nonexistent", False, "read-only"),
    ("use_camera_info", False, False, "read-only"),
    ("lifecycle", True, False, "read-only"),
    ("overlay_alpha", 2.0, False, "out of range"),
    ("overlay_alpha", float("nan"), False, "out of range"),
    ("overlay_alpha", "x", False, "type"),
    ("overlay_alpha", 0.25, True, ""),
    ("confidence_threshold", 1.5, False, "out of range"),
    ("confidence_threshold", 0.5, True, ""),
    ("confidence_threshold", 0.0, True, ""),
    ("debug_extra_latency_ms", float("inf"), False, "out of range"),
    # rclpy's reason omits the name here ("undeclared parameter(s): []", an rclpy bug)
    ("confidence_treshold", 0.5, False, "undeclared parameter"),
]


def parameter_case(peer, node, tally, name, value, accepted, needle) -> None:
    """A runtime change: applied (reads back, SegmentationInfo shows it where it should) or
    refused with the reason (reads back the old value); the node serves either way."""
    label = f"parameter: {name} := {value!r}"
    problems = Problems()
    old = peer.get_parameter(NODE, name)
    infos = len(peer.seg_infos)
    result = peer.set_parameter(NODE, name, value)
    now = peer.get_parameter(NODE, name)
    if result is None:
        problems.add("hang", "no answer from set_parameters")
    elif result.successful != accepted:
        problems.add("wrong", f"successful={result.successful} ({result.reason!r})")
    elif not accepted and needle.lower() not in result.reason.lower():
        problems.add("unclear", f"reason {result.reason!r} does not say {needle!r}")
    elif accepted and now != value:
        problems.add("wrong", f"reads back {now!r}")
    elif not accepted and old != now:
        problems.add("wrong", f"refused but reads back {now!r} (was {old!r})")
    elif accepted and name == "confidence_threshold":
        peer.spin(3, lambda: len(peer.seg_infos) > infos)
        if not peer.seg_infos or peer.seg_infos[-1].confidence_threshold != value:
            problems.add("wrong", "SegmentationInfo does not show the new threshold")
    common_checks(peer, node, node.mark(), None, set(), False, problems)
    tally.record(label, problems)


def camera_cases(peer: SegPeer) -> list:
    """(label, CameraInfo the node must not republish, text the diagnostics must show)."""
    nan, inf = float("nan"), float("inf")

    def k(**entries):
        values = list(peer.camera().k)
        for index, value in entries.items():
            values[int(index[1:])] = value
        return values
    return [
        ("camera_info: fx NaN", peer.camera(k=k(i0=nan)), "non-finite"),
        ("camera_info: fy inf", peer.camera(k=k(i4=inf)), "non-finite"),
        ("camera_info: cx NaN", peer.camera(k=k(i2=nan)), "non-finite"),
        ("camera_info: fx 0", peer.camera(k=k(i0=0.0)), "must be positive"),
        ("camera_info: fy negative", peer.camera(k=k(i4=-100.0)), "must be positive"),
        ("camera_info: fx 1e12", peer.camera(k=k(i0=1e12)), "field of view"),
        ("camera_info: cx 1e9", peer.camera(k=k(i2=1e9)), "principal point"),
        ("camera_info: D NaN", peer.camera(d=[0.1, nan, 0, 0, 0]), "non-finite"),
        ("camera_info: plumb_bob with 3 coefficients", peer.camera(d=[0.1, 0.01, 0.0]),
         "takes 5 coefficients"),
        ("camera_info: distortion fisheye", peer.camera(distortion_model="fisheye",
                                                        d=[0.1, 0, 0, 0]), "fisheye"),
        ("camera_info: P NaN", peer.camera(p=[nan] * 12), "R or P"),
        ("camera_info: R inf", peer.camera(r=[inf] * 9), "R or P"),
        ("camera_info: width 0", peer.camera(width=0), "camera size 0x128"),
        ("camera_info: width 100000", peer.camera(width=100000), "not within"),
        ("camera_info: 640x480 for 160x128 images", peer.camera(width=640, height=480),
         "640x480 images, the image is 160x128"),
    ]


def camera_case(peer, node, tally, seen, label, info, needle) -> None:
    """A bad CameraInfo: labels still published, camera_info withheld and counted; a good
    CameraInfo afterwards is republished with the next frame."""
    problems = Problems()
    mark = node.mark()
    before = peer.counter("rejected_bad_camera_info")
    peer.publish(info)
    peer.spin(0.3)
    msg = peer.raw(frame(11))
    if peer.labels_for(msg) is None:
        problems.add("wrong", "labels withheld because of the CameraInfo")
    if not peer.wait_counter("rejected_bad_camera_info", before + 1):
        problems.add("wrong", f"not counted ({peer.diag.get('last_error')!r})")
    elif needle not in peer.diag.get("last_error", ""):
        problems.add("unclear", f"{needle!r} not in {peer.diag.get('last_error')!r}")
    if key(msg) in peer.camera_info:
        problems.add("wrong", "the invalid CameraInfo was republished")
    peer.publish(peer.camera())
    peer.spin(0.3)
    good = peer.raw(frame(12))
    peer.labels_for(good)
    if not peer.spin(5, lambda: key(good) in peer.camera_info):
        problems.add("hang", "a good CameraInfo is not republished afterwards")
    common_checks(peer, node, mark, "bad_camera_info", seen, False, problems)
    tally.record(label, problems)


def test_segmentation_node_fault_matrix_raw_input(model, pytestconfig):
    tally = new_tally(pytestconfig, "segmentation node, raw input")
    node = NodeProcess(seg_args(model, "use_camera_info:=true", "publish_confidence:=true"),
                       node_env())
    peer = SegPeer()
    seen: set[str] = set()
    try:
        peer.wait_for_node(node)
        for label, msg, reason, needle in image_cases(peer):
            frame_case(peer, node, tally, seen, label, msg, reason, needle=needle)
        big = frame(13, 480, 640)
        truncated = []
        for _ in range(60):
            msg = peer.raw(big)
            msg.data = bytes(msg.data)[:-1]
            truncated.append(msg)
        burst_case(peer, node, tally, "burst: 60 truncated 640x480 frames", truncated)
        burst_case(peer, node, tally, "burst: 60 good 640x480 frames",
                   [peer.raw(big) for _ in range(60)])
        for case in PARAMETER_CASES:
            parameter_case(peer, node, tally, *case)
        for label, info, needle in camera_cases(peer):
            camera_case(peer, node, tally, seen, label, info, needle)
        assert not peer.diag.get("fault_image") and not peer.diag.get("fault_camera_info")
    finally:
        peer.close()
        status = node.stop()
    assert status == 0, node.text()[-3000:]
    tally.check(minimum=50)

