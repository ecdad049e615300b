"""Ray-cast test scenes independent of the costmap code: a flat ground with class regions and
vertical obstacles (cylinders and boxes) of known footprint and height, rendered through
``offroad_core.camera.Camera`` at pixel centres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from offroad_core.camera import Camera

SKY = 6


@dataclass
class Obstacle:
    """A vertical obstacle: cylinder (radius > 0) or axis-aligned box (half sizes)."""

    x: float
    y: float
    height: float
    cls: int = 3
    radius: float = 0.0
    half_x: float = 0.0
    half_y: float = 0.0

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.radius > 0:
            return (x - self.x) ** 2 + (y - self.y) ** 2 <= self.radius ** 2
        return (np.abs(x - self.x) <= self.half_x) & (np.abs(y - self.y) <= self.half_y)

    def hit_t(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Ray parameter of the first hit of rays o + t d (N, 3), inf if none."""
        n = len(d)
        if self.radius > 0:
            ox, oy = o[0] - self.x, o[1] - self.y
            a = d[:, 0] ** 2 + d[:, 1] ** 2
            b = 2 * (ox * d[:, 0] + oy * d[:, 1])
            c = ox * ox + oy * oy - self.radius ** 2
            disc = b * b - 4 * a * c
            ok = (disc >= 0) & (a > 1e-12)
            t = np.full(n, np.inf)
            sq = np.sqrt(np.where(ok, disc, 0))
            t0 = (-b - sq) / np.where(ok, 2 * a, 1)
            t1 = (-b + sq) / np.where(ok, 2 * a, 1)
            tin = np.where(t0 > 0, t0, t1)
            ok &= tin > 0
            t[ok] = tin[ok]
            if c < 0:  # camera inside: not used
                raise ValueError("camera inside an obstacle")
        else:
            tmin = np.zeros(n)
            tmax = np.full(n, np.inf)
            for axis, centre, half in ((0, self.x, self.half_x), (1, self.y, self.half_y)):
                dd = d[:, axis]
                safe = np.where(np.abs(dd) > 1e-12, dd, 1e-12)
                ta = (centre - half - o[axis]) / safe
                tb = (centre + half - o[axis]) / safe
                tmin = np.maximum(tmin, np.minimum(ta, tb))
                tmax = np.minimum(tmax, np.maximum(ta, tb))
            ok = tmin <= tmax
            t = np.where(ok, tmin, np.inf)
        z = o[2] + t * d[:, 2]
        t[(z < 0) | (z > self.height)] = np.inf
        return t


@dataclass
class Scene:
    """Ground classes as a function of (x, y) plus obstacles."""

    patches: list[tuple[float, float, float, int]] = field(default_factory=list)
    obstacles: list[Obstacle] = field(default_factory=list)
    base_class: int = 0

    @classmethod
    def random(cls, seed: int, n_patches: int = 8, n_obstacles: int = 6) -> Scene:
        """Round ground patches of classes 1, 2, 4 on smooth ground; obstacles 2-9 m ahead."""
        rng = np.random.default_rng(seed)
        patches = [(float(rng.uniform(1, 10)), float(rng.uniform(-6, 6)),
                    float(rng.uniform(0.6, 2.0)), int(rng.choice([1, 2, 4])))
                   for _ in range(n_patches)]
        obstacles = []
        for _ in range(n_obstacles):
            x, y = float(rng.uniform(2.5, 9)), float(rng.uniform(-4, 4))
            cls_ = int(rng.choice([3, 5]))
            if rng.random() < 0.5:
                obstacles.append(Obstacle(x, y, float(rng.uniform(0.3, 2.5)), cls_,
                                          radius=float(rng.uniform(0.15, 0.6))))
            else:
                obstacles.append(Obstacle(x, y, float(rng.uniform(0.3, 2.5)), cls_,
                                          half_x=float(rng.uniform(0.1, 0.5)),
                                          half_y=float(rng.uniform(0.2, 0.8))))
        return cls(patches, obstacles)

    def ground_class(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.full(np.shape(x), self.base_class, dtype=np.uint8)
        for px, py, r, c in self.patches:
            out[(x - px) ** 2 + (y - py) ** 2 <= r * r] = c
        return out

    def render(self, camera: Camera) -> np.ndarray:
        """Labels (H, W) at pixel centres: nearest of ground and obstacles, sky if none."""
        intr = camera.intrinsics
        rays = camera.pixel_rays_base(intr.pixel_grid())
        o = camera.pose.translation
        t_ground = np.where(rays[:, 2] < -1e-9, -o[2] / np.where(rays[:, 2] < -1e-9,
                                                                  rays[:, 2], -1), np.inf)
        labels = np.full(len(rays), SKY, dtype=np.uint8)
        hit = np.isfinite(t_ground)
        gp = o + rays * np.where(hit, t_ground, 0)[:, None]
        labels[hit] = self.ground_class(gp[hit, 0], gp[hit, 1])
        best = t_ground.copy()
        for ob in self.obstacles:
            t = ob.hit_t(o, rays)
            closer = t < best
            labels[closer] = ob.cls
            best = np.minimum(best, t)
        return labels.reshape(intr.height, intr.width)

    def topdown(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True class at points and a mask of obstacle footprints."""
        cls_ = self.ground_class(xs, ys)
        foot = np.zeros(xs.shape, dtype=bool)
        for ob in self.obstacles:
            inside = ob.contains(xs, ys)
            cls_[inside] = ob.cls
            foot |= inside
        return cls_, foot

    def hidden(self, camera: Camera, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Ground points (z = 0) whose line of sight from the camera crosses an obstacle."""
        o = camera.pose.translation
        pts = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
        d = pts - o
        out = np.zeros(xs.size, dtype=bool)
        for ob in self.obstacles:
            t = ob.hit_t(o, d)
            out |= t < 1 - 1e-6
        out |= np.zeros(xs.size, dtype=bool)
        return out.reshape(xs.shape)
