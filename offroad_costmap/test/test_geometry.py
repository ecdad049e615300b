"""Geometry acceptance on ray-cast scenes with ground-truth labels: the grid matches the
top-down truth on >= 95 % of observed cells within 8 m at 0.1 m (measured 95.8-97.8 %; each
case's regression floor is 94 %), obstacles land within one
cell of their footprint, and no fully hidden cell is FREE; over several poses and intrinsics
(pinhole, plumb_bob, rational_polynomial)."""

import math

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose
from offroad_core.costmap.categories import LEVELS, CategoryValues, LabelTable
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.projection import GroundProjector, ProjectionTables
from offroad_core.ontology import CATEGORY_OF, CLASS_NAMES, CLASSES, Category
from offroad_costmap.test.scene import Obstacle, Scene

K = [380.0, 0.0, 322.0, 0.0, 385.0, 270.0, 0.0, 0.0, 1.0]
PINHOLE = CameraIntrinsics.from_fov(640, 544, 90)
PLUMB_BOB = CameraIntrinsics.from_camera_info(640, 544, K, [-0.3, 0.1, 0.001, -0.001, 0.0],
                                              "plumb_bob")
RATIONAL = CameraIntrinsics.from_camera_info(
    640, 544, K, [2.0, 0.5, 0.001, -0.001, 0.01, 2.3, 1.0, 0.1], "rational_polynomial")
TRUE_LEVEL = np.array([LEVELS[c.category] for c in CLASSES], np.uint8)
CASES = [
    (PINHOLE, CameraPose(0.3, 0.0, 1.0, 0.0, math.radians(15), 0.0), 0),
    (PINHOLE, CameraPose(0.3, 0.2, 1.5, math.radians(3), math.radians(25), math.radians(10)), 1),
    (PINHOLE.scaled(320, 272), CameraPose(0.0, -0.4, 0.7, math.radians(-4), math.radians(8),
                                          math.radians(-12)), 2),
    (PLUMB_BOB, CameraPose(0.3, 0.0, 1.0, 0.0, math.radians(15), 0.0), 3),
    (RATIONAL, CameraPose(0.3, 0.0, 0.8, -0.05, math.radians(10), -0.2), 4),
    (RATIONAL, CameraPose(0.1, 0.3, 1.2, 0.1, math.radians(20), 0.3), 5),
]


def project(intr, pose, scene, occlusion="column", res=0.1, categories=None):
    camera = Camera(intr, pose)
    geometry = GridGeometry.from_size(10, 10, res, 0.0, -5.0)
    tables = ProjectionTables.build(camera, geometry, 8.0)
    table = LabelTable.build(range(7), CLASS_NAMES, categories or dict(CATEGORY_OF))
    grid = GroundProjector(tables, table, CategoryValues(), 1, occlusion).project(
        scene.render(camera))
    return camera, geometry, grid


def fully_hidden(scene, camera, xs, ys, res):
    hidden = scene.hidden(camera, xs, ys)
    for dx in (-res / 2, res / 2):
        for dy in (-res / 2, res / 2):
            hidden &= scene.hidden(camera, xs + dx, ys + dy)
    return hidden


def footprint_cells(scene, geometry, sub=5):
    """Cells any part of which (sub x sub samples) lies inside an obstacle footprint."""
    xs, ys = geometry.cell_centres()
    out = np.zeros(xs.shape, bool)
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    for dx in offsets * geometry.resolution:
        for dy in offsets * geometry.resolution:
            out |= scene.topdown(xs + dx, ys + dy)[1]
    return out


@pytest.mark.parametrize("occlusion", ["column", "ray"])
@pytest.mark.parametrize(("intr", "pose", "seed"), CASES)
def test_grid_matches_topdown(intr, pose, seed, occlusion):
    scene = Scene.random(seed)
    camera, geometry, grid = project(intr, pose, scene, occlusion)
    xs, ys = geometry.cell_centres()
    truth, _ = scene.topdown(xs, ys)
    near = np.hypot(xs - pose.x, ys - pose.y) <= 8.0
    observed = (grid.levels > 0) & near
    assert observed.sum() > 1500, "too few cells observed: the projection lost the ground"
    match = (grid.levels == TRUE_LEVEL[truth])[observed].mean()
    # measured 0.958-0.978 over the 12 cases (2816-4693 cells observed); 0.95 was 0.8 % (24
    # cells) from the worst: 0.94 leaves ~50 boundary cells to rounding on another machine
    assert match >= 0.94, f"grid matches the top-down truth on {match:.3f} of observed cells"
    hidden = fully_hidden(scene, camera, xs, ys, geometry.resolution)
    hidden &= ~footprint_cells(scene, geometry)  # behind, not under, the obstacle
    assert hidden.sum() > 20
    assert not (hidden & (grid.levels == 1)).any(), "a cell hidden behind an obstacle is FREE"
    assert not (hidden & (grid.levels == 2)).any(), "a hidden cell is CAUTION"


