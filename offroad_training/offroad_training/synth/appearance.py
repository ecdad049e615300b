"""Appearance of a synthetic world: colours, light, sky, the tileable texture and the static
obstacles' cast shadows (appearance only: labels and geometry never depend on it)."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from offroad_core.ontology import class_id

if TYPE_CHECKING:
    from offroad_training.synth.world import SyntheticWorld

OBSTACLE = class_id("obstacle")
SHADOW_RESOLUTION = 0.1
"""Cell size (m) of the static shadow raster (appearance only)."""
TEXTURE_SIZE = 512


@dataclass(frozen=True)
class Appearance:
    """Per-world colours (linear RGB 0..1), texture strengths and lighting."""

    ground_rgb: np.ndarray            # (4, 3): smooth, rough, vegetation, water (murky colour)
    ground_rgb2: np.ndarray           # (4, 3): second colour mixed in by the coarse texture
    texture_amp: np.ndarray           # (4,): fine texture contrast per ground class
    zenith_rgb: np.ndarray
    horizon_rgb: np.ndarray
    cloud_rgb: np.ndarray
    cloud_cover: float
    sun_dir: np.ndarray               # unit vector towards the sun (world frame)
    sun_rgb: np.ndarray
    ambient: float
    haze_distance: float
    exposure: float
    water_ripple: float


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV (h in degrees) -> linear RGB."""
    return np.asarray(colorsys.hsv_to_rgb((h % 360) / 360.0, s, v), dtype=np.float32) ** 2.2


def generate_appearance(rng: np.random.Generator) -> Appearance:
    """Colours, sky and light of a world (the order of draws is part of the world)."""
    u = rng.uniform
    kind = rng.integers(3)
    if kind == 0:       # dirt
        smooth = hsv(u(20, 42), u(0.25, 0.55), u(0.4, 0.7))
    elif kind == 1:     # asphalt
        smooth = hsv(u(0, 360), u(0.0, 0.08), u(0.25, 0.45))
    else:               # concrete / pale packed earth
        smooth = hsv(u(25, 50), u(0.05, 0.2), u(0.55, 0.8))
    rough = hsv(u(15, 45), u(0.08, 0.4), u(0.35, 0.65))
    veg = hsv(u(65, 125), u(0.4, 0.8), u(0.3, 0.65))
    water = hsv(u(20, 230), u(0.2, 0.65), u(0.12, 0.4))
    ground = np.stack([smooth, rough, veg, water])
    ground2 = ground * rng.uniform(0.55, 1.35, size=(4, 3)).astype(np.float32)
    sky_kind = rng.integers(3)
    if sky_kind == 0:   # clear
        zenith = hsv(u(200, 225), u(0.45, 0.75), u(0.65, 0.9))
        horizon = hsv(u(195, 215), u(0.1, 0.3), u(0.85, 1.0))
        cover, ambient = u(0.0, 0.4), u(0.25, 0.4)
    elif sky_kind == 1:  # overcast
        g = u(0.6, 0.9)
        zenith = hsv(u(190, 230), u(0.0, 0.12), g)
        horizon = hsv(u(190, 230), u(0.0, 0.08), min(1.0, g + 0.08))
        cover, ambient = u(0.5, 0.9), u(0.55, 0.8)
    else:               # low sun, warm horizon
        zenith = hsv(u(205, 235), u(0.3, 0.6), u(0.5, 0.75))
        horizon = hsv(u(20, 45), u(0.25, 0.55), u(0.8, 1.0))
        cover, ambient = u(0.1, 0.6), u(0.3, 0.45)
    elevation = math.radians(u(12, 70) if sky_kind != 2 else u(8, 20))
    azimuth = u(0, 2 * math.pi)
    sun_dir = np.array([math.cos(elevation) * math.cos(azimuth),
                        math.cos(elevation) * math.sin(azimuth), math.sin(elevation)],
                       dtype=np.float32)
    sun_rgb = (np.array([1.0, 0.95, 0.85], np.float32) if sky_kind != 2
               else np.array([1.0, 0.8, 0.6], np.float32)) * (1.0 - ambient) * 1.6
    return Appearance(
        ground_rgb=ground.astype(np.float32), ground_rgb2=ground2.astype(np.float32),
        texture_amp=np.array([u(0.06, 0.18), u(0.3, 0.5), u(0.2, 0.4), u(0.02, 0.08)],
                             np.float32),
        zenith_rgb=zenith, horizon_rgb=horizon,
        cloud_rgb=np.full(3, u(0.6, 0.95), np.float32), cloud_cover=float(cover),
        sun_dir=sun_dir, sun_rgb=sun_rgb, ambient=float(ambient),
        haze_distance=float(u(120.0, 400.0)), exposure=float(u(1.0, 1.5)),
        water_ripple=float(u(0.0, 0.06)))


def generate_texture(rng: np.random.Generator) -> np.ndarray:
    """Tileable noise (T, T, 3): channel 0 fine, 1 medium, 2 coarse; zero mean, unit std."""
    n = TEXTURE_SIZE
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    out = np.empty((n, n, 3), dtype=np.float32)
    for c, (lo, hi) in enumerate(((0.1, 0.5), (0.02, 0.12), (0.003, 0.03))):
        spectrum = np.fft.rfft2(rng.standard_normal((n, n)))
        band = np.exp(-((np.log(np.maximum(f, 1e-6)) - math.log(math.sqrt(lo * hi))) ** 2)
                      / (2 * (math.log(hi / lo) / 2) ** 2))
        img = np.fft.irfft2(spectrum * band, s=(n, n))
        out[..., c] = ((img - img.mean()) / img.std()).astype(np.float32)
    return out


def shadow_raster(world: SyntheticWorld) -> np.ndarray:
    """Static obstacles' cast shadows and contact darkening, 1 = sunlit (appearance only)."""
    res = SHADOW_RESOLUTION
    nx = math.ceil((world.x_max - world.x_min) / res) + 1
    ny = math.ceil((world.y_max - world.y_min) / res) + 1
    light = np.ones((ny, nx), dtype=np.float32)
    sun = world.appearance.sun_dir
    horiz = sun[:2] / max(float(np.hypot(sun[0], sun[1])), 1e-6)
    cot = float(np.hypot(sun[0], sun[1]) / max(sun[2], 0.05))
    for o in world.obstacles:
        if o.cls != OBSTACLE:
            continue
        outline = o.outline(12)
        length = min(o.height * cot, 25.0)
        pts = np.concatenate([outline, outline - horiz * length])
        px = np.round((pts - [world.x_min, world.y_min]) / res * 4).astype(np.int32)
        hull = cv2.convexHull(px)
        cv2.fillConvexPoly(light, hull, 0.0, cv2.LINE_AA, 2)
    return cv2.GaussianBlur(light, (0, 0), 1.2)
