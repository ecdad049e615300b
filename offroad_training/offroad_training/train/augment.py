"""Training augmentation: RandomScale + RandomCrop, flip, colour jitter, blur, grayscale, shadow,
random erasing.

Semantics (the seed's recipe plus the camera domain-gap augmentations, every number a field of
the config's ``augment:`` section, :class:`AugmentParams`):

1. The *base* image is the full frame resized to the model size (crop height x width), exactly
   as evaluation and the robot see it; a scale ``s ~ U(scale_min, scale_max)`` is applied to that
   base and a crop of the model size is taken at a uniform random offset. Where the scaled image
   is smaller than the crop, the crop is padded (image 0, labels 255 = ignore).
2. Horizontal flip (p = ``hflip_p``), ``ColorJitter(brightness, contrast, saturation, hue)``
   (p = ``color_jitter_p``), Gaussian blur (p = ``blur_p``, sigma uniform in ``blur_sigma``),
   grayscale (p = ``grayscale_p``), a random shadow (p = ``shadow_p``: a random polygon
   darkened by a factor ``1 - intensity``, intensity uniform in ``shadow_intensity``) and
   random erasing (p = ``erasing_p``; the labels under the erased box are kept, as
   torchvision's RandomErasing does) come from albumentations, which transforms image and mask
   together. Blur, grayscale and shadow are off by default (the seed's recipe has none); they
   model the gap between the datasets' cameras and the robot's (defocus and motion blur,
   washed-out colour, canopy shadows); ``seed_full.yaml`` turns them on and says why.

Decision (throughput): the scale+crop step is a *windowed* resize. The crop window is mapped
back to source pixels and only that window is resized (one ``cv2.resize`` per image, labels
with nearest), instead of resizing the whole frame twice and throwing most of it away; and when
the window needs at most 1/2, 1/4 or 1/8 of the source resolution, the JPEG is decoded at that
reduced size (libjpeg's DCT scaling, which averages like an area resize); the remaining
factor (< 2x shrink, or an enlargement) is bilinear. ``bench/bench_train_data.py`` measures
the gain against the plain albumentations pipeline
(Resize -> RandomScale -> PadIfNeeded -> RandomCrop).

Every random draw of a sample comes from a generator seeded by ``(seed, epoch, index)``: the
augmentation of a sample is a pure function of those three numbers, whatever worker runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from offroad_core.exit_codes import CommandError
from offroad_core.ontology import IGNORE_INDEX

REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


class AugmentError(CommandError, ValueError):
    """An image or label file cannot be read for training."""


@dataclass
class AugmentParams:
    """The ``augment:`` section of the training config (defaults: the seed's recipe)."""

    scale_min: float = 0.5
    scale_max: float = 2.0
    hflip_p: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.15
    color_jitter_p: float = 1.0
    blur_p: float = 0.0
    blur_sigma: list[float] = field(default_factory=lambda: [0.5, 2.0])
    grayscale_p: float = 0.0
    shadow_p: float = 0.0
    shadow_intensity: list[float] = field(default_factory=lambda: [0.3, 0.6])
    erasing_p: float = 0.3
    erasing_scale: list[float] = field(default_factory=lambda: [0.02, 0.33])
    erasing_ratio: list[float] = field(default_factory=lambda: [0.3, 3.3])

    def invalid(self) -> list[str]:
        """Names of the fields whose values are out of range."""
        probs = ("hflip_p", "color_jitter_p", "blur_p", "grayscale_p", "shadow_p", "erasing_p")
        pairs = ("blur_sigma", "shadow_intensity", "erasing_scale", "erasing_ratio")
        bad = [k for k in probs if not 0.0 <= getattr(self, k) <= 1.0]
        bad += [k for k in pairs if len(getattr(self, k)) != 2
                or not 0 <= getattr(self, k)[0] <= getattr(self, k)[1]]
        if not 0 < self.scale_min <= self.scale_max:
            bad.append("scale_min")
        if not 0.0 <= self.shadow_intensity[-1] <= 1.0:
            bad.append("shadow_intensity")
        return bad


def photometric_pipeline(p: AugmentParams):  # returns albumentations.Compose
    """Return the albumentations Compose: flip, colour jitter, blur, grayscale, shadow, erasing."""
    import albumentations as A  # noqa: N812 (conventional name)

    return A.Compose([
        A.HorizontalFlip(p=p.hflip_p),
        A.ColorJitter(brightness=p.brightness, contrast=p.contrast, saturation=p.saturation,
                      hue=p.hue, p=p.color_jitter_p),
        A.GaussianBlur(sigma_limit=tuple(p.blur_sigma), blur_limit=0, p=p.blur_p),
        A.ToGray(num_output_channels=3, p=p.grayscale_p),
        A.RandomShadow(shadow_roi=(0.0, 0.0, 1.0, 1.0), num_shadows_limit=(1, 2),
                       shadow_dimension=5, shadow_intensity_range=tuple(p.shadow_intensity),
                       p=p.shadow_p),
        A.Erasing(scale=tuple(p.erasing_scale), ratio=tuple(p.erasing_ratio), fill=0,
                  fill_mask=None, p=p.erasing_p),
    ], seed=0)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch (SplitMix-style mixing, stable across runs)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB)
    x &= (1 << 64) - 1
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    x ^= x >> 29
    return x >> 1


