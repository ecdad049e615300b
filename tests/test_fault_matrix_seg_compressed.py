"""Fault matrix of the segmentation node (issue 15), compressed input: one real node process
over DDS fed broken, mislabelled and oversized JPEG/PNG messages in sequence, and the
decompression bomb of the issue (420 KB PNG declaring 12000x12000) with the node's resident
memory sampled. Machinery: ``tests/fault_matrix``.
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fault_matrix"))
from matrix import NodeProcess, Problems, RssSampler, new_tally
from seg_peer import SegPeer, common_checks, frame, frame_case, key, node_env, seg_args

from offroad_core import imaging
from offroad_core.testing import build_tiny_model, png_bomb

pytestmark = pytest.mark.ros
MB = 2**20
# Issue 15 acceptance: peak within 50 MB of idle. Measured here: idle 132 MB, peak +2.0 MB (the
# bomb is refused after reading its 24-byte header); without the size limit +824 MB.
BOMB_GROWTH_LIMIT_MB = 50


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", 64, 80, seed=5)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header declares ``width`` x ``height``."""
    data = bytearray(imaging.encode_compressed(frame(30, 16, 16), "jpeg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def png_of(array: np.ndarray) -> bytes:
    """PNG bytes of any array cv2 writes (grey, 16-bit, BGRA)."""
    ok, data = cv2.imencode(".png", array)
    assert ok
    return data.tobytes()


def cases() -> list:
    """(label, data, format, reason or None for accepted, text the diagnostics must show)."""
    jpeg = imaging.encode_compressed(frame(31), "jpeg")
    png = imaging.encode_compressed(frame(32), "png")
    zero_width = bytearray(png)
    zero_width[16:20] = bytes(4)
    noise = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    grey = cv2.cvtColor(frame(33), cv2.COLOR_RGB2GRAY)
    return [
        ("compressed: empty png", b"", "png", "zero_size", "empty png"),
        ("compressed: empty jpeg", b"", "jpeg", "zero_size", "empty jpeg"),
        ("compressed: 100 zero bytes as jpeg", bytes(100), "jpeg", "corrupt_compressed",
         "no SOI"),
        ("compressed: jpeg cut in half", jpeg[: len(jpeg) // 2], "jpeg", "corrupt_compressed",
         "no EOI"),
        ("compressed: jpeg without a frame header",
         b"\xff\xd8\xff\xda\x00\x02" + bytes(100) + b"\xff\xd9", "jpeg", "corrupt_compressed",
         "no frame header"),
        ("compressed: png with a bad signature", b"\x00" + png[1:], "png",
         "corrupt_compressed", "bad signature"),
        ("compressed: png cut in half", png[: len(png) // 2], "png", "corrupt_compressed",
         "could not decode"),
        ("compressed: png header, then noise", png[:33] + noise, "png", "corrupt_compressed",
         "could not decode"),
        ("compressed: png declaring width 0", bytes(zero_width), "png", "corrupt_compressed",
         "declares 0x128"),
        ("compressed: jpeg declaring 12000x12000", jpeg_declaring(12000, 12000), "jpeg",
         "too_large", "12000x12000"),
        ("compressed: png declaring 16385x1", png_bomb(16385, 1), "png", "too_large",
         "16385x1"),
        ("compressed: format tiff", png, "tiff", "unsupported_encoding", "'tiff'"),
        ("compressed: empty format", png, "", "unsupported_encoding", "''"),
        ("compressed: png data labelled jpeg", png, "jpeg", "corrupt_compressed", "no SOI"),
        ("compressed: grey png", png_of(grey), "png", None, ""),
        ("compressed: 16-bit png", png_of(grey.astype(np.uint16) * 257), "png", None, ""),
        ("compressed: png with alpha", png_of(cv2.cvtColor(frame(34), cv2.COLOR_RGB2BGRA)),
         "png", None, ""),
        ("compressed: 1x1 jpeg", imaging.encode_compressed(frame(35, 1, 1), "jpeg"), "jpeg",
         None, ""),
        ("compressed: image_transport format string", jpeg, "rgb8; jpeg compressed bgr8", None,
         ""),
        ("compressed: jpeg padded with 60 bytes after EOI", jpeg + bytes(60), "jpeg", None, ""),
    ]


def bomb_case(peer, node, tally, seen: set[str], bomb: bytes) -> None:
    """The decompression bomb: refused as too_large with the node's peak memory within the
    acceptance limit of its idle figure; the next frame is processed."""
    problems = Problems()
    mark = node.mark()
    with RssSampler(node.pid) as idle_rss:
        peer.spin(1.0)
    idle = idle_rss.peak
    before = peer.counter("rejected_too_large")
    msg = peer.compressed(bomb, "png")
    with RssSampler(node.pid) as rss:
        peer.publish(msg)
        counted = peer.wait_counter("rejected_too_large", before + 1, 10)
        peer.spin(0.5)
    growth = (rss.peak - idle) / MB
    print(f"\ndecompression bomb ({len(bomb) / 1e3:.0f} KB declaring 12000x12000): idle "
          f"{idle / MB:.0f} MB, peak {rss.peak / MB:.0f} MB (+{growth:.1f} MB, "
          f"{rss.samples} samples)")
    if not counted:
        problems.add("wrong", f"not counted as too_large ({peer.diag.get('last_error')!r})")
    if key(msg) in peer.labels:
        problems.add("wrong", "the bomb was processed")
    if growth > BOMB_GROWTH_LIMIT_MB:
        problems.add("wrong", f"peak RSS +{growth:.0f} MB over idle")
    common_checks(peer, node, mark, "too_large", seen, True, problems)
    tally.record("compressed: decompression bomb, memory sampled", problems)


def test_segmentation_node_fault_matrix_compressed_input(model, pytestconfig):
    tally = new_tally(pytestconfig, "segmentation node, compressed input")
    bomb = png_bomb(12000, 12000)
    node = NodeProcess(seg_args(model, "input_transport:=compressed"), node_env())
    peer = SegPeer()
    seen: set[str] = set()
    try:
        peer.wait_for_node(node, compressed=True)
        for _ in range(3):  # warm up: the idle figure is the node having processed frames
            assert peer.labels_for(peer.good(compressed=True)) is not None
        bomb_case(peer, node, tally, seen, bomb)
        for label, data, fmt, reason, needle in cases():
            frame_case(peer, node, tally, seen, label, peer.compressed(data, fmt), reason,
                       compressed=True, needle=needle)
    finally:
        peer.close()
        status = node.stop()
    assert status == 0, node.text()[-3000:]
    tally.check(minimum=20)
