"""Pinhole camera model with distortion and a mounting pose on the robot.

One camera model serves the synthetic-world renderer (ray casting), the costmap projection and
the tests, so a frame rendered with a camera re-projects with the same camera.

Frames (REP-103 / REP-105):
    ``base_link``  x forward, y left, z up; the ground is the plane z = 0.
    camera body    the camera's own "link" frame, x forward (optical axis), y left, z up; its
                   pose in ``base_link`` is :class:`CameraPose` (x, y, z, roll, pitch, yaw, in
                   metres and radians; positive pitch looks down, REP-103 right-hand rule).
    optical frame  z forward, x right, y down (REP-103 ``*_optical_frame``); intrinsics apply
                   to it.

Distortion follows ROS ``sensor_msgs/CameraInfo``: ``plumb_bob`` (k1, k2, p1, p2, k3) and
``rational_polynomial`` (k1, k2, p1, p2, k3, k4, k5, k6), the OpenCV model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DISTORTION_MODELS = ("none", "plumb_bob", "rational_polynomial")
MAX_IMAGE_SIDE = 16384  # pixels: larger is a broken message, not a camera

# Rotation taking optical-frame vectors to camera-body-frame vectors.
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0],
                                [-1.0, 0.0, 0.0],
                                [0.0, -1.0, 0.0]])


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


@dataclass(frozen=True)
class CameraIntrinsics:
    """Image size, pinhole matrix and distortion of a camera (CameraInfo's K, D)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "none"
    d: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        if not (0 < self.width <= MAX_IMAGE_SIDE and 0 < self.height <= MAX_IMAGE_SIDE):
            raise ValueError(f"camera size {self.width}x{self.height} is not within "
                             f"1..{MAX_IMAGE_SIDE} pixels")
        numbers = (self.fx, self.fy, self.cx, self.cy, *self.d)
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError(f"camera matrix or distortion has a non-finite value: fx={self.fx}, "
                             f"fy={self.fy}, cx={self.cx}, cy={self.cy}, d={list(self.d)}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths fx={self.fx}, fy={self.fy} must be positive")
        if self.distortion_model not in DISTORTION_MODELS:
            raise ValueError(f"distortion model {self.distortion_model!r} is not one of "
                             f"{', '.join(DISTORTION_MODELS)}")
        expected = {"plumb_bob": 5, "rational_polynomial": 8}.get(self.distortion_model)
        if expected is not None and len(self.d) not in (0, expected):
            raise ValueError(f"{self.distortion_model} takes {expected} coefficients, "
                             f"got {len(self.d)}")

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> CameraIntrinsics:
        """Build an undistorted camera with square pixels and the given horizontal FOV."""
        fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)

    @classmethod
    def from_camera_info(cls, width: int, height: int, k: Any, d: Any,
                         distortion_model: str) -> CameraIntrinsics:
        """Build from CameraInfo fields (row-major 3x3 ``k``; empty model means none).

        The one CameraInfo validator of the project: ``ValueError`` with the reason for a K
        that is not 3x3, non-finite numbers, a non-positive focal length or size, an
        unsupported distortion model, or a K no lens has: a field of view outside
        1..179 degrees or a principal point more than one image size outside the image.
        """
        k = np.asarray(k, dtype=float)
        if k.size != 9:
            raise ValueError(f"K has {k.size} values, expected 9 (row-major 3x3)")
        k = k.reshape(3, 3)
        d = tuple(float(v) for v in d)
        model = distortion_model or "none"
        if model == "none" or not any(d):
            model, d = "none", ()
        intr = cls(int(width), int(height), float(k[0, 0]), float(k[1, 1]), float(k[0, 2]),
                   float(k[1, 2]), model, d)
        for axis, f, c, size in (("x", intr.fx, intr.cx, intr.width),
                                 ("y", intr.fy, intr.cy, intr.height)):
            fov = math.degrees(2 * math.atan2(size, 2 * f))
            if not 1.0 <= fov <= 179.0:
                raise ValueError(f"f{axis}={f:g} gives a {fov:.3g} degree field of view over "
                                 f"{size} pixels (plausible: 1..179)")
            if not -size <= c <= 2 * size:
                raise ValueError(f"principal point c{axis}={c:g} is more than the image size "
                                 f"({size} pixels) outside the image")
        return intr

    @property
    def k(self) -> np.ndarray:
        """The 3x3 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def dist_coeffs(self) -> np.ndarray:
        """Distortion coefficients in OpenCV order (zeros when undistorted)."""
        return np.asarray(self.d if self.d else (0.0,) * 5, dtype=np.float64)

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """Return the same camera resampled to ``width`` x ``height`` pixels.

        Pixel centres map as in ``cv2.resize``: u' = (u + 0.5) * s - 0.5. Distortion is in
        normalised coordinates and does not change.
        """
        k = rescale_k(self.k, *scale_factors(self.width, self.height, width, height))
        return CameraIntrinsics(width, height, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]),
                                float(k[1, 2]), self.distortion_model, self.d)

    def project_optical(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) optical-frame points to (N, 2) pixels; also return z > 0 mask."""
        points = np.asarray(points, dtype=np.float64)
        z = points[:, 2]
        in_front = z > 1e-9
        safe_z = np.where(in_front, z, 1.0)
        x, y = points[:, 0] / safe_z, points[:, 1] / safe_z
        x, y = self._distort(x, y)
        uv = np.stack([self.fx * x + self.cx, self.fy * y + self.cy], axis=1)
        return uv, in_front

    def pixel_rays_optical(self, uv: np.ndarray) -> np.ndarray:
        """Return (N, 3) unit rays in the optical frame through pixel positions ``uv`` (N, 2)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        x = (uv[:, 0] - self.cx) / self.fx
        y = (uv[:, 1] - self.cy) / self.fy
        if self.distortion_model != "none":
            import cv2

            pts = cv2.undistortPoints(uv.reshape(-1, 1, 2), self.k, self.dist_coeffs,
                                      criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS,
                                                50, 1e-10))
            x, y = pts[:, 0, 0], pts[:, 0, 1]
        rays = np.stack([x, y, np.ones_like(x)], axis=1)
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def pixel_grid(self) -> np.ndarray:
        """Return (H*W, 2) pixel centre coordinates in row-major order."""
        v, u = np.mgrid[0:self.height, 0:self.width]
        return np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)

    def _distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.distortion_model == "none" or not self.d:
            return x, y
        d = list(self.d) + [0.0] * (8 - len(self.d))
        k1, k2, p1, p2, k3, k4, k5, k6 = d
        r2 = x * x + y * y
        radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd


@dataclass(frozen=True)
class CameraPose:
    """Pose of the camera body frame in ``base_link``: metres and radians (REP-103)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 1.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    @property
    def translation(self) -> np.ndarray:
        """Camera origin in ``base_link`` (3,)."""
        return np.array([self.x, self.y, self.z])

    @property
    def rotation_body(self) -> np.ndarray:
        """Rotation base_link <- camera body, R = Rz(yaw) Ry(pitch) Rx(roll)."""
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        return rz @ ry @ rx

    @property
    def rotation_optical(self) -> np.ndarray:
        """Rotation base_link <- optical frame."""
        return self.rotation_body @ R_BODY_FROM_OPTICAL


