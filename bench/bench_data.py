"""Dataset throughput: frames/s of ``offroad data convert`` and of synthetic rendering.

Convert: a generated RELLIS-3D-layout tree (1280x1080 JPEG frames with photo-like texture and
uint8 label-id PNGs with several classes and an unknown value) converted at 1280x1080
(``--base-size native``) with ``offroad_training.data.convert.convert`` (worker processes,
LUT label mapping, atomic writes, progress log, stats). Naive baseline in the same run on the
same files: one process, ``cv2.imread`` / per-class ``np.where`` mapping loop / ``cv2.imwrite``
with default PNG compression, no stats. Target: >= 20 frames/s on 2 cores.

Synth: ``offroad_training.synth.render_frame`` at 1280x1080 (one process), if importable.

    python bench/bench_data.py [--frames 80] [--workers 2] [--synth-frames 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from offroad_training.data import fixtures
from offroad_training.data.convert import convert
from offroad_training.data.mappings import get_mapping

W, H = 1280, 1080
VALUES = (7, 4, 19, 3, 1, 10, 33, 6, 0, 2)  # sky, tree, bush, grass, dirt, ... 2 = unknown


def make_tree(root: Path, n: int) -> Path:
    frames = []
    rng = np.random.default_rng(0)
    for i in range(n):
        raw = fixtures.stripes(list(rng.permutation(VALUES)), W, H)
        raw[: H // 3] = 7
        frames.append((f"0000{i % 5}", f"frame{i:06d}-1581624652_{i:03d}",
                       fixtures.textured_image(W, H, i), raw))
    return fixtures.write_rellis3d(root, frames)


def naive(root: Path, out: Path) -> int:
    mapping = get_mapping("rellis3d")
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    n = 0
    for img in sorted((root / "Rellis-3D").glob("*/pylon_camera_node/*.jpg")):
        label = img.parent.parent / "pylon_camera_node_label_id" / f"{img.stem}.png"
        bgr = cv2.imread(str(img))
        raw = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
        labels = np.full(raw.shape, 255, np.uint8)
        for c in (*mapping.classes, *mapping.extra):
            labels = np.where(raw == c.id, mapping.target_id(c.target), labels).astype(np.uint8)
        item = f"{img.parent.parent.name}_{img.stem}"
        cv2.imwrite(str(out / "images" / f"{item}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(out / "labels" / f"{item}.png"), labels)
        n += 1
    return n


def bench_synth(frames: int) -> None:
    try:
        from offroad_training import synth
    except ImportError as exc:
        print(f"synth: not importable ({exc}); skipped")
        return
    camera = synth.default_camera(width=W, height=H)
    world = synth.SyntheticWorld.generate(seed=0)
    synth.render_frame(world, camera, seed=0)  # warm-up (ray tables)
    started = time.perf_counter()
    for i in range(frames):
        synth.render_frame(world, camera, seed=i + 1)
    fps = frames / (time.perf_counter() - started)
    print(f"synth render_frame {W}x{H}: {fps:.2f} frames/s (one process, {frames} frames)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--synth-frames", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        root = make_tree(tmp_path / "src", args.frames)
        started = time.perf_counter()
        n = naive(root, tmp_path / "naive")
        naive_fps = n / (time.perf_counter() - started)
        started = time.perf_counter()
        stats = convert("rellis3d", root, tmp_path / "out", base_size=None,
                        workers=args.workers, progress=False)
        fps = args.frames / (time.perf_counter() - started)
        assert stats["converted_this_run"] == args.frames, stats["skipped"]
        started = time.perf_counter()
        convert("rellis3d", root, tmp_path / "out", base_size=None, workers=args.workers,
                progress=False)
        resume_s = time.perf_counter() - started
    print(f"data convert {W}x{H}: {fps:.1f} frames/s with {args.workers} workers "
          f"({args.frames} frames; target >= 20 on 2 cores)")
    print(f"naive single-process baseline: {naive_fps:.1f} frames/s; ratio {fps / naive_fps:.2f}x")
    print(f"re-run with everything converted (resume check): {resume_s:.2f} s")
    bench_synth(args.synth_frames)


if __name__ == "__main__":
    main()
