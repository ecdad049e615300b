"""Appearance of rendered pixels: ground, obstacle and sky colours, haze, and the camera's
photograph (exposure, white balance, vignetting, blur, gamma, sensor noise). Geometry and labels
never depend on it."""

from __future__ import annotations

import math

import cv2
import numpy as np

from offroad_training.synth.raycast import side_frame
from offroad_training.synth.world import (
    DYNAMIC,
    SHADOW_RESOLUTION,
    TEXTURE_SIZE,
    Obstacle,
    SyntheticWorld,
)


class TexSampler:
    """Nearest-neighbour lookups into the world's tileable texture channels."""

    def __init__(self, texture: np.ndarray) -> None:
        self.channels = [np.ascontiguousarray(texture[..., i]) for i in range(3)]

    def __call__(self, channel: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Texture ``channel`` at texel coordinates (u, v), wrapped."""
        mask = TEXTURE_SIZE - 1
        iu = np.floor(u).astype(np.int64) & mask
        iv = np.floor(v).astype(np.int64) & mask
        return self.channels[channel][iv, iu]


_GROUND_ROW = np.array([0, 1, 2, 0, 3, 0, 0], dtype=np.int64)  # class id -> appearance row


def shade_ground(world: SyntheticWorld, tex: TexSampler, cls: np.ndarray, x: np.ndarray,
                  y: np.ndarray, t: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray,
                  sun: np.ndarray | None = None) -> np.ndarray:
    """Ground colours; ``sun`` is the cosine of the sun on the relief's surface (None: flat
    ground, the sun's elevation sine)."""
    app = world.appearance
    row = _GROUND_ROW[cls]
    fade_fine = 1.0 / (1.0 + (t / 9.0) ** 2)
    fade_mid = 1.0 / (1.0 + (t / 45.0) ** 2)
    fine = tex(0, x * 50.0, y * 50.0) * fade_fine
    mid = tex(1, x * 9.0 + 100.0, y * 9.0) * fade_mid
    coarse = tex(2, x * 1.5, y * 1.5 + 200.0)
    mix = (1.0 / (1.0 + np.exp(-2.0 * coarse)))[:, None]
    base = app.ground_rgb[row] * (1.0 - mix) + app.ground_rgb2[row] * mix
    amp = app.texture_amp[row]
    # Vegetation gets blade-like streaks across the view direction, rough ground speckle.
    is_veg = row == 2
    streak = np.where(is_veg, tex(0, x * 140.0, y * 20.0) * fade_fine * 0.6, 0.0)
    bright = np.clip(1.0 + amp * (fine + 0.6 * mid) + streak * amp, 0.15, 2.5)
    col = base * bright[:, None]
    shadow = _shadow_lookup(world, x, y)
    sun_cos = app.sun_dir[2] if sun is None else sun
    light = app.ambient + app.sun_rgb * (sun_cos * shadow)[:, None]
    col = col * light
    water = row == 3
    if water.any():
        ripple = app.water_ripple * (tex(1, x[water] * 20.0, y[water] * 6.0)
                                     + 0.5 * tex(0, x[water] * 60.0, y[water] * 60.0))
        rz = np.clip(-dz[water] + ripple, 0.005, 1.0)
        refl = sky_colour(app, tex, dx[water], dy[water], rz)
        cosi = np.clip(rz, 0.0, 1.0)
        fresnel = (0.02 + 0.98 * (1.0 - cosi) ** 5)[:, None]
        murky = app.ground_rgb[3] * (app.ambient + 0.5 * app.sun_rgb * app.sun_dir[2])
        col[water] = murky * (1.0 - fresnel) + refl * fresnel
    return _haze(app, col, t)


def _shadow_lookup(world: SyntheticWorld, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ny, nx = world.shadow.shape
    ix = np.clip(((x - world.x_min) / SHADOW_RESOLUTION).astype(np.int64), 0, nx - 1)
    iy = np.clip(((y - world.y_min) / SHADOW_RESOLUTION).astype(np.int64), 0, ny - 1)
    return world.shadow[iy, ix]


def _haze(app, col: np.ndarray, t: np.ndarray) -> np.ndarray:
    fog = (1.0 - np.exp(-t / app.haze_distance))[:, None]
    return col * (1.0 - fog) + app.horizon_rgb * fog


def sky_colour(app, tex: TexSampler, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray
               ) -> np.ndarray:
    """Sky colour along world directions: gradient, clouds, sun glow."""
    e = np.clip(dz, 0.0, 1.0)
    grad = (e ** 0.45)[:, None]
    col = app.horizon_rgb * (1.0 - grad) + app.zenith_rgb * grad
    den = e + 0.06
    cu, cv = dx / den * 25.0, dy / den * 25.0
    density = tex(2, cu, cv) + 0.4 * tex(1, cu * 3.0, cv * 3.0)
    threshold = 1.2 - 2.4 * app.cloud_cover
    cloud = (np.clip((density - threshold) * 1.2, 0.0, 1.0) * np.clip(e * 8.0, 0.0, 1.0))
    shade = (1.0 - 0.35 * np.clip(density - threshold - 0.5, 0.0, 1.0))[:, None]
    col = col * (1.0 - cloud[:, None]) + app.cloud_rgb * shade * cloud[:, None]
    sd = app.sun_dir
    cs = np.maximum(dx * sd[0] + dy * sd[1] + dz * sd[2], 0.0)
    col = col + app.sun_rgb * (3.0 * cs ** 400 + 0.12 * cs ** 8)[:, None]
    return col


def shade_obstacle(app, tex: TexSampler, o: Obstacle, hit: tuple, t: np.ndarray
                   ) -> np.ndarray:
    """Colours of obstacle ``o`` at world hit points ``hit`` (x, y, z) at ray lengths ``t``."""
    hx, hy, hz = hit
    n = len(t)
    top = hz >= o.top - 1e-3
    nx, ny, u = side_frame(o, hx, hy)
    v = hz - o.base
    c1, c2, c3 = (np.asarray(col, np.float32) for col in (o.color, o.color2, o.color3))
    kind = o.kind
    if kind == "tree":
        pattern = tex(0, u * 30.0, v * 4.0) * 0.35 + tex(1, u * 10.0, v * 2.0) * 0.2
        base = np.broadcast_to(c1, (n, 3))
    elif kind == "bush":
        blot = tex(1, u * 14.0 + v * 3.0, v * 14.0)
        w = (1.0 / (1.0 + np.exp(-2.5 * blot)))[:, None]
        base = c1 * w + c2 * (1 - w)
        pattern = tex(0, u * 60.0, v * 60.0) * 0.45
    elif kind == "rock":
        w = (1.0 / (1.0 + np.exp(-2.0 * tex(1, u * 8.0, v * 8.0))))[:, None]
        base = c1 * w + c2 * (1 - w)
        pattern = tex(0, u * 40.0, v * 40.0) * 0.3
    elif kind == "person":
        frac = ((hz - o.base) / o.height)[:, None]
        base = np.where(frac < 0.47, c2, np.where(frac < 0.84, c1, c3))
        pattern = tex(0, u * 40.0, v * 40.0) * 0.1
    elif kind == "vehicle":
        frac = ((hz - o.base) / o.height)[:, None]
        base = np.where(frac < 0.28, c3, np.where((frac > 0.6) & (frac < 0.93), c2, c1))
        pattern = tex(0, u * 10.0, v * 10.0) * 0.05
    else:       # pole, wall
        pattern = tex(0, u * 30.0, v * 30.0) * 0.15 + tex(1, u * 5.0, v * 5.0) * 0.1
        base = np.broadcast_to(c1, (n, 3))
    col = base * np.clip(1.0 + pattern, 0.2, 2.0)[:, None]
    sd = app.sun_dir
    lambert = np.where(top, sd[2], np.maximum(nx * sd[0] + ny * sd[1], 0.0))
    light = app.ambient * np.where(top, 1.0, 0.85)[:, None] + app.sun_rgb * lambert[:, None]
    col = col * light
    if o.cls == DYNAMIC and kind == "vehicle":
        view = np.clip(1.0 - np.abs(nx * sd[0] + ny * sd[1]), 0.0, 1.0)
        col = col + 0.15 * app.sun_rgb * (view ** 6)[:, None]
    return _haze(app, col, t)


_GAMMA_LUT = np.clip(np.linspace(0.0, 1.0, 4096) ** (1 / 2.2) * 255.0 + 0.5, 0,
                     255).astype(np.uint8)


def photograph(rgb: np.ndarray, vignette: np.ndarray, app, seed: int, world_seed: int
               ) -> np.ndarray:
    """Exposure, white balance, vignetting, lens blur, gamma and sensor noise -> uint8."""
    rng = np.random.default_rng(np.random.SeedSequence([world_seed, seed, 0xCA3]))
    exposure = app.exposure * math.exp(rng.normal(0.0, 0.15))
    gains = (exposure * (1.0 + rng.normal(0.0, 0.04, 3))).astype(np.float32)
    rgb *= gains
    rgb *= vignette[..., None]
    rgb /= 1.0 + 0.25 * rgb          # soft shoulder instead of hard clipping
    sigma = float(rng.uniform(0.4, 0.9))
    rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    idx = np.clip(rgb * 4095.0 + 0.5, 0, 4095).astype(np.int16)
    out = _GAMMA_LUT[idx].astype(np.int16)
    noise_std = float(rng.uniform(1.0, 4.0))
    h, w = out.shape[:2]
    noise = rng.standard_normal((h, w, 1), dtype=np.float32) * noise_std
    chroma = rng.standard_normal((h // 2 + 1, w // 2 + 1, 3), dtype=np.float32) * noise_std * 0.5
    chroma = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
    out = out + (noise + chroma).astype(np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)
