"""Depth images and the camera's point cloud, as an RGB-D camera publishes them (REP-118).

* ``16UC1``: uint16 millimetres, 0 = no return; depths beyond 65.535 m (or ``max_range``) are
  no return. Rounded to the nearest millimetre.
* ``32FC1``: float32 metres, NaN = no return.

The cloud of a depth image is organised like the image (H x W points, row-major, the point of
pixel (v, u) at index v * W + u; NaN where there is no return), in ``camera_optical_frame``:
a pixel's point is ``depth * (x_n, y_n, 1)`` with (x_n, y_n) the undistorted normalised
coordinates of its centre through the camera model, so it lies on the pixel's ray at the
rendered hit. Its ground-truth class is the label of its pixel.
"""

from __future__ import annotations

import numpy as np

from offroad_core.camera import Camera

DEPTH_ENCODINGS = ("16UC1", "32FC1")
MAX_16UC1_M = 65.535


def encode_depth(depth: np.ndarray, encoding: str = "16UC1",
                 max_range: float = MAX_16UC1_M) -> np.ndarray:
    """Depth in metres (NaN = no return) -> the image data of ``encoding``; depths beyond
    ``max_range`` (and, for 16UC1, 65.535 m) become no return."""
    depth = np.asarray(depth, np.float32)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0) & (depth <= max_range)
        if encoding == "32FC1":
            return np.where(valid, depth, np.nan).astype(np.float32)
        if encoding == "16UC1":
            mm = np.rint(np.where(valid, depth, 0.0) * 1000.0)
            return np.where(valid & (mm <= 65535), mm, 0).astype(np.uint16)
    raise ValueError(f"depth encoding must be one of {', '.join(DEPTH_ENCODINGS)}, "
                     f"got {encoding!r}")


def decode_depth(data: np.ndarray, encoding: str) -> np.ndarray:
    """Image data of ``encoding`` -> float32 metres, NaN = no return."""
    if encoding == "16UC1":
        data = np.asarray(data, np.uint16)
        return np.where(data > 0, data.astype(np.float32) / 1000.0, np.nan).astype(np.float32)
    if encoding == "32FC1":
        data = np.asarray(data, np.float32)
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(data) & (data > 0), data, np.nan).astype(np.float32)
    raise ValueError(f"depth encoding must be one of {', '.join(DEPTH_ENCODINGS)}, "
                     f"got {encoding!r}")


def depth_to_points(depth: np.ndarray, camera: Camera) -> np.ndarray:
    """Organised (H, W, 3) float32 cloud in ``camera_optical_frame`` of a depth image in
    metres (NaN or 0 = no return -> NaN point)."""
    from offroad_training.synth.render import camera_rays

    depth = np.asarray(depth, np.float32)
    intr = camera.intrinsics
    if depth.shape != (intr.height, intr.width):
        raise ValueError(f"depth image is {depth.shape[1]}x{depth.shape[0]}, the camera "
                         f"{intr.width}x{intr.height}")
    d = np.where(depth > 0, depth, np.nan)
    norm = camera_rays(camera).normalised
    return np.stack([d * norm[..., 0], d * norm[..., 1], d], axis=-1).astype(np.float32)
