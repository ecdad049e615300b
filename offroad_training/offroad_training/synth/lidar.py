"""A rotating multi-ring 3-D LiDAR in the synthetic world (like the robot's 360 x 70 deg unit).

Beams: ``rings`` elevations evenly spaced over [``min_elevation_deg``, ``max_elevation_deg``]
(ring 0 lowest) x ``round(360 / azimuth_resolution_deg)`` azimuths ``j * resolution`` from +x
of ``lidar_link``, counter-clockwise. The scan is instantaneous at the frame's time (no motion
skew). Each beam is cast exactly against the world (ground or relief, obstacles: the camera's
geometry) from the LiDAR's mounting pose in ``base_link``.

A beam gives no point when it hits nothing (sky), when the hit is nearer than ``min_range`` or
beyond ``max_range``, at random with probability ``dropout``, and on water additionally with
probability ``water_dropout`` (specular surface). Ranges get Gaussian noise of std
``range_noise`` along the beam. Dropouts and noise draw one number per beam from two random
streams of (world seed, ``seed``), so a scan with ``range_noise=0`` has the same points without
noise. Intensity (float32, 0..255) is a plausible reflectivity model, not a calibrated one:
``255 * reflectivity(class) * |cos(incidence)|``.

Points are in ``lidar_link`` (x forward, y left, z up), float32, in scan order (azimuth, then
ring); ``class_id`` is the ground-truth class of each point's true hit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from offroad_core.camera import CameraPose
from offroad_training.synth.raycast import cast_grid, obstacle_normals
from offroad_training.synth.world import WATER, SyntheticWorld

REFLECTIVITY = np.array([0.35, 0.3, 0.5, 0.4, 0.05, 0.6, 0.0], np.float32)
"""Per class id (smooth, rough, vegetation, obstacle, water, dynamic, sky)."""


@dataclass(frozen=True)
class LidarSpec:
    """Mounting pose of ``lidar_link`` in ``base_link`` (m, rad; R = Rz(yaw) Ry(pitch)
    Rx(roll)) and the beam pattern, range limits and imperfections (module docstring)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 1.2
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    rings: int = 32
    min_elevation_deg: float = -35.0
    max_elevation_deg: float = 35.0
    azimuth_resolution_deg: float = 0.2
    min_range: float = 0.1
    max_range: float = 50.0
    range_noise: float = 0.02
    dropout: float = 0.02
    water_dropout: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.rings <= 512:
            raise ValueError(f"LiDAR rings must be 1..512, got {self.rings}")
        if not -90 <= self.min_elevation_deg <= self.max_elevation_deg <= 90:
            raise ValueError("LiDAR elevations must satisfy -90 <= min <= max <= 90 deg, got "
                             f"{self.min_elevation_deg}..{self.max_elevation_deg}")
        if not 0.01 <= self.azimuth_resolution_deg <= 90:
            raise ValueError("LiDAR azimuth resolution must be 0.01..90 deg, got "
                             f"{self.azimuth_resolution_deg}")
        if not 0 <= self.min_range < self.max_range:
            raise ValueError(f"LiDAR range limits must satisfy 0 <= min < max, got "
                             f"{self.min_range}..{self.max_range}")
        if self.range_noise < 0 or not (0 <= self.dropout <= 1 and 0 <= self.water_dropout <= 1):
            raise ValueError("LiDAR noise must be >= 0 and dropout probabilities in [0, 1]")

    @property
    def columns(self) -> int:
        """Beams per ring (azimuth steps over 360 deg)."""
        return max(1, round(360.0 / self.azimuth_resolution_deg))

    @property
    def elevations(self) -> np.ndarray:
        """Ring elevations (rad), ascending."""
        return np.radians(np.linspace(self.min_elevation_deg, self.max_elevation_deg,
                                      self.rings))

    @property
    def azimuths(self) -> np.ndarray:
        """Column azimuths (rad) in lidar_link."""
        return np.arange(self.columns) * (2 * math.pi / self.columns)

    @property
    def pose(self) -> CameraPose:
        """Mounting pose (same convention as a camera body pose)."""
        return CameraPose(self.x, self.y, self.z, self.roll, self.pitch, self.yaw)

    def to_dict(self) -> dict:
        """JSON-ready description (the bag's ``lidar.json``)."""
        return {**asdict(self), "frame_id": "lidar_link", "parent_frame_id": "base_link",
                "columns": self.columns,
                "convention": "pose of lidar_link (x forward, y left, z up) in base_link; "
                              "R = Rz(yaw) Ry(pitch) Rx(roll)"}


class LidarScan(NamedTuple):
    """One scan: points (N, 3) float32 in lidar_link, ring (N,) uint16, intensity (N,)
    float32, class_id (N,) uint8 (ground truth)."""

    points: np.ndarray
    ring: np.ndarray
    intensity: np.ndarray
    class_id: np.ndarray


