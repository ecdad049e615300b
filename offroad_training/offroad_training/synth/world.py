"""A procedural off-road world: ground regions of every ground class, vertical obstacles and
moving objects standing on the ground, and the appearance (colours, textures, light) to render it.

Coordinates are the world frame, which is ``odom`` for a robot that starts at the origin facing
+x: x forward along the track, y left, z up, ground plane z = 0, metres.

The ground class is a deterministic function of (x, y) (:meth:`SyntheticWorld.ground_class`),
evaluated identically for rendered pixels and for top-down maps, so labels and maps agree
exactly. It is built from smooth fields stored on a coarse raster (0.25 m) and interpolated
bilinearly, then thresholded, so class borders are smooth curves at any distance:

* vegetation (grass) everywhere, with clearings of smooth ground (packed dirt),
* rough ground (gravel, rubble) patches, also on the track as potholed stretches,
* a winding track of smooth ground through the origin (the robot drives along it),
* water: puddles (mostly on or near the track) and one or two streams crossing the track.

Outside the world extent the ground continues with the values at the extent's edge.

Obstacles are vertical prisms (cylinders or oriented boxes) standing on z = 0: trees, rocks,
poles, bushes, walls (class obstacle) and people, vehicles (class dynamic, which may move with a
constant velocity). Static obstacles keep clear of the track so a robot driving it never starts
inside one.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from offroad_core.ontology import class_id

SMOOTH = class_id("smooth_ground")
ROUGH = class_id("rough_ground")
VEGETATION = class_id("vegetation")
OBSTACLE = class_id("obstacle")
WATER = class_id("water")
DYNAMIC = class_id("dynamic")
SKY = class_id("sky")

FIELD_RESOLUTION = 0.25
"""Cell size (m) of the coarse rasters the ground class fields are interpolated from."""
SHADOW_RESOLUTION = 0.1
"""Cell size (m) of the static shadow raster (appearance only)."""
TEXTURE_SIZE = 512

# Field channels of SyntheticWorld.fields.
F_ROUGH, F_CLEARING, F_WATER, F_TRACK_ROUGH = range(4)


@dataclass(frozen=True)
class Obstacle:
    """A vertical prism standing on the ground: a cylinder (``radius`` > 0) or a box.

    The box is ``2 * half_x`` by ``2 * half_y`` with its x side along ``yaw``. Dynamic objects
    move with velocity (``vx``, ``vy``) m/s; their position at time t is (x + vx t, y + vy t).
    """

    kind: str
    cls: int
    x: float
    y: float
    height: float
    radius: float = 0.0
    half_x: float = 0.0
    half_y: float = 0.0
    yaw: float = 0.0
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    color2: tuple[float, float, float] = (0.2, 0.2, 0.2)
    color3: tuple[float, float, float] = (0.2, 0.2, 0.2)
    vx: float = 0.0
    vy: float = 0.0

    @property
    def is_cylinder(self) -> bool:
        """True for a cylinder, False for a box."""
        return self.radius > 0

    @property
    def bounding_radius(self) -> float:
        """Radius of a vertical cylinder around the footprint."""
        return self.radius if self.is_cylinder else math.hypot(self.half_x, self.half_y)

    def at(self, time: float) -> Obstacle:
        """This obstacle moved to its position at ``time`` seconds."""
        if self.vx == 0.0 and self.vy == 0.0:
            return self
        return Obstacle(self.kind, self.cls, self.x + self.vx * time, self.y + self.vy * time,
                        self.height, self.radius, self.half_x, self.half_y, self.yaw,
                        self.color, self.color2, self.color3, self.vx, self.vy)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Mask of ground points (x, y) inside the footprint."""
        dx, dy = x - self.x, y - self.y
        if self.is_cylinder:
            return dx * dx + dy * dy <= self.radius * self.radius
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        return (np.abs(lx) <= self.half_x) & (np.abs(ly) <= self.half_y)

    def outline(self, n: int = 16) -> np.ndarray:
        """(n, 2) or (4, 2) polygon enclosing the footprint (circumscribed for a cylinder)."""
        if self.is_cylinder:
            a = np.arange(n) * (2 * math.pi / n)
            r = self.radius / math.cos(math.pi / n)
            return np.stack([self.x + r * np.cos(a), self.y + r * np.sin(a)], axis=1)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [self.half_x, self.half_y]
        return np.stack([self.x + c * local[:, 0] - s * local[:, 1],
                         self.y + s * local[:, 0] + c * local[:, 1]], axis=1)


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
    _obstacle_arrays: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ generation
    @classmethod
    def generate(cls, seed: int, length: float = 240.0, half_width: float = 50.0
                 ) -> SyntheticWorld:
        """Generate a world deterministically from ``seed``.

        The world spans x in [-30, ``length``] and y in [-``half_width``, ``half_width``] m;
        the track starts at the origin heading +x.
        """
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
        fields[..., F_ROUGH] = _value_noise(rng, ny, nx, (18, 7))
        fields[..., F_CLEARING] = _value_noise(rng, ny, nx, (30, 10))
        fields[..., F_TRACK_ROUGH] = _value_noise(rng, ny, nx, (10, 4))
        # Rough shoulders on some worlds: raise the rough field just outside the track.
        shoulder = float(rng.uniform(0.0, 1.2))
        fields[..., F_ROUGH] += shoulder * np.exp(-((lateral - half - 0.6) / 0.7) ** 2)
        fields[..., F_WATER] = _water_field(rng, xs, ys, track_x, track_y, half)

        rough_thr = float(rng.uniform(0.3, 1.0))
        clearing_thr = float(rng.uniform(0.8, 1.6))
        track_rough_thr = float(rng.uniform(0.4, 1.3))

        appearance = _appearance(rng)
        obstacles = _obstacles(rng, x_min, x_max, y_min, y_max, track_x, track_y, half)
        world = cls(seed, x_min, y_min, x_max, y_max, fields, track_x, track_y, half,
                    (rough_thr, clearing_thr, track_rough_thr), obstacles, appearance,
                    np.ones((1, 1), np.float32), _texture(rng))
        world.shadow = _shadow_raster(world)
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

    def obstacles_at(self, time: float = 0.0) -> tuple[Obstacle, ...]:
        """Obstacles at ``time`` seconds (dynamic objects moved)."""
        return tuple(o.at(time) for o in self.obstacles)

    def obstacle_class_map(self, x: np.ndarray, y: np.ndarray, time: float = 0.0) -> np.ndarray:
        """Ground class with obstacle/dynamic footprints drawn over it (uint8)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        cls = self.ground_class(x, y)
        if len(x) == 0:
            return cls
        lo_x, hi_x, lo_y, hi_y = x.min(), x.max(), y.min(), y.max()
        for o in self.obstacles_at(time):
            r = o.bounding_radius
            if o.x + r < lo_x or o.x - r > hi_x or o.y + r < lo_y or o.y - r > hi_y:
                continue
            near = (np.abs(x - o.x) <= r) & (np.abs(y - o.y) <= r)
            idx = np.flatnonzero(near)
            if len(idx):
                cls[idx[o.contains(x[idx], y[idx])]] = o.cls
        return cls


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


def _value_noise(rng: np.random.Generator, ny: int, nx: int, cells: tuple[float, ...]
                 ) -> np.ndarray:
    """Smooth noise (ny, nx), roughly zero mean and unit std, with feature sizes ``cells`` (m)."""
    out = np.zeros((ny, nx), dtype=np.float32)
    weight = 1.0
    for size in cells:
        gy = max(2, int(ny * FIELD_RESOLUTION / size) + 2)
        gx = max(2, int(nx * FIELD_RESOLUTION / size) + 2)
        coarse = rng.standard_normal((gy, gx)).astype(np.float32)
        out += weight * cv2.resize(coarse, (nx, ny), interpolation=cv2.INTER_CUBIC)
        weight *= 0.5
    return out / max(float(out.std()), 1e-6)


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


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV (h in degrees) -> linear RGB."""
    return np.asarray(colorsys.hsv_to_rgb((h % 360) / 360.0, s, v), dtype=np.float32) ** 2.2


