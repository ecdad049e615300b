"""Geometry acceptance on the synthetic world (``offroad_training.synth``): frames rendered with
exact labels through several cameras (poses, pinhole / plumb_bob / rational_polynomial, two
resolutions) at several places of several worlds; the grid is compared with the frame's
top-down ground-truth map at 0.1 m.

- >= 95 % of the observed cells within 8 m of the camera have the top-down map's category, on
  average over the places of a camera, and >= 94 % at each place (measured 95.4-98.4 %);
- every obstacle cell lies within one cell of a cell the true footprint overlaps (for the
  coarse, low camera ``low_320``, whose label pixels cover several cells of ground far away:
  within one label pixel's radial ground footprint d^2 / (z f), the image's own resolution);
- no cell hidden behind an obstacle is FREE or CAUTION. "Hidden" comes from the renderer's own
  depth image (independent of the costmap code): a cell is hidden when the pixels of its centre
  and of its four corners all see something nearer than the ground point, and it is not under
  a footprint.
"""

import math

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose
from offroad_core.costmap.categories import LEVELS, CategoryValues, LabelTable
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.projection import GroundProjector, ProjectionTables
from offroad_core.ontology import CATEGORY_OF, CLASS_NAMES, CLASSES, Category, class_id

synth = pytest.importorskip("offroad_training.synth")

RES = 0.1
SUB = 5                     # footprint sub-sampling per cell
TRUE_LEVEL = np.array([LEVELS[c.category] for c in CLASSES] + [0] * (256 - len(CLASSES)),
                      np.uint8)
FOOTPRINT = (class_id("obstacle"), class_id("dynamic"))
K = [380.0, 0.0, 322.0, 0.0, 385.0, 270.0, 0.0, 0.0, 1.0]
CAMERAS = {
    "default": synth.default_camera(),
    "high_steep_roll": Camera(CameraIntrinsics.from_fov(640, 544, 80),
                              CameraPose(0.2, 0.1, 1.6, math.radians(4), math.radians(24),
                                         math.radians(8))),
    "low_320": Camera(CameraIntrinsics.from_fov(320, 272, 100),
                      CameraPose(0.4, -0.2, 0.6, math.radians(-3), math.radians(7),
                                 math.radians(-10))),
    "plumb_bob": Camera(CameraIntrinsics.from_camera_info(
        640, 544, K, [-0.3, 0.1, 0.001, -0.001, 0.0], "plumb_bob"),
        CameraPose(0.3, 0.0, 1.1, 0.0, math.radians(16), 0.0)),
    "rational": Camera(CameraIntrinsics.from_camera_info(
        640, 544, K, [2.0, 0.5, 0.001, -0.001, 0.01, 2.3, 1.0, 0.1], "rational_polynomial"),
        CameraPose(0.1, 0.2, 0.9, 0.05, math.radians(13), 0.15)),
}
WORLD_SEEDS = (11, 12, 13)


def robot_pose(world, x: float) -> tuple[float, float, float]:
    return x, float(world.track_centre(x)), float(world.track_heading(x))


def busiest_place(world) -> tuple[float, float, float]:
    """The robot pose on the track with the most obstacles 1.5-7 m ahead, within +-45 deg."""
    best, best_count = None, -1
    for x in np.arange(8.0, 100.0, 2.0):
        px, py, yaw = robot_pose(world, float(x))
        count = 0
        for o in world.obstacles:
            dx, dy = o.x - px, o.y - py
            bx = math.cos(yaw) * dx + math.sin(yaw) * dy
            by = -math.sin(yaw) * dx + math.cos(yaw) * dy
            count += 1.5 < bx < 7.0 and abs(by) < bx
        if count > best_count:
            best, best_count = (px, py, yaw), count
    return best


@pytest.fixture(scope="module")
def places():
    """(world seed, world, robot pose) per world: the pose is chosen for obstacles in view."""
    out = []
    for seed in WORLD_SEEDS:
        world = synth.SyntheticWorld.generate(seed, length=120.0)
        out.append((seed, world, busiest_place(world)))
    return out


def grid_for(camera: Camera, labels: np.ndarray, geometry: GridGeometry, categories=None):
    tables = ProjectionTables.build(camera, geometry, 8.0)
    table = LabelTable.build(range(len(CLASS_NAMES)), CLASS_NAMES,
                             categories or dict(CATEGORY_OF))
    return GroundProjector(tables, table, CategoryValues()).project(labels)


def footprint_cells(world, pose, geometry: GridGeometry, pad: int = 0) -> np.ndarray:
    """Cells any part of which (SUB x SUB samples) lies inside an obstacle footprint, on the
    grid grown by ``pad`` cells on every side."""
    ny, nx = geometry.ny + 2 * pad, geometry.nx + 2 * pad
    spec = synth.TopDownSpec(resolution=RES / SUB, origin_x=geometry.origin_x - pad * RES,
                             origin_y=geometry.origin_y - pad * RES, size_x=nx * RES,
                             size_y=ny * RES)
    fine = synth.render_topdown(world, pose, spec=spec).classes
    return np.isin(fine, FOOTPRINT).reshape(ny, SUB, nx, SUB).any(axis=(1, 3))