def _read_image(path: Path, reduce: int) -> np.ndarray:
    flag = REDUCED_FLAGS[reduce] if path.suffix.lower() in (".jpg", ".jpeg") else cv2.IMREAD_COLOR
    bgr = cv2.imread(str(path), flag)
    if bgr is None:
        raise AugmentError(f"cannot read image {path} (missing or corrupt)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _read_labels(path: Path) -> np.ndarray:
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2 or labels.dtype != np.uint8:
        raise AugmentError(f"cannot read labels {path} as a single-channel uint8 PNG")
    return labels


def _window_resize(src: np.ndarray, win: tuple[float, float, float, float],
                   out_hw: tuple[int, int], interp: int, fill: int) -> np.ndarray:
    """Resize the source window ``(x0, y0, x1, y1)`` (source pixels, may exceed the image)
    to ``out_hw``; parts outside the image get ``fill``. Uses one affine warp (a resize of just
    the window, pixel-centre aligned like ``cv2.resize``)."""
    x0, y0, x1, y1 = win
    oh, ow = out_hw
    sx, sy = (x1 - x0) / ow, (y1 - y0) / oh
    # out pixel centre (u + 0.5) maps to source x0 + (u + 0.5) * sx - 0.5
    m = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
    border_value = (fill, fill, fill) if src.ndim == 3 else fill
    return cv2.warpAffine(src, m, (ow, oh), flags=interp | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


class TrainAugment:
    """Load and augment one training sample from its files (see the module docstring)."""

    def __init__(self, params: AugmentParams, height: int, width: int) -> None:
        self.p = params
        self.height, self.width = height, width
        self.photometric = photometric_pipeline(params)

    def __call__(self, image_path: Path, label_path: Path,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(rgb uint8 (H, W, 3), labels uint8 (H, W))`` at the crop size."""
        p, height, width = self.p, self.height, self.width
        rng = np.random.default_rng(seed)
        s = float(rng.uniform(p.scale_min, p.scale_max))
        sh, sw = height * s, width * s  # scaled base size
        oy = float(rng.uniform(0.0, sh - height)) if sh > height else (sh - height) / 2
        ox = float(rng.uniform(0.0, sw - width)) if sw > width else (sw - width) / 2
        labels = _read_labels(label_path)  # full size: gives the source size before decoding
        src_h, src_w = labels.shape
        fy, fx = src_h / sh, src_w / sw  # source pixels per scaled-base pixel
        win = (ox * fx, oy * fy, (ox + width) * fx, (oy + height) * fy)
        reduce = 1
        for r in (8, 4, 2):  # decode smaller when the window still has >= 1 px per output px
            if min(fx, fy) / r >= 1.0:
                reduce = r
                break
        rgb = _read_image(image_path, reduce)
        ry, rx = rgb.shape[0] / src_h, rgb.shape[1] / src_w
        if abs(rgb.shape[0] * reduce - src_h) >= reduce or \
                abs(rgb.shape[1] * reduce - src_w) >= reduce:
            raise AugmentError(f"image {image_path} ({rgb.shape[1] * reduce}x"
                               f"{rgb.shape[0] * reduce}) and labels {label_path} "
                               f"({src_w}x{src_h}) differ in size")
        rwin = (win[0] * rx, win[1] * ry, win[2] * rx, win[3] * ry)
        img = _window_resize(rgb, rwin, (height, width), cv2.INTER_LINEAR, 0)
        lab = _window_resize(labels, win, (height, width), cv2.INTER_NEAREST, IGNORE_INDEX)
        self.photometric.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        out = self.photometric(image=img, mask=lab)
        return out["image"], out["mask"]