def _appearance(rng: np.random.Generator) -> Appearance:
    u = rng.uniform
    kind = rng.integers(3)
    if kind == 0:       # dirt
        smooth = _hsv(u(20, 42), u(0.25, 0.55), u(0.4, 0.7))
    elif kind == 1:     # asphalt
        smooth = _hsv(u(0, 360), u(0.0, 0.08), u(0.25, 0.45))
    else:               # concrete / pale packed earth
        smooth = _hsv(u(25, 50), u(0.05, 0.2), u(0.55, 0.8))
    rough = _hsv(u(15, 45), u(0.08, 0.4), u(0.35, 0.65))
    veg = _hsv(u(65, 125), u(0.4, 0.8), u(0.3, 0.65))
    water = _hsv(u(20, 230), u(0.2, 0.65), u(0.12, 0.4))
    ground = np.stack([smooth, rough, veg, water])
    ground2 = ground * rng.uniform(0.55, 1.35, size=(4, 3)).astype(np.float32)
    sky_kind = rng.integers(3)
    if sky_kind == 0:   # clear
        zenith = _hsv(u(200, 225), u(0.45, 0.75), u(0.65, 0.9))
        horizon = _hsv(u(195, 215), u(0.1, 0.3), u(0.85, 1.0))
        cover, ambient = u(0.0, 0.4), u(0.25, 0.4)
    elif sky_kind == 1:  # overcast
        g = u(0.6, 0.9)
        zenith = _hsv(u(190, 230), u(0.0, 0.12), g)
        horizon = _hsv(u(190, 230), u(0.0, 0.08), min(1.0, g + 0.08))
        cover, ambient = u(0.5, 0.9), u(0.55, 0.8)
    else:               # low sun, warm horizon
        zenith = _hsv(u(205, 235), u(0.3, 0.6), u(0.5, 0.75))
        horizon = _hsv(u(20, 45), u(0.25, 0.55), u(0.8, 1.0))
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