def footprint_distance(world, pose, geometry: GridGeometry, pad: int = 10) -> np.ndarray:
    """Distance (cells, centre to centre) of every grid cell to the nearest cell a footprint
    overlaps, footprints just outside the grid included."""
    distance = distance_transform_edt(~footprint_cells(world, pose, geometry, pad))
    return distance[pad:-pad, pad:-pad]


def hidden_cells(frame, geometry: GridGeometry) -> np.ndarray:
    """Cells whose centre and corners are all seen behind an obstacle (renderer depth)."""
    camera = frame.camera
    xs, ys = geometry.cell_centres()
    hidden = np.ones(xs.shape, bool)
    origin = camera.pose.translation
    h, w = frame.ray_length.shape
    for dx, dy in ((0, 0), (-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)):
        px, py = xs + dx * RES, ys + dy * RES
        points = np.stack([px.ravel(), py.ravel(), np.zeros(px.size)], axis=1)
        uv, inside = camera.base_to_pixels(points)
        u = np.clip(np.round(uv[:, 0]).astype(int), 0, w - 1)
        v = np.clip(np.round(uv[:, 1]).astype(int), 0, h - 1)
        dist = np.linalg.norm(points - origin, axis=1)
        blocked = inside & (frame.instances[v, u] >= 0) & (frame.ray_length[v, u] < 0.95 * dist)
        hidden &= blocked.reshape(xs.shape)
    return hidden


@pytest.mark.parametrize("camera_name", list(CAMERAS))
def test_synthetic_frames_match_the_topdown_map(places, camera_name):
    camera = CAMERAS[camera_name]
    geometry = GridGeometry.from_size(10.0, 10.0, RES, 0.0, -5.0)
    spec = synth.TopDownSpec(resolution=RES, origin_x=geometry.origin_x,
                             origin_y=geometry.origin_y, size_x=10.0, size_y=10.0)
    blocked_categories = {**dict(CATEGORY_OF), "dynamic": Category.BLOCKED}
    matches, hidden_total, obstacle_total, widened = [], 0, 0, 0
    for seed, world, pose in places:
        frame = synth.render_frame(world, camera, seed=seed, robot_pose=pose, topdown=spec)
        grid = grid_for(camera, frame.labels, geometry)
        xs, ys = geometry.cell_centres()
        truth = TRUE_LEVEL[frame.topdown.classes]
        near = np.hypot(xs - camera.pose.x, ys - camera.pose.y) <= 8.0
        observed = (grid.levels > 0) & near
        assert observed.sum() > 1000, f"{camera_name} {seed}: too few cells observed"
        match = float((grid.levels == truth)[observed].mean())
        matches.append(match)
        # measured 0.954 at the worst place (low_320; 0.955 rational): 0.95 was 0.4 % away, so a
        # place gets 1 point more (~40 of 4,000 cells); the 95 % acceptance holds on the mean
        assert match >= 0.94, (f"{camera_name} world {seed} at {pose}: grid matches the "
                               f"top-down map on {match:.3f} of {observed.sum()} observed cells")

        footprint = footprint_cells(world, pose, geometry)
        hidden = hidden_cells(frame, geometry) & ~footprint
        hidden_total += int(hidden.sum())
        assert not (hidden & (grid.levels == LEVELS[Category.FREE])).any(), \
            f"{camera_name} world {seed}: a cell hidden behind an obstacle is FREE"
        assert not (hidden & (grid.levels == LEVELS[Category.CAUTION])).any(), \
            f"{camera_name} world {seed}: a cell hidden behind an obstacle is CAUTION"

        obstacle = grid_for(camera, frame.labels, geometry, blocked_categories).levels == \
            LEVELS[Category.BLOCKED]
        # Distance (cells, centre to centre) to the nearest cell the footprint overlaps. The
        # allowance is one cell (8-neighbourhood) for every camera whose half label pixel
        # covers at most one cell of ground at 8 m (d^2 / (2 z f) <= RES: all but low_320);
        # for coarser cameras it is one label pixel's radial ground footprint d^2 / (z f).
        distance = footprint_distance(world, pose, geometry)
        focal = max(camera.intrinsics.fx, camera.intrinsics.fy)
        pixel = ((xs - camera.pose.x) ** 2 + (ys - camera.pose.y) ** 2) / (camera.pose.z * focal)
        strict = 8.0 ** 2 / (2 * camera.pose.z * focal) <= RES
        allowance = 1.5 if strict else np.maximum(1.5, pixel / RES)
        obstacle_total += int(obstacle.sum())
        widened += int((obstacle & (distance > 1.5)).sum())
        stray = obstacle & (distance > allowance)
        assert not stray.any(), (f"{camera_name} world {seed}: {stray.sum()} obstacle cells "
                                 f"away from every footprint")
    print(f"\n{camera_name}: match {', '.join(f'{m:.3f}' for m in matches)}; "
          f"{obstacle_total} obstacle cells ({widened} beyond one cell, within the pixel "
          f"footprint), {hidden_total} hidden cells checked")
    assert np.mean(matches) >= 0.95, matches  # measured 0.967-0.976 per camera
    assert obstacle_total > 10, "no obstacle in view: the places do not test obstacles"
    assert hidden_total > 20, "no hidden ground: the places do not test occlusion"