@dataclass(frozen=True)
class Camera:
    """A camera: intrinsics plus mounting pose. Conversions between pixels and ``base_link``."""

    intrinsics: CameraIntrinsics
    pose: CameraPose

    def pixel_rays_base(self, uv: np.ndarray) -> np.ndarray:
        """Unit rays (N, 3) in ``base_link`` through pixels ``uv`` (N, 2)."""
        return self.intrinsics.pixel_rays_optical(uv) @ self.pose.rotation_optical.T

    def pixels_to_ground(self, uv: np.ndarray,
                         max_range: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
        """Intersect pixel rays with the ground plane z = 0.

        Returns (N, 2) ground points (x, y) in ``base_link`` and a mask of pixels whose ray goes
        down and hits the ground within ``max_range`` metres (horizontal distance from the
        camera); other entries are NaN.
        """
        rays = self.pixel_rays_base(uv)
        origin = self.pose.translation
        dz = rays[:, 2]
        hits = dz < -1e-9
        t = np.where(hits, -origin[2] / np.where(hits, dz, -1.0), np.nan)
        xy = origin[:2] + rays[:, :2] * t[:, None]
        dist = np.hypot(xy[:, 0] - origin[0], xy[:, 1] - origin[1])
        hits &= dist <= max_range
        xy[~hits] = np.nan
        return xy, hits

    def base_to_pixels(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) ``base_link`` points to pixels; mask = in front of and inside image."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        optical = (points - self.pose.translation) @ self.pose.rotation_optical
        uv, in_front = self.intrinsics.project_optical(optical)
        w, h = self.intrinsics.width, self.intrinsics.height
        inside = in_front & (uv[:, 0] > -0.5) & (uv[:, 0] < w - 0.5) & (uv[:, 1] > -0.5) & (
            uv[:, 1] < h - 0.5)
        return uv, inside