OBSTACLE_KINDS = ("tree", "rock", "pole", "bush", "wall")
DYNAMIC_KINDS = ("person", "vehicle")


def _obstacles(rng: np.random.Generator, x_min: float, x_max: float, y_min: float,
               y_max: float, track_x: np.ndarray, track_y: np.ndarray, half: float
               ) -> tuple[Obstacle, ...]:
    u = rng.uniform
    out: list[Obstacle] = []
    density = u(0.6, 1.4)                     # static obstacles per metre of track
    bark = _hsv(u(15, 40), u(0.2, 0.5), u(0.15, 0.4))
    foliage = _hsv(u(70, 140), u(0.4, 0.8), u(0.1, 0.3))
    rock = _hsv(u(0, 60), u(0.0, 0.2), u(0.3, 0.6))
    n_static = int((x_max - x_min) * density)
    weights = np.array([0.35, 0.25, 0.05, 0.25, 0.1])
    for _ in range(n_static):
        kind = OBSTACLE_KINDS[rng.choice(5, p=weights)]
        x = float(u(x_min, x_max))
        side = 1.0 if rng.random() < 0.5 else -1.0
        offset = half + 0.6 + float(rng.exponential(5.0))
        y = float(np.interp(x, track_x, track_y) + side * offset)
        jitter = rng.uniform(0.8, 1.25, size=3).astype(np.float32)
        if kind == "tree":
            r = float(u(0.15, 0.5))
            o = Obstacle(kind, OBSTACLE, x, y, float(u(3.0, 9.0)), radius=r,
                         color=tuple(bark * jitter), color2=tuple(foliage * jitter))
        elif kind == "pole":
            grey = _hsv(u(0, 40), u(0.0, 0.3), u(0.3, 0.7))
            o = Obstacle(kind, OBSTACLE, x, y, float(u(1.5, 5.0)), radius=float(u(0.05, 0.15)),
                         color=tuple(grey), color2=tuple(grey * 0.7))
        elif kind == "bush":
            o = Obstacle(kind, OBSTACLE, x, y, float(u(0.5, 1.6)), radius=float(u(0.4, 1.3)),
                         color=tuple(foliage * jitter * 1.3), color2=tuple(foliage * 0.5))
        elif kind == "rock":
            s = float(u(0.25, 0.9))
            o = Obstacle(kind, OBSTACLE, x, y, float(u(0.3, 1.2)), half_x=s,
                         half_y=s * float(u(0.6, 1.2)), yaw=float(u(0, math.pi)),
                         color=tuple(rock * jitter), color2=tuple(rock * 0.6))
        else:               # wall / fence segment
            wall = _hsv(u(0, 40), u(0.05, 0.4), u(0.3, 0.7))
            o = Obstacle(kind, OBSTACLE, x, y, float(u(0.8, 2.5)), half_x=float(u(1.5, 5.0)),
                         half_y=float(u(0.1, 0.25)), yaw=float(u(-0.4, 0.4)),
                         color=tuple(wall), color2=tuple(wall * 0.6))
        # Keep static obstacles off the track (the robot drives it).
        outline = o.outline()
        lateral = np.abs(outline[:, 1] - np.interp(outline[:, 0], track_x, track_y))
        if lateral.min() > half + 0.3 and math.hypot(x, y) > 2.5:
            out.append(o)
    n_dynamic = int((x_max - x_min) * u(0.15, 0.35))
    for _ in range(n_dynamic):
        x = float(u(3.0, x_max))
        side = 1.0 if rng.random() < 0.5 else -1.0
        y = float(np.interp(x, track_x, track_y) + side * u(0.0, 9.0))
        heading = float(u(0, 2 * math.pi))
        if rng.random() < 0.6:
            speed = float(u(0.0, 1.5))
            shirt = _hsv(u(0, 360), u(0.3, 0.95), u(0.25, 0.95))
            trousers = _hsv(u(200, 260), u(0.0, 0.6), u(0.1, 0.5))
            skin = _hsv(u(15, 35), u(0.3, 0.6), u(0.35, 0.9))
            o = Obstacle("person", DYNAMIC, x, y, float(u(1.4, 1.95)),
                         radius=float(u(0.18, 0.3)), color=tuple(shirt), color2=tuple(trousers),
                         color3=tuple(skin), vx=speed * math.cos(heading),
                         vy=speed * math.sin(heading))
        else:
            speed = float(u(0.0, 4.0)) if rng.random() < 0.5 else 0.0
            paint = (_hsv(u(0, 360), u(0.5, 1.0), u(0.3, 0.95)) if rng.random() < 0.6
                     else _hsv(0, 0, u(0.05, 0.95)))
            o = Obstacle("vehicle", DYNAMIC, x, y, float(u(1.3, 2.0)),
                         half_x=float(u(1.7, 2.6)), half_y=float(u(0.8, 1.05)), yaw=heading,
                         color=tuple(paint), color2=tuple(_hsv(u(190, 230), u(0.1, 0.4),
                                                               u(0.05, 0.2))),
                         color3=tuple(_hsv(0, 0, 0.03)), vx=speed * math.cos(heading),
                         vy=speed * math.sin(heading))
        if math.hypot(x, y) > 3.0:
            out.append(o)
    return tuple(out)


def _texture(rng: np.random.Generator) -> np.ndarray:
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


def _shadow_raster(world: SyntheticWorld) -> np.ndarray:
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