def render_lidar(world: SyntheticWorld, robot_pose: tuple[float, float, float],
                 lidar_spec: LidarSpec | None = None, seed: int = 0,
                 time: float = 0.0) -> LidarScan:
    """Scan ``world`` with a LiDAR mounted per ``lidar_spec`` on a robot at ``robot_pose``
    (x, y, yaw in the world frame; base_link at the ground height there) at ``time`` s."""
    spec = lidar_spec or LidarSpec()
    rx, ry, ryaw = (float(v) for v in robot_pose)
    base_z = float(world.ground_height(np.array([rx]), np.array([ry]))[0])
    c, s = math.cos(ryaw), math.sin(ryaw)
    yaw_rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    rot = yaw_rot @ spec.pose.rotation_body                     # world <- lidar_link
    origin = np.array([rx, ry, base_z]) + yaw_rot @ spec.pose.translation
    el, az = spec.elevations, spec.azimuths
    local = np.stack([np.cos(el)[:, None] * np.cos(az)[None, :],
                      np.cos(el)[:, None] * np.sin(az)[None, :],
                      np.broadcast_to(np.sin(el)[:, None], (el.size, az.size))], axis=-1)
    world_dirs = local @ rot.T
    dx, dy, dz = (np.ascontiguousarray(world_dirs[..., i]) for i in range(3))
    obstacles = world.obstacles_at(time)
    boxes = _beam_boxes(obstacles, origin, rot, spec)
    t, inst = cast_grid(world.height_field, origin, dx, dy, dz, obstacles, boxes,
                        max_range=spec.max_range)

    drop_stream, noise_stream = np.random.SeedSequence([world.seed, seed, 0x11DA2]).spawn(2)
    shape = t.shape
    draw = np.random.default_rng(drop_stream).random((2, *shape))
    noise = np.random.default_rng(noise_stream).standard_normal(shape) * spec.range_noise
    hit = np.isfinite(t) & (t >= spec.min_range) & (draw[0] >= spec.dropout)
    # Scan order: azimuth (column) major, then ring.
    hit_t = hit.T
    ring = np.nonzero(hit_t)[1]
    tt = t.T[hit_t].astype(np.float64)
    ids = inst.T[hit_t]
    hx = origin[0] + tt * dx.T[hit_t]
    hy = origin[1] + tt * dy.T[hit_t]
    hz = origin[2] + tt * dz.T[hit_t]
    cls = world.ground_class(hx, hy)
    normals = (world.height_field.normals(hx, hy) if world.height_field is not None
               else np.tile([0.0, 0.0, 1.0], (tt.size, 1)))
    for k in np.unique(ids[ids >= 0]):
        mine = ids == k
        cls[mine] = obstacles[k].cls
        normals[mine] = obstacle_normals(obstacles[k], hx[mine], hy[mine], hz[mine])
    keep = ~((cls == WATER) & (draw[1].T[hit_t] < spec.water_dropout))
    beams = world_dirs.transpose(1, 0, 2)[hit_t]
    cos_inc = np.abs(np.einsum("ij,ij->i", normals, beams))
    rng_noisy = np.maximum(tt + noise.T[hit_t], 0.0)
    points = (rng_noisy[:, None] * local.transpose(1, 0, 2)[hit_t]).astype(np.float32)
    intensity = (255.0 * REFLECTIVITY[cls] * cos_inc).astype(np.float32)
    return LidarScan(points[keep], ring[keep].astype(np.uint16), intensity[keep],
                     cls[keep].astype(np.uint8))


def _beam_boxes(obstacles, origin: np.ndarray, rot: np.ndarray, spec: LidarSpec
                ) -> list[tuple[int, tuple[int, int, int, int]]]:
    """(obstacle index, (ring0, ring1, col0, col1)) beam windows that may hit each obstacle
    within range: the cone of the obstacle's bounding sphere, in lidar_link angles."""
    el = spec.elevations
    n_col = spec.columns
    step = 2 * math.pi / n_col
    out = []
    for k, o in enumerate(obstacles):
        r_xy = o.bounding_radius
        if math.hypot(o.x - origin[0], o.y - origin[1]) > spec.max_range + r_xy:
            continue
        half_h = 0.5 * (o.top - o.bottom)
        radius = math.hypot(r_xy, half_h)
        v = rot.T @ (np.array([o.x, o.y, o.bottom + half_h]) - origin)
        dist, rho = float(np.linalg.norm(v)), math.hypot(v[0], v[1])
        if dist <= radius:
            out.append((k, (0, el.size, 0, n_col)))
            continue
        half = math.asin(radius / dist)
        el_c = math.atan2(v[2], rho)
        r0 = int(np.searchsorted(el, el_c - half, "left"))
        r1 = int(np.searchsorted(el, el_c + half, "right"))
        if r0 >= r1:
            continue
        if rho <= radius:
            out.append((k, (r0, r1, 0, n_col)))
            continue
        az_c, az_half = math.atan2(v[1], v[0]), math.asin(radius / rho)
        c0 = math.ceil((az_c - az_half) / step)
        c1 = math.floor((az_c + az_half) / step) + 1
        c0, c1 = c0 % n_col, c0 % n_col + (c1 - c0)
        if c1 - c0 >= n_col:
            out.append((k, (r0, r1, 0, n_col)))
        elif c1 > n_col:
            out.extend([(k, (r0, r1, c0, n_col)), (k, (r0, r1, 0, c1 - n_col))])
        elif c0 < c1:
            out.append((k, (r0, r1, c0, c1)))
    return out
