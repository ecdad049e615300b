"""Ray-cast renderer: one ray per pixel centre through :class:`offroad_core.camera.Camera`
(intrinsics, mounting pose, distortion), exact labels, exact depth, photo-like RGB, and the
top-down ground truth of the frame (:mod:`offroad_training.synth.topdown`).

Per pixel the ray from the camera centre is intersected with the ground (the plane z = 0, or
the world's height field, :mod:`offroad_training.synth.raycast`) and with every obstacle prism
(side and top cap); the nearest hit wins. No hit is sky. The label of a pixel is the class at
the hit point; the ground class comes from :meth:`SyntheticWorld.ground_class` at the exact hit
point, so a ground pixel's 3-D hit point (its depth back-projected with the camera model) lies
in a top-down cell of the same class (away from borders, where the cell centre and the hit
point may fall on different sides), at the cell's elevation (to within the slope across it).

The robot's ``base_link`` stands level (no roll or pitch) at the ground height under its
origin (``SyntheticFrame.base_z``; 0 on a flat world): the camera is mounted on it, and the
top-down maps are in it.

Depth (``SyntheticFrame.depth``): metres along the optical axis (z of the optical frame, as in
REP-118 depth images), float32, NaN where nothing was hit (sky); the same pixels as the RGB and
labels. ``ray_length`` is the distance from the camera centre along the pixel's ray (inf: sky).

Randomness: the world (geometry, colours, light) comes from the world's seed; ``seed`` of
:func:`render_frame` drives per-frame photometric variation (exposure jitter, white balance,
blur, sensor noise) and the LiDAR's noise and dropouts. Same world + camera + pose + time + seed
-> identical arrays. A flat world renders bit for bit as before the relief existed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose
from offroad_training.synth.lidar import LidarScan, LidarSpec, render_lidar
from offroad_training.synth.raycast import cast_grid
from offroad_training.synth.shading import (
    TexSampler,
    photograph,
    shade_ground,
    shade_obstacle,
    sky_colour,
)
from offroad_training.synth.topdown import (
    DEFAULT_TOPDOWN,
    UNKNOWN,
    TopDownMap,
    TopDownSpec,
    render_topdown,
    topdown_map,
)
from offroad_training.synth.world import (
    SKY,
    Obstacle,
    SyntheticWorld,
)

__all__ = ["DEFAULT_TOPDOWN", "UNKNOWN", "SyntheticFrame", "TopDownMap", "TopDownSpec",
           "default_camera", "render_frame", "render_topdown"]
DEFAULT_CAMERA_HFOV_DEG = 90.0
OBSTACLE_RANGE = 60.0
"""Obstacles farther than this (m, horizontal, from the camera) are not drawn: the horizon
stays readable instead of a band of sub-pixel slivers; top-down maps reach 30 m."""


def default_camera(width: int = 640, height: int = 544, hfov_deg: float = DEFAULT_CAMERA_HFOV_DEG,
                   z: float = 1.0, pitch_deg: float = 12.0) -> Camera:
    """The robot's forward camera: ``hfov_deg`` horizontal FOV, ``z`` m above the ground, 0.3 m
    ahead of ``base_link``, pitched down ``pitch_deg`` (undistorted, centred principal point)."""
    return Camera(CameraIntrinsics.from_fov(width, height, hfov_deg),
                  CameraPose(x=0.3, y=0.0, z=z, roll=0.0, pitch=math.radians(pitch_deg), yaw=0.0))


@dataclass(frozen=True)
class SyntheticFrame:
    """One rendered frame: image, exact labels and depth, top-down ground truth, the optional
    LiDAR scan of the same instant, and how it was made.

    ``instances`` is the index into ``world.obstacles`` hit by each pixel (-1: ground or sky).
    ``depth``: optical-axis depth (m, float32, NaN = no hit), None if not requested;
    ``ray_length``: distance along the pixel's ray (m, float32, inf = sky). ``base_z``: height
    of ``base_link`` (the ground under the robot) in the world. ``lidar``: the scan of
    ``lidar_spec`` from the same pose, time and seed, or None.
    """

    rgb: np.ndarray
    labels: np.ndarray
    topdown: TopDownMap
    camera: Camera
    robot_pose: tuple[float, float, float]
    time: float
    instances: np.ndarray
    depth: np.ndarray | None
    world_seed: int
    seed: int
    ray_length: np.ndarray | None = None
    base_z: float = 0.0
    lidar: LidarScan | None = None
    lidar_spec: LidarSpec | None = None


class _Rays:
    """Per-camera cache: base_link unit rays per pixel, their optical-frame z (depth per metre
    of ray) and normalised coordinates (x/z, y/z), and the normalised image extent."""

    def __init__(self, camera: Camera) -> None:
        intr = camera.intrinsics
        h, w = intr.height, intr.width
        optical = intr.pixel_rays_optical(intr.pixel_grid())
        base = optical @ camera.pose.rotation_optical.T
        self.dx = base[:, 0].reshape(h, w).astype(np.float32)
        self.dy = base[:, 1].reshape(h, w).astype(np.float32)
        self.dz = base[:, 2].reshape(h, w).astype(np.float32)
        self.optical_z = optical[:, 2].reshape(h, w).astype(np.float32)
        xn, yn = optical[:, 0] / optical[:, 2], optical[:, 1] / optical[:, 2]
        self.normalised = np.stack([xn.reshape(h, w), yn.reshape(h, w)], -1).astype(np.float32)
        self.norm_box = (float(xn.min()), float(xn.max()), float(yn.min()), float(yn.max()))
        u = (np.arange(w, dtype=np.float32) - intr.cx) / (w / 2)
        v = (np.arange(h, dtype=np.float32) - intr.cy) / (w / 2)
        self.vignette = (1.0 - 0.22 * (u[None, :] ** 2 + v[:, None] ** 2)).astype(np.float32)


_RAY_CACHE: OrderedDict[Camera, _Rays] = OrderedDict()


def camera_rays(camera: Camera) -> _Rays:
    """The cached per-pixel rays of ``camera`` (shared with :mod:`.depth`)."""
    rays = _RAY_CACHE.get(camera)
    if rays is None:
        rays = _Rays(camera)
        _RAY_CACHE[camera] = rays
        while len(_RAY_CACHE) > 4:
            _RAY_CACHE.popitem(last=False)
    _RAY_CACHE.move_to_end(camera)
    return rays


_rays = camera_rays


def render_frame(world: SyntheticWorld, camera: Camera, seed: int = 0,
                 robot_pose: tuple[float, float, float] = (0.0, 0.0, 0.0), time: float = 0.0,
                 topdown: TopDownSpec | None = DEFAULT_TOPDOWN, depth: bool = True,
                 lidar: LidarSpec | None = None) -> SyntheticFrame:
    """Render ``world`` through ``camera`` mounted on a robot at ``robot_pose`` (x, y, yaw in
    the world/odom frame) at ``time`` s. ``topdown=None`` skips the top-down maps (empty maps
    are returned); ``depth=False`` leaves ``frame.depth`` None; ``lidar`` also renders that
    LiDAR's scan (:func:`offroad_training.synth.lidar.render_lidar`, same ``seed``)."""
    rays = _rays(camera)
    h, w = rays.dx.shape
    rx, ry, ryaw = (float(v) for v in robot_pose)
    c, s = math.cos(ryaw), math.sin(ryaw)
    dx = c * rays.dx - s * rays.dy
    dy = s * rays.dx + c * rays.dy
    dz = rays.dz
    cam = camera.pose.translation
    base_z = float(world.ground_height(np.array([rx]), np.array([ry]))[0])
    origin = np.array([rx + c * cam[0] - s * cam[1], ry + s * cam[0] + c * cam[1],
                       cam[2] + base_z])
    ground_z = float(world.ground_height(origin[:1], origin[1:2])[0])
    if origin[2] <= ground_z:
        raise ValueError(f"camera height {origin[2] - ground_z:.3f} m must be above the ground "
                         "(z > 0)")

    obstacles = world.obstacles_at(time)
    boxes = _obstacle_boxes(obstacles, camera, rays, (rx, ry, ryaw), base_z)
    ray_t, instances = cast_grid(world.height_field, origin, dx, dy, dz, obstacles, boxes)

    labels = np.full((h, w), SKY, dtype=np.uint8)
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    app = world.appearance
    tex = TexSampler(world.texture)

    ground = (instances < 0) & np.isfinite(ray_t)
    t = ray_t[ground]
    gdx, gdy, gdz = dx[ground], dy[ground], dz[ground]
    gx = origin[0] + t * gdx
    gy = origin[1] + t * gdy
    gcls = world.ground_class(gx, gy)
    labels[ground] = gcls
    sun = None
    if world.height_field is not None:
        sun = np.maximum(world.height_field.normals(gx, gy) @ app.sun_dir, 0.0)
    rgb[ground] = shade_ground(world, tex, gcls, gx, gy, t, gdx, gdy, gdz, sun)

    sky = ~np.isfinite(ray_t)
    rgb[sky] = sky_colour(app, tex, dx[sky], dy[sky], dz[sky])

    for k, (v0, v1, u0, u1) in boxes:
        mine = instances[v0:v1, u0:u1] == k
        if not mine.any():
            continue
        o = obstacles[k]
        labels[v0:v1, u0:u1][mine] = o.cls
        t = ray_t[v0:v1, u0:u1][mine]
        odx, ody = dx[v0:v1, u0:u1][mine], dy[v0:v1, u0:u1][mine]
        odz = dz[v0:v1, u0:u1][mine]
        hit = (origin[0] + t * odx, origin[1] + t * ody, origin[2] + t * odz)
        rgb[v0:v1, u0:u1][mine] = shade_obstacle(app, tex, o, hit, t)

    image = photograph(rgb, rays.vignette, app, seed, world.seed)
    top = topdown_map(world, topdown, (rx, ry, ryaw), time, base_z)
    depth_image = None
    if depth:
        with np.errstate(invalid="ignore"):
            depth_image = np.where(np.isfinite(ray_t), ray_t * rays.optical_z, np.nan
                                   ).astype(np.float32)
    scan = render_lidar(world, (rx, ry, ryaw), lidar, seed, time) if lidar is not None else None
    return SyntheticFrame(image, labels, top, camera, (rx, ry, ryaw), float(time), instances,
                          depth_image, world.seed, int(seed), ray_t.astype(np.float32), base_z,
                          scan, lidar)


