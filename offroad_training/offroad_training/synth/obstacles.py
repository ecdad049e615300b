"""Obstacles of a synthetic world: vertical prisms (cylinders or oriented boxes) standing on the
ground, static (class obstacle) or moving (class dynamic), and their placement along the track."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from offroad_core.ontology import class_id
from offroad_training.synth.appearance import hsv

OBSTACLE = class_id("obstacle")
DYNAMIC = class_id("dynamic")


@dataclass(frozen=True)
class Obstacle:
    """A vertical prism standing on the ground: a cylinder (``radius`` > 0) or a box.

    The box is ``2 * half_x`` by ``2 * half_y`` with its x side along ``yaw``. Dynamic objects
    move with velocity (``vx``, ``vy``) m/s; their position at time t is (x + vx t, y + vy t).
    The prism spans z in [``bottom``, ``base + height``]: ``base`` is the ground height at its
    centre, ``bottom`` just below the lowest ground under its footprint (both 0 on flat
    ground; :func:`seat` sets them on relief).
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
    base: float = 0.0
    bottom: float = 0.0

    @property
    def top(self) -> float:
        """z of the top cap."""
        return self.base + self.height

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
        return dataclasses.replace(self, x=self.x + self.vx * time, y=self.y + self.vy * time)

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


OBSTACLE_KINDS = ("tree", "rock", "pole", "bush", "wall")
DYNAMIC_KINDS = ("person", "vehicle")


def seat(o: Obstacle, height_field) -> Obstacle:
    """``o`` standing on ``height_field``: base at the ground under its centre, bottom 2 cm
    below the lowest ground under its footprint (outline and the raster nodes inside it: the
    lowest point of a bilinear surface over a region lies on one of them), so no gap shows
    under it on a slope or over a ditch."""
    corners = o.outline(32)
    # Outline edges sampled at a quarter cell, and the raster nodes inside the footprint.
    edges = np.roll(corners, -1, axis=0) - corners
    steps = np.maximum(np.ceil(np.hypot(edges[:, 0], edges[:, 1]) * 4 / height_field.resolution
                               ), 1).astype(int)
    outline = np.concatenate([c + e * (np.arange(n)[:, None] / n)
                              for c, e, n in zip(corners, edges, steps, strict=True)])
    res = height_field.resolution
    r = o.bounding_radius
    gx = height_field.x0 + res * np.arange(math.floor((o.x - r - height_field.x0) / res),
                                           math.ceil((o.x + r - height_field.x0) / res) + 1)
    gy = height_field.y0 + res * np.arange(math.floor((o.y - r - height_field.y0) / res),
                                           math.ceil((o.y + r - height_field.y0) / res) + 1)
    nx, ny = (a.ravel() for a in np.meshgrid(gx, gy))
    inside = o.contains(nx, ny)
    xs = np.concatenate([[o.x], outline[:, 0], nx[inside]])
    ys = np.concatenate([[o.y], outline[:, 1], ny[inside]])
    z = height_field.height(xs, ys)
    return dataclasses.replace(o, base=float(z[0]), bottom=float(z.min()) - 0.02)


def generate_obstacles(rng: np.random.Generator, x_min: float, x_max: float, y_min: float,
                       y_max: float, track_x: np.ndarray, track_y: np.ndarray, half: float
                       ) -> tuple[Obstacle, ...]:
    """Static obstacles beside the track and dynamic objects near it (order and draws fixed:
    the world's content depends on them)."""
    u = rng.uniform
    out: list[Obstacle] = []
    density = u(0.6, 1.4)                     # static obstacles per metre of track
    bark = hsv(u(15, 40), u(0.2, 0.5), u(0.15, 0.4))
    foliage = hsv(u(70, 140), u(0.4, 0.8), u(0.1, 0.3))
    rock = hsv(u(0, 60), u(0.0, 0.2), u(0.3, 0.6))
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
            grey = hsv(u(0, 40), u(0.0, 0.3), u(0.3, 0.7))
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
            wall = hsv(u(0, 40), u(0.05, 0.4), u(0.3, 0.7))
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
            shirt = hsv(u(0, 360), u(0.3, 0.95), u(0.25, 0.95))
            trousers = hsv(u(200, 260), u(0.0, 0.6), u(0.1, 0.5))
            skin = hsv(u(15, 35), u(0.3, 0.6), u(0.35, 0.9))
            o = Obstacle("person", DYNAMIC, x, y, float(u(1.4, 1.95)),
                         radius=float(u(0.18, 0.3)), color=tuple(shirt), color2=tuple(trousers),
                         color3=tuple(skin), vx=speed * math.cos(heading),
                         vy=speed * math.sin(heading))
        else:
            speed = float(u(0.0, 4.0)) if rng.random() < 0.5 else 0.0
            paint = (hsv(u(0, 360), u(0.5, 1.0), u(0.3, 0.95)) if rng.random() < 0.6
                     else hsv(0, 0, u(0.05, 0.95)))
            o = Obstacle("vehicle", DYNAMIC, x, y, float(u(1.3, 2.0)),
                         half_x=float(u(1.7, 2.6)), half_y=float(u(0.8, 1.05)), yaw=heading,
                         color=tuple(paint), color2=tuple(hsv(u(190, 230), u(0.1, 0.4),
                                                               u(0.05, 0.2))),
                         color3=tuple(hsv(0, 0, 0.03)), vx=speed * math.cos(heading),
                         vy=speed * math.sin(heading))
        if math.hypot(x, y) > 3.0:
            out.append(o)
    return tuple(out)
