"""Robot motion through a synthetic world: a drive along the track for bag sequences, and
random poses for single-frame datasets.

A pose is (x, y, yaw) of ``base_link`` in the world frame, which is ``odom`` (the track starts at
the origin heading +x, so a drive from the start begins at the identity pose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offroad_training.synth.world import SyntheticWorld


@dataclass(frozen=True)
class RobotState:
    """Pose and body-frame velocity of the robot at ``time`` s."""

    time: float
    x: float
    y: float
    yaw: float
    linear: float = 0.0
    angular: float = 0.0

    @property
    def pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) for :func:`offroad_training.synth.render_frame`."""
        return (self.x, self.y, self.yaw)


def drive_along_track(world: SyntheticWorld, n_frames: int, rate_hz: float,
                      speed: float = 1.5, start_x: float = 0.0) -> list[RobotState]:
    """States of a robot driving the track centreline at constant ``speed`` m/s, sampled at
    ``rate_hz``, starting at ``x = start_x`` on the centreline. Velocities are the exact
    derivatives of the sampled path (central differences at 1 ms)."""
    if rate_hz <= 0:
        raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
    if n_frames < 0:
        raise ValueError(f"frame count must be >= 0, got {n_frames}")
    xs, ys = world.track_x, world.track_y
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    s0 = float(np.interp(start_x, xs, arc))
    if s0 + speed * max(n_frames - 1, 0) / rate_hz > arc[-1]:
        raise ValueError(f"{n_frames} frames at {speed} m/s and {rate_hz} Hz drive past the end "
                         f"of the world's track ({arc[-1] - s0:.0f} m left): generate a longer "
                         "world or use fewer frames")

    def pose(t: float) -> tuple[float, float, float]:
        s = s0 + speed * t
        x = float(np.interp(s, arc, xs))
        return x, float(np.interp(s, arc, ys)), float(world.track_heading(x))

    out = []
    dt = 1e-3
    for i in range(n_frames):
        t = i / rate_hz
        x, y, yaw = pose(t)
        _, _, yaw_a = pose(max(t - dt, 0.0))
        _, _, yaw_b = pose(t + dt)
        omega = math.remainder(yaw_b - yaw_a, 2 * math.pi) / (t + dt - max(t - dt, 0.0))
        out.append(RobotState(t, x, y, yaw, speed, omega))
    return out


def random_track_pose(world: SyntheticWorld, rng: np.random.Generator,
                      x_range: tuple[float, float] = (0.0, 150.0)) -> tuple[float, float, float]:
    """A pose on the track (within its width) at a random x, heading roughly along it."""
    x = float(rng.uniform(*x_range))
    lateral = float(rng.uniform(-0.6, 0.6)) * world.track_half_width
    yaw = float(world.track_heading(x)) + float(rng.normal(0.0, 0.2))
    return x, float(world.track_centre(x)) + lateral, yaw
