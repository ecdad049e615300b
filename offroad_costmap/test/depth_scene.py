"""Geometric test scenes for the depth mode, independent of the costmap code: a ground that is
flat up to ``ramp_start`` and then rises with grade ``ramp_grade`` (along +x), axis-aligned
boxes standing on it (obstacles, raised plateaus: steps), each surface with a class. Ray cast
analytically; renders labels + depth (optical z) for a camera and a ring LiDAR cloud.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from offroad_core.camera import Camera

SKY = 6


@dataclass
class Box:
    """Axis-aligned box [x0, x1] x [y0, y1] x [z0, z1] of one class."""

    x0: float
    x1: float
    y0: float
    y1: float
    z1: float
    cls: int = 3
    z0: float = -5.0

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Ray length to the box (inf if none), rays o + t d."""
        tmin = np.zeros(len(d))
        tmax = np.full(len(d), np.inf)
        for axis, lo, hi in ((0, self.x0, self.x1), (1, self.y0, self.y1), (2, self.z0, self.z1)):
            dd = np.where(np.abs(d[:, axis]) > 1e-12, d[:, axis], 1e-12)
            ta, tb = (lo - o[axis]) / dd, (hi - o[axis]) / dd
            tmin = np.maximum(tmin, np.minimum(ta, tb))
            tmax = np.minimum(tmax, np.maximum(ta, tb))
        return np.where((tmin <= tmax) & (tmin > 1e-9), tmin, np.inf)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)


@dataclass
class ReliefScene:
    """Ground (class ``ground_cls``, patches) + ramp + boxes."""

    boxes: list[Box] = field(default_factory=list)
    ramp_start: float = math.inf
    ramp_grade: float = 0.0
    ground_cls: int = 0
    patches: list[tuple[float, float, float, int]] = field(default_factory=list)  # x, y, r, cls

    def ground_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.where(x > self.ramp_start, (x - self.ramp_start) * self.ramp_grade, 0.0)

    def cast(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t, class) of rays; t inf and SKY for no hit."""
        n = len(d)
        t = np.full(n, np.inf)
        down = d[:, 2] < -1e-12
        t_flat = np.where(down, -o[2] / np.where(down, d[:, 2], -1.0), np.inf)
        x_flat = o[0] + t_flat * d[:, 0]
        t = np.where(x_flat <= self.ramp_start, t_flat, t)
        if self.ramp_grade > 0:
            # z = g (x - xs): o_z + t d_z = g (o_x + t d_x - xs)
            den = d[:, 2] - self.ramp_grade * d[:, 0]
            safe = np.where(np.abs(den) > 1e-12, den, 1e-12)
            t_ramp = (self.ramp_grade * (o[0] - self.ramp_start) - o[2]) / safe
            x_ramp = o[0] + t_ramp * d[:, 0]
            ok = (t_ramp > 1e-9) & (x_ramp > self.ramp_start)
            t = np.where(ok & (t_ramp < t), t_ramp, t)
        cls = np.full(n, SKY, np.uint8)
        hit = np.isfinite(t)
        with np.errstate(invalid="ignore"):
            px, py = o[0] + t * d[:, 0], o[1] + t * d[:, 1]
        cls[hit] = self.ground_cls
        for x, y, r, c in self.patches:
            cls[hit & ((px - x) ** 2 + (py - y) ** 2 <= r * r)] = c
        for box in self.boxes:
            tb = box.hit(o, d)
            closer = tb < t
            t = np.where(closer, tb, t)
            cls[closer] = box.cls
        return t, cls

    def render(self, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        """(labels uint8, depth float32 optical z, NaN no return) at pixel centres."""
        intr = camera.intrinsics
        uv = intr.pixel_grid()
        rays_opt = intr.pixel_rays_optical(uv)
        rays = rays_opt @ camera.pose.rotation_optical.T
        t, cls = self.cast(camera.pose.translation, rays)
        depth = (t * rays_opt[:, 2]).astype(np.float32)
        depth[~np.isfinite(depth)] = np.nan
        shape = (intr.height, intr.width)
        return cls.reshape(shape), depth.reshape(shape)

    def lidar(self, origin: tuple[float, float, float], rings: int = 32, columns: int = 1024,
              fov_deg: tuple[float, float] = (-30.0, 15.0),
              max_range: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) points in the LiDAR frame (axes of base_link, at ``origin``) and classes."""
        el = np.radians(np.linspace(fov_deg[0], fov_deg[1], rings))
        az = np.linspace(-np.pi, np.pi, columns, endpoint=False)
        e, a = np.meshgrid(el, az, indexing="ij")
        d = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)
        o = np.asarray(origin, float)
        t, cls = self.cast(o, d)
        ok = t < max_range
        return (d[ok] * t[ok, None]).astype(np.float32), cls[ok]

    def truth_levels(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Class of the top surface at cell centres (boxes win over ground)."""
        out = np.full(xs.shape, self.ground_cls, np.uint8)
        for x, y, r, c in self.patches:
            out[(xs - x) ** 2 + (ys - y) ** 2 <= r * r] = c
        for box in self.boxes:
            out[box.contains(xs, ys)] = box.cls
        return out
