"""Colour overlay of labels on the model-resolution input image."""

from __future__ import annotations

import cv2
import numpy as np


def palette_lut(palette: tuple[tuple[int, int, int], ...], ignore_index: int) -> np.ndarray:
    """Return a (256, 3) uint8 lookup table from a contract palette; other values black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    lut[ignore_index] = 0
    return lut


def blend_overlay(rgb: np.ndarray, labels: np.ndarray, lut: np.ndarray,
                  alpha: float) -> np.ndarray:
    """Blend class colours over ``rgb``: ``(1 - alpha) * rgb + alpha * colour`` (uint8 RGB)."""
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"overlay: image {rgb.shape[:2]} and labels {labels.shape} differ")
    colours = lut[labels]
    return cv2.addWeighted(np.ascontiguousarray(rgb), 1.0 - alpha, colours, alpha, 0.0)
