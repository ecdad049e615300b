"""A procedural off-road world: ground regions of every ground class, a height field (relief,
optional), vertical obstacles and moving objects standing on the ground, and the appearance
(colours, textures, light) to render it.

Coordinates are the world frame, which is ``odom`` for a robot that starts at the origin facing
+x: x forward along the track, y left, z up, metres. The ground is the plane z = 0, or with
relief the height field of :mod:`offroad_training.synth.relief` (z = 0 at the origin).

The ground class is a deterministic function of (x, y) (:meth:`SyntheticWorld.ground_class`),
evaluated identically for rendered pixels and for top-down maps, so labels and maps agree
exactly; it does not depend on the relief. It is built from smooth fields stored on a coarse
raster (0.25 m) and interpolated bilinearly, then thresholded, so class borders are smooth
curves at any distance:

* vegetation (grass) everywhere, with clearings of smooth ground (packed dirt),
* rough ground (gravel, rubble) patches, also on the track as potholed stretches,
* a winding track of smooth ground through the origin (the robot drives along it),
* water: puddles (mostly on or near the track) and one or two streams crossing the track.

Outside the world extent the ground continues with the values at the extent's edge.

Obstacles (:mod:`offroad_training.synth.obstacles`) are vertical prisms standing on the ground:
trees, rocks, poles, bushes, walls (class obstacle) and people, vehicles (class dynamic, which
may move with a constant velocity). Static obstacles keep clear of the track so a robot driving
it never starts inside one.

The relief draws from its own random stream: a world generated with and without relief has the
same classes, obstacles (footprints) and appearance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from offroad_core.ontology import class_id
from offroad_training.synth.appearance import (
    SHADOW_RESOLUTION,
    TEXTURE_SIZE,
    Appearance,
    generate_appearance,
    generate_texture,
    shadow_raster,
)
from offroad_training.synth.obstacles import DYNAMIC, OBSTACLE, Obstacle, generate_obstacles, seat
from offroad_training.synth.relief import (
    HeightField,
    ReliefSpec,
    generate_height_field,
    relief_spec,
    smooth_noise,
)

__all__ = ["DYNAMIC", "OBSTACLE", "ROUGH", "SHADOW_RESOLUTION", "SKY", "SMOOTH", "TEXTURE_SIZE",
           "VEGETATION", "WATER", "Appearance", "Obstacle", "SyntheticWorld"]

SMOOTH = class_id("smooth_ground")
ROUGH = class_id("rough_ground")
VEGETATION = class_id("vegetation")
WATER = class_id("water")
SKY = class_id("sky")

FIELD_RESOLUTION = 0.25
"""Cell size (m) of the coarse rasters the ground class fields are interpolated from."""

# Field channels of SyntheticWorld.fields.
F_ROUGH, F_CLEARING, F_WATER, F_TRACK_ROUGH = range(4)


@dataclass
class SyntheticWorld:
    """A generated world. Build with :meth:`generate`; everything is derived from ``seed``."""

    seed: int
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    fields: np.ndarray                # (ny, nx, 4) float32 at FIELD_RESOLUTION
    track_x: np.ndarray               # track centreline samples y = track_y(x)
    track_y: np.ndarray
    track_half_width: float
    thresholds: tuple[float, float, float]  # rough, clearing, track-rough field thresholds
    obstacles: tuple[Obstacle, ...]
    appearance: Appearance
    shadow: np.ndarray                # (ny, nx) float32 at SHADOW_RESOLUTION, 1 = sunlit
    texture: np.ndarray               # (T, T, 3) float32 tileable noise, zero mean, unit std
    relief: ReliefSpec | None = None  # None: flat ground z = 0
    height_field: HeightField | None = None

    # ------------------------------------------------------------------ generation
    @classmethod
    def generate(cls, seed: int, length: float = 240.0, half_width: float = 50.0,
                 relief: ReliefSpec | str | None = None) -> SyntheticWorld:
        """Generate a world deterministically from ``seed``.

        The world spans x in [-30, ``length``] and y in [-``half_width``, ``half_width``] m;
        the track starts at the origin heading +x. ``relief``: ``None`` or ``"flat"`` (ground
        plane z = 0), a preset name (``relief.RELIEF_PRESETS``) or a :class:`ReliefSpec`.
        """
        spec = relief_spec(relief)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
        x_min, x_max, y_min, y_max = -30.0, float(length), -float(half_width), float(half_width)
        nx = math.ceil((x_max - x_min) / FIELD_RESOLUTION) + 1
        ny = math.ceil((y_max - y_min) / FIELD_RESOLUTION) + 1
        xs = x_min + np.arange(nx) * FIELD_RESOLUTION
        ys = y_min + np.arange(ny) * FIELD_RESOLUTION

        track_x, track_y = _track(rng, x_min, x_max)
        half = float(rng.uniform(1.0, 2.2))
        centre = np.interp(xs, track_x, track_y)
        lateral = np.abs(ys[:, None] - centre[None, :]).astype(np.float32)  # (ny, nx)

        fields = np.empty((ny, nx, 4), dtype=np.float32)
        fields[..., F_ROUGH] = smooth_noise(rng, ny, nx, (18, 7), FIELD_RESOLUTION)
        fields[..., F_CLEARING] = smooth_noise(rng, ny, nx, (30, 10), FIELD_RESOLUTION)
        fields[..., F_TRACK_ROUGH] = smooth_noise(rng, ny, nx, (10, 4), FIELD_RESOLUTION)
        # Rough shoulders on some worlds: raise the rough field just outside the track.
        shoulder = float(rng.uniform(0.0, 1.2))
        fields[..., F_ROUGH] += shoulder * np.exp(-((lateral - half - 0.6) / 0.7) ** 2)
        fields[..., F_WATER] = _water_field(rng, xs, ys, track_x, track_y, half)

        rough_thr = float(rng.uniform(0.3, 1.0))
        clearing_thr = float(rng.uniform(0.8, 1.6))
        track_rough_thr = float(rng.uniform(0.4, 1.3))

        appearance = generate_appearance(rng)
        obstacles = generate_obstacles(rng, x_min, x_max, y_min, y_max, track_x, track_y, half)
        height_field = None
        if spec is not None:
            height_field = generate_height_field(seed, spec, (x_min, x_max, y_min, y_max),
                                                 track_x, track_y, half)
            obstacles = tuple(seat(o, height_field) for o in obstacles)
        world = cls(seed, x_min, y_min, x_max, y_max, fields, track_x, track_y, half,
                    (rough_thr, clearing_thr, track_rough_thr), obstacles, appearance,
                    np.ones((1, 1), np.float32), generate_texture(rng), spec, height_field)
        world.shadow = shadow_raster(world)
        return world

    # ------------------------------------------------------------------ queries
    def track_centre(self, x: np.ndarray) -> np.ndarray:
        """y of the track centreline at ``x``."""
        return np.interp(x, self.track_x, self.track_y)

    def track_heading(self, x: np.ndarray) -> np.ndarray:
        """Heading (rad) of the track centreline at ``x``."""
        slope = np.gradient(self.track_y, self.track_x)
        return np.arctan(np.interp(x, self.track_x, slope))

    def sample_fields(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinearly interpolated fields (N, 4) at world points (clamped to the extent)."""
        return _bilinear(self.fields, (x - self.x_min) / FIELD_RESOLUTION,
                         (y - self.y_min) / FIELD_RESOLUTION)

    def ground_class(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Ground class id (uint8) at world points (x, y) — the ground truth of the world."""
        x = np.asarray(x, dtype=np.float32).ravel()
        y = np.asarray(y, dtype=np.float32).ravel()
        f = self.sample_fields(x, y)
        rough_thr, clearing_thr, track_rough_thr = self.thresholds
        cls = np.full(x.shape, VEGETATION, dtype=np.uint8)
        cls[f[:, F_CLEARING] > clearing_thr] = SMOOTH
        cls[f[:, F_ROUGH] > rough_thr] = ROUGH
        on_track = np.abs(y - np.interp(x, self.track_x, self.track_y)) < self.track_half_width
        cls[on_track] = SMOOTH
        cls[on_track & (f[:, F_TRACK_ROUGH] > track_rough_thr)] = ROUGH
        cls[f[:, F_WATER] > 0.5] = WATER
        return cls

    def ground_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Ground height z (float64) at world points: the surface the renderer hits."""
        if self.height_field is None:
            return np.zeros(np.shape(x), np.float64)
        return self.height_field.height(x, y)

    def obstacles_at(self, time: float = 0.0) -> tuple[Obstacle, ...]:
        """Obstacles at ``time`` seconds (dynamic objects moved, and seated on the relief)."""
        moved = tuple(o.at(time) for o in self.obstacles)
        if self.height_field is None:
            return moved
        return tuple(m if m is o else seat(m, self.height_field)
                     for m, o in zip(moved, self.obstacles, strict=True))

    def obstacle_class_map(self, x: np.ndarray, y: np.ndarray, time: float = 0.0) -> np.ndarray:
        """Ground class with obstacle/dynamic footprints drawn over it (uint8)."""
        return self.obstacle_maps(x, y, time)[0]

    def obstacle_maps(self, x: np.ndarray, y: np.ndarray, time: float = 0.0,
                      tops: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(class map as :meth:`obstacle_class_map`, surface height: ground height with the
        obstacles' top caps over their footprints, or None unless ``tops``)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        cls = self.ground_class(x, y)
        surface = self.ground_height(x, y) if tops else None
        if len(x) == 0:
            return cls, surface
        lo_x, hi_x, lo_y, hi_y = x.min(), x.max(), y.min(), y.max()
        for o in self.obstacles_at(time):
            r = o.bounding_radius
            if o.x + r < lo_x or o.x - r > hi_x or o.y + r < lo_y or o.y - r > hi_y:
                continue
            near = (np.abs(x - o.x) <= r) & (np.abs(y - o.y) <= r)
            idx = np.flatnonzero(near)
            if len(idx):
                inside = idx[o.contains(x[idx], y[idx])]
                cls[inside] = o.cls
                if surface is not None:
                    surface[inside] = np.maximum(surface[inside], o.top)
        return cls, surface


# ---------------------------------------------------------------------- generation helpers
def _track(rng: np.random.Generator, x_min: float, x_max: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Centreline y(x) through the origin with zero heading there: a sum of gentle sines."""
    xs = np.arange(x_min, x_max + 1.0, 0.5)
    ys = np.zeros_like(xs)
    for _ in range(3):
        wavelength = rng.uniform(40.0, 140.0)
        amp = rng.uniform(1.0, 6.0) * wavelength / 140.0
        phase = rng.uniform(0, 2 * math.pi)
        ys += amp * np.sin(2 * math.pi * xs / wavelength + phase)
    # Through the origin with heading 0: subtract the value and slope at x = 0.
    slope0 = np.interp(0.0, xs, np.gradient(ys, xs))
    ys -= np.interp(0.0, xs, ys) + slope0 * xs * np.exp(-(xs / 30.0) ** 2)
    return xs, ys


def _water_field(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray,
                 track_x: np.ndarray, track_y: np.ndarray, half: float) -> np.ndarray:
    """Soft water mask (ny, nx) in [0, 1]: > 0.5 is water. Puddles and streams."""
    ny, nx = len(ys), len(xs)
    mask = np.zeros((ny, nx), dtype=np.float32)

    def to_px(x: float, y: float) -> tuple[int, int]:
        return (round((x - xs[0]) / FIELD_RESOLUTION * 16),
                round((y - ys[0]) / FIELD_RESOLUTION * 16))

    length = xs[-1] - xs[0]
    for _ in range(int(length / rng.uniform(3.0, 7.0))):
        x = float(rng.uniform(xs[0], xs[-1]))
        on_track = rng.random() < 0.6
        spread = half * 0.8 if on_track else 12.0
        y = float(np.interp(x, track_x, track_y) + rng.normal(0.0, spread))
        a, b = rng.uniform(0.5, 2.5), rng.uniform(0.4, 1.5)
        centre = to_px(x, y)
        axes = (round(a / FIELD_RESOLUTION * 16), round(b / FIELD_RESOLUTION * 16))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1,
                    cv2.LINE_AA, 4)
    for _ in range(int(rng.integers(1, 3))):
        x0 = float(rng.uniform(8.0, min(120.0, xs[-1] - 10)))
        width = float(rng.uniform(1.0, 4.0))
        angle = float(rng.uniform(-0.6, 0.6))
        wiggle = rng.uniform(1.0, 4.0)
        t = np.linspace(ys[0], ys[-1], 80)
        px = x0 + t * math.tan(angle) + wiggle * np.sin(t / rng.uniform(5, 15) + rng.uniform(0, 9))
        pts = np.array([to_px(a, b) for a, b in zip(px, t, strict=True)], np.int32)
        cv2.polylines(mask, [pts], False, 1.0, round(width / FIELD_RESOLUTION), cv2.LINE_AA, 4)
    # Keep the robot's start dry.
    cx, cy = to_px(0.0, 0.0)
    cv2.circle(mask, (cx, cy), round(1.5 / FIELD_RESOLUTION * 16), 0.0, -1, cv2.LINE_AA, 4)
    return cv2.GaussianBlur(mask, (0, 0), 0.8)


def _bilinear(raster: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``raster`` (ny, nx[, c]) at fractional cells, clamped to the edge."""
    ny, nx = raster.shape[:2]
    fx = np.clip(fx, 0.0, nx - 1.001).astype(np.float32)
    fy = np.clip(fy, 0.0, ny - 1.001).astype(np.float32)
    ix = fx.astype(np.int32)
    iy = fy.astype(np.int32)
    wx = fx - ix
    wy = fy - iy
    flat = raster.reshape(ny * nx, -1)
    i00 = iy * nx + ix
    if raster.ndim == 3:
        wx, wy = wx[:, None], wy[:, None]
    else:
        flat = flat[:, 0]
    top = flat[i00] * (1 - wx) + flat[i00 + 1] * wx
    bottom = flat[i00 + nx] * (1 - wx) + flat[i00 + nx + 1] * wx
    return top * (1 - wy) + bottom * wy