@pytest.mark.parametrize(("intr", "pose", "seed"), CASES)
def test_obstacles_land_on_their_footprint(intr, pose, seed):
    """Every obstacle cell is within one cell of a cell the true footprint overlaps."""
    scene = Scene.random(seed)
    categories = {**dict(CATEGORY_OF), "dynamic": Category.BLOCKED}  # water stays HAZARD
    _, geometry, grid = project(intr, pose, scene, categories=categories)
    overlapped = footprint_cells(scene, geometry)
    obstacle = grid.levels == 3
    near_footprint = binary_dilation(overlapped, np.ones((3, 3), bool))
    assert obstacle.sum() > 10, "no obstacle was marked"
    assert not (obstacle & ~near_footprint).any(), "obstacle cells away from every footprint"


def test_flat_projection_would_smear_but_contact_does_not():
    """A tall wall 4 m ahead: marked at 4 m, nothing lethal behind it, ground behind unknown."""
    scene = Scene(obstacles=[Obstacle(4.0, 0.0, 3.0, half_x=0.1, half_y=1.5)])
    _, geometry, grid = project(PINHOLE, CameraPose(0.0, 0.0, 1.0, 0.0, math.radians(15), 0.0),
                                scene)
    xs, ys = geometry.cell_centres()
    lethal_x = xs[grid.levels == 3]
    assert lethal_x.min() >= 3.8 and lethal_x.max() <= 4.2
    behind = (xs > 4.3) & (np.abs(ys) < 1.0)
    assert (grid.levels[behind] == 0).all()
    front = (xs > 2.5) & (xs < 3.7) & (np.abs(ys) < 1.0)
    assert (grid.levels[front] == 1).mean() > 0.9


def test_column_mode_hides_ground_seen_over_a_low_rock_ray_mode_keeps_it():
    scene = Scene(obstacles=[Obstacle(3.0, 0.0, 0.3, radius=0.3)])
    pose = CameraPose(0.0, 0.0, 1.0, 0.0, math.radians(15), 0.0)
    _, geometry, column = project(PINHOLE, pose, scene, "column")
    _, _, ray = project(PINHOLE, pose, scene, "ray")
    xs, ys = geometry.cell_centres()
    far_behind = (xs > 6.0) & (xs < 7.5) & (np.abs(ys) < 0.05)
    assert (column.levels[far_behind] == 0).all()
    assert (ray.levels[far_behind] == 1).all()


def test_sky_ignore_and_beyond_range_are_unknown():
    pose = CameraPose(0.0, 0.0, 1.0, 0.0, math.radians(15), 0.0)
    camera = Camera(PINHOLE, pose)
    geometry = GridGeometry.from_size(20, 10, 0.1, 0.0, -5.0)
    tables = ProjectionTables.build(camera, geometry, 8.0)
    table = LabelTable.build(range(7), CLASS_NAMES, dict(CATEGORY_OF))
    projector = GroundProjector(tables, table, CategoryValues(), 1)
    xs, ys = geometry.cell_centres()
    grid = projector.project(np.zeros((544, 640), np.uint8))
    assert (grid.values[np.hypot(xs, ys) > 8.0 + 0.75 * geometry.resolution] == -1).all()
    assert (grid.values[(xs > 3) & (xs < 7.5) & (np.abs(ys) < 1)] == 0).all()
    for value in (6, 255):
        assert (projector.project(np.full((544, 640), value, np.uint8)).values == -1).all()


def test_worst_wins_and_min_support():
    pose = CameraPose(0.0, 0.0, 1.0, 0.0, math.radians(30), 0.0)
    camera = Camera(PINHOLE, pose)
    geometry = GridGeometry.from_size(4, 4, 0.5, 1.0, -2.0)
    tables = ProjectionTables.build(camera, geometry, 8.0)
    table = LabelTable.build(range(7), CLASS_NAMES, dict(CATEGORY_OF))
    labels = np.zeros((544, 640), np.uint8)
    uv, _ = camera.base_to_pixels(np.array([[2.25, 0.25, 0.0]]))
    u, v = np.round(uv[0]).astype(int)
    labels[v, u] = 4  # one water pixel in a cell of smooth ground
    cell = geometry.cell_index(np.array([2.25]), np.array([0.25]))[0]
    one = GroundProjector(tables, table, CategoryValues(), 1).project(labels)
    assert one.values.ravel()[cell] == 100
    three = GroundProjector(tables, table, CategoryValues(), 3).project(labels)
    assert three.values.ravel()[cell] == 0
    labels[v - 1:v + 2, u - 1:u + 2] = 4
    assert GroundProjector(tables, table, CategoryValues(), 3).project(
        labels).values.ravel()[cell] == 100


def test_size_mismatch_is_refused():
    camera = Camera(PINHOLE, CameraPose(0.0, 0.0, 1.0, 0.0, 0.3, 0.0))
    tables = ProjectionTables.build(camera, GridGeometry.from_size(4, 4, 0.1, 0, -2), 8.0)
    projector = GroundProjector(tables, LabelTable.build(range(7), CLASS_NAMES,
                                                         dict(CATEGORY_OF)), CategoryValues())
    with pytest.raises(ValueError, match="camera model is 640x544"):
        projector.project(np.zeros((272, 320), np.uint8))
