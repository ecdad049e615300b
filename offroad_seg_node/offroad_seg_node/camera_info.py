"""Rescale pinhole intrinsics to another image resolution (the label image of the node)."""

from __future__ import annotations

import numpy as np


def scale_factors(src_width: int, src_height: int, dst_width: int,
                  dst_height: int) -> tuple[float, float]:
    """Return (sx, sy) that map source pixel sizes to destination pixel sizes."""
    if min(src_width, src_height, dst_width, dst_height) <= 0:
        raise ValueError(f"cannot rescale {src_width}x{src_height} to {dst_width}x{dst_height}")
    return dst_width / src_width, dst_height / src_height


def rescale_k(k: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Rescale a 3x3 camera matrix for a resize by (sx, sy).

    Pixel-centre convention of ``cv2.resize`` (and ``imaging.resize_to_model``): a source
    pixel centre u maps to ``(u + 0.5) * sx - 0.5``, so
    fx' = fx sx, cx' = (cx + 0.5) sx - 0.5, and likewise for y.
    """
    out = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
    out[0, 0] *= sx
    out[0, 1] *= sx
    out[0, 2] = (out[0, 2] + 0.5) * sx - 0.5
    out[1, 1] *= sy
    out[1, 2] = (out[1, 2] + 0.5) * sy - 0.5
    return out


def rescale_p(p: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Rescale a 3x4 projection matrix like :func:`rescale_k` (Tx, Ty scale with fx, fy)."""
    out = np.asarray(p, dtype=np.float64).reshape(3, 4).copy()
    out[0, :] *= sx
    out[0, 2] += 0.5 * sx - 0.5
    out[1, :] *= sy
    out[1, 2] += 0.5 * sy - 0.5
    return out
