"""Training-data throughput: samples/s of ONE worker at 544x640 with the full augmentation.

Optimised = offroad_training.train.augment.TrainAugment (windowed scale+crop, reduced JPEG
decode, albumentations flip/ColorJitter/Erasing). Naive baseline, measured in the same run on
the same files: full-resolution OpenCV decode of image and labels, then the plain albumentations
pipeline
Resize(544x640) -> RandomScale(0.5..2.0) -> PadIfNeeded -> RandomCrop -> HorizontalFlip ->
ColorJitter -> Erasing. Source frames are 1280x1080 JPEG + PNG labels (the robot camera size)
with photo-like texture. One process, one thread: the figure is per worker (per core).
Target: >= 40 samples/s per core.

    python bench/bench_train_data.py [--samples 150] [--source 1280x1080]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

cv2.setNumThreads(1)

H, W = 544, 640


def make_files(root: Path, n: int, width: int, height: int) -> list[tuple[Path, Path]]:
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        noise = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
        rgb = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        rgb = cv2.add(rgb, rng.integers(0, 40, rgb.shape, dtype=np.uint8))
        labels = np.full((height, width), 0, np.uint8)
        labels[: height // 3] = 6
        labels[height // 3: height // 2] = 3
        labels[height // 2:, : width // 3] = 2
        labels[-40:, -60:] = 255
        img, lab = root / f"{i}.jpg", root / f"{i}.png"
        cv2.imwrite(str(img), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        cv2.imwrite(str(lab), labels)
        pairs.append((img, lab))
    return pairs


def naive_pipeline():
    import albumentations as A  # noqa: N812

    return A.Compose([
        A.Resize(H, W),
        A.RandomScale(scale_limit=(-0.5, 1.0), p=1.0),
        A.PadIfNeeded(H, W, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=255),
        A.RandomCrop(H, W),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.15, p=1.0),
        A.Erasing(p=0.3),
    ], seed=0)


def run_naive(pairs, n: int) -> float:
    pipe = naive_pipeline()
    t = time.perf_counter()
    for i in range(n):
        img, lab = pairs[i % len(pairs)]
        rgb = cv2.cvtColor(cv2.imread(str(img), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        labels = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
        out = pipe(image=rgb, mask=labels)
        assert out["image"].shape == (H, W, 3)
    return n / (time.perf_counter() - t)


def run_optimised(pairs, n: int) -> float:
    from offroad_training.train.augment import AugmentParams, TrainAugment, sample_seed

    aug = TrainAugment(AugmentParams(), H, W)
    t = time.perf_counter()
    for i in range(n):
        img, lab = pairs[i % len(pairs)]
        rgb, labels = aug(img, lab, sample_seed(0, 0, i))
        assert rgb.shape == (H, W, 3) and labels.shape == (H, W)
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--source", default="1280x1080", help="source frame WIDTHxHEIGHT")
    args = parser.parse_args()
    sw, sh = (int(v) for v in args.source.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        pairs = make_files(Path(tmp), 8, sw, sh)
        run_optimised(pairs, 5)  # warm-up (imports, first decode)
        run_naive(pairs, 5)
        opt = run_optimised(pairs, args.samples)
        naive = run_naive(pairs, args.samples)
    print(f"source {sw}x{sh} JPEG -> {W}x{H} crops, full augmentation, 1 worker / 1 thread")
    print(f"naive (full decode + plain albumentations scale/pad/crop): {naive:7.1f} samples/s")
    print(f"optimised (TrainAugment):                          {opt:7.1f} samples/s per worker")
    print(f"ratio optimised / naive: {opt / naive:.2f}x   target >= 40 samples/s per core: "
          f"{'met' if opt >= 40 else 'NOT met'}")


if __name__ == "__main__":
    main()