# ---------------------------------------------------------------------- geometry
def _obstacle_boxes(obstacles: tuple[Obstacle, ...], camera: Camera, rays: _Rays,
                    pose: tuple[float, float, float], base_z: float = 0.0,
                    max_range: float = OBSTACLE_RANGE
                    ) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Pixel bounding boxes (v0, v1, u0, u1) of obstacles that may be visible."""
    if not obstacles:
        return []
    intr = camera.intrinsics
    rx, ry, ryaw = pose
    c, s = math.cos(ryaw), math.sin(ryaw)
    out = []
    xlo, xhi, ylo, yhi = rays.norm_box
    rot = camera.pose.rotation_optical
    cam_t = camera.pose.translation
    for k, o in enumerate(obstacles):
        # Obstacle centre in base_link; cull far ones.
        bx = c * (o.x - rx) + s * (o.y - ry)
        by = -s * (o.x - rx) + c * (o.y - ry)
        if math.hypot(bx - cam_t[0], by - cam_t[1]) > max_range + o.bounding_radius:
            continue
        outline = o.outline(16)
        lx = c * (outline[:, 0] - rx) + s * (outline[:, 1] - ry)
        ly = -s * (outline[:, 0] - rx) + c * (outline[:, 1] - ry)
        pts = np.concatenate([np.stack([lx, ly, np.full_like(lx, o.bottom - base_z)], 1),
                              np.stack([lx, ly, np.full_like(lx, o.top - base_z)], 1)])
        opt = (pts - cam_t) @ rot
        z = opt[:, 2]
        if (z <= 1e-6).all():
            continue
        if (z <= 1e-6).any():
            out.append((k, (0, intr.height, 0, intr.width)))
            continue
        xn, yn = opt[:, 0] / z, opt[:, 1] / z
        x0, x1 = max(xn.min(), xlo - 1e-3), min(xn.max(), xhi + 1e-3)
        y0, y1 = max(yn.min(), ylo - 1e-3), min(yn.max(), yhi + 1e-3)
        if x0 > x1 or y0 > y1:
            continue
        edge = np.linspace(0.0, 1.0, 17)
        ex = np.concatenate([x0 + (x1 - x0) * edge, np.full(17, x1),
                             x0 + (x1 - x0) * edge, np.full(17, x0)])
        ey = np.concatenate([np.full(17, y0), y0 + (y1 - y0) * edge,
                             np.full(17, y1), y0 + (y1 - y0) * edge])
        uv, _ = intr.project_optical(np.stack([ex, ey, np.ones_like(ex)], 1))
        u0 = max(0, math.floor(uv[:, 0].min()) - 2)
        u1 = min(intr.width, math.ceil(uv[:, 0].max()) + 3)
        v0 = max(0, math.floor(uv[:, 1].min()) - 2)
        v1 = min(intr.height, math.ceil(uv[:, 1].max()) + 3)
        if u0 < u1 and v0 < v1:
            out.append((k, (v0, v1, u0, u1)))
    return out
