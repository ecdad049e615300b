"""Synthetic relief: the height field, obstacles on it, the ray march, exact depth and the
ground truth (labels, class and elevation maps) on relief; flat worlds as before relief."""

import hashlib
import math

import cv2
import numpy as np
import pytest

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose
from offroad_training import synth
from offroad_training.synth.raycast import march
from offroad_training.synth.relief import ReliefSpec, track_grade
from offroad_training.synth.world import OBSTACLE, SKY

GROUND = (0, 1, 2, 4)
SMALL = {"length": 80.0, "half_width": 30.0}
CAMERAS = [
    synth.default_camera(160, 136),
    Camera(CameraIntrinsics(150, 120, 95.0, 92.0, 74.0, 61.0, "plumb_bob",
                            (-0.25, 0.06, 0.001, -0.001, 0.0)),
           CameraPose(x=0.2, y=0.1, z=1.3, roll=0.05, pitch=math.radians(18), yaw=0.3)),
]


@pytest.fixture(scope="module")
def rugged():
    return synth.SyntheticWorld.generate(5, **SMALL, relief="rugged")


def _pose(world, x, lateral=0.0, dyaw=0.0):
    return (x, float(world.track_centre(x)) + lateral, float(world.track_heading(x)) + dyaw)


def test_flat_world_renders_as_before_relief():
    """Digest of RGB, labels and class maps of 2 worlds x 2 cameras rendered by the renderer
    before relief existed (commit 834fcb2, numpy 2.4.6, OpenCV 5.0.0): a flat world must give
    the same bytes (a library upgrade that changes float rounding changes it too)."""
    cams = [synth.default_camera(96, 80),
            Camera(CameraIntrinsics(88, 72, 60.0, 58.0, 43.0, 35.0, "plumb_bob",
                                    (-0.2, 0.05, 0.001, -0.001, 0.0)),
                   CameraPose(x=0.2, y=0.1, z=1.3, roll=0.05, pitch=0.3, yaw=0.2))]
    digest = hashlib.sha256()
    for seed, x, t in ((3, 10.0, 0.0), (11, 35.0, 2.5)):
        world = synth.SyntheticWorld.generate(seed)
        pose = (x, float(world.track_centre(x)) + 0.3, float(world.track_heading(x)) + 0.1)
        for cam in cams:
            frame = synth.render_frame(world, cam, seed=seed, robot_pose=pose, time=t,
                                       topdown=synth.TopDownSpec(0.25, -1.0, -5.0, 12.0, 10.0))
            for a in (frame.rgb, frame.labels, frame.topdown.classes):
                digest.update(np.ascontiguousarray(a).tobytes())
            assert frame.base_z == 0.0 and not frame.topdown.elevation.any()
    assert digest.hexdigest() == (
        "305b0775ffcf883e9e7be6e1cc3416207de71d2904dfed423b5adf7bacb5eddd")


def test_relief_is_deterministic_and_keeps_the_rest_of_the_world(rugged):
    again = synth.SyntheticWorld.generate(5, **SMALL, relief="rugged")
    assert np.array_equal(rugged.height_field.nodes, again.height_field.nodes)
    other = synth.SyntheticWorld.generate(6, **SMALL, relief="rugged")
    assert not np.array_equal(other.height_field.nodes, rugged.height_field.nodes)
    flat = synth.SyntheticWorld.generate(5, **SMALL)
    assert flat.height_field is None and flat.relief is None
    assert np.array_equal(flat.fields, rugged.fields)
    assert np.array_equal(flat.texture, rugged.texture)
    assert [(o.kind, o.x, o.y, o.height) for o in flat.obstacles] == [
        (o.kind, o.x, o.y, o.height) for o in rugged.obstacles]
    assert synth.SyntheticWorld.generate(5, **SMALL, relief="flat").height_field is None
    with pytest.raises(ValueError, match="unknown relief"):
        synth.SyntheticWorld.generate(5, **SMALL, relief="alpine")
    with pytest.raises(ValueError, match="hills"):
        ReliefSpec(hills=-1.0)


@pytest.mark.parametrize(("spec", "sign"), [(ReliefSpec(steps=6, step_height=0.3), 0),
                                            (ReliefSpec(ditches=6, ditch_depth=0.5), -1),
                                            (ReliefSpec(banks=6, bank_height=1.5), 1)])
def test_each_feature_alone_and_the_track_stays_drivable(spec, sign):
    world = synth.SyntheticWorld.generate(5, **SMALL, relief=spec)
    hf = world.height_field
    nodes = hf.nodes
    assert float(hf.height(np.array([0.0]), np.array([0.0]))[0]) == 0.0
    gy, gx = np.gradient(nodes.astype(np.float64), hf.resolution)
    slope = np.hypot(gx, gy)
    if sign == 0:   # plateaus and pits with vertical edges, one cell wide
        size = spec.step_height
        assert max(nodes.max(), -nodes.min()) > 0.6 * size, (nodes.min(), nodes.max())
        assert slope.max() > 0.6 * size / (2 * hf.resolution), slope.max()
    elif sign < 0:  # trenches only lower the ground
        assert nodes.max() == 0.0 and nodes.min() < -0.6 * spec.ditch_depth
    else:           # banks only raise it, at a mean 25-50 deg (1.5 x that at the middle)
        assert nodes.min() == 0.0 and nodes.max() > 0.6 * spec.bank_height
        assert 0.5 < slope.max() < 1.5 * math.tan(math.radians(50)) + 0.1, slope.max()
    # The graded track: no feature within its band.
    ys = hf.y0 + np.arange(nodes.shape[0]) * hf.resolution
    xs = hf.x0 + np.arange(nodes.shape[1]) * hf.resolution
    band = np.abs(ys[:, None] - world.track_centre(xs)[None, :]) < world.track_half_width + 0.5
    assert np.abs(nodes[band]).max() == 0.0


def test_rugged_track_grade_is_limited(rugged):
    xs = np.arange(-5.0, 55.0, 1.0)
    z = rugged.ground_height(xs, rugged.track_centre(xs))
    grade = np.abs(np.diff(z))
    # Measured 0.13 max over 1 m steps on seed 5 (limit 0.10 + roughness).
    assert grade.max() < track_grade(rugged.relief) + 0.06, grade.max()
    assert np.ptp(rugged.height_field.nodes) > 3.0


def test_obstacles_stand_on_the_relief(rugged):
    hf = rugged.height_field
    rng = np.random.default_rng(1)
    for time in (0.0, 4.0):
        for o in rugged.obstacles_at(time):
            # The footprint sampled densely: outline and random interior points.
            r = o.bounding_radius
            x, y = o.x + rng.uniform(-r, r, 4000), o.y + rng.uniform(-r, r, 4000)
            inside = o.contains(x, y)
            outline = o.outline(64)
            ground = hf.height(np.concatenate([x[inside], outline[:, 0]]),
                               np.concatenate([y[inside], outline[:, 1]]))
            assert o.base == pytest.approx(float(hf.height(np.array([o.x]),
                                                           np.array([o.y]))[0]), abs=1e-9)
            assert o.bottom <= ground.min() - 0.015, (o.kind, o.bottom, ground.min())
            assert o.top == pytest.approx(o.base + o.height)


def test_march_finds_the_first_hit_on_the_surface(rugged):
    hf = rugged.height_field
    rng = np.random.default_rng(0)
    n = 300
    origin = np.array([20.0, float(rugged.track_centre(20.0)), 0.0])
    origin[2] = float(hf.height(origin[:1], origin[1:2])[0]) + 1.0
    az, el = rng.uniform(-np.pi, np.pi, n), rng.uniform(-0.5, 0.15, n)
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], 1)
    t = march(hf, origin, d[:, 0], d[:, 1], d[:, 2])
    samples = np.arange(0.0, 60.0, 0.004)
    checked = 0
    for i in range(n):
        p = origin + samples[:, None] * d[i]
        below = np.flatnonzero(p[:, 2] <= hf.height(p[:, 0], p[:, 1]))
        first = samples[below[0]] if below.size else np.inf
        if first < 59.0 or t[i] < 59.0:
            assert abs(first - t[i]) < 0.005, (i, first, t[i])
            hit = origin + t[i] * d[i]
            assert abs(hit[2] - hf.height(hit[:1], hit[1:2])[0]) < 1e-6
            checked += 1
    assert checked > 150, checked


def _world_points(frame):
    """Depth back-projected with the camera model -> world frame (H, W, 3), NaN for sky."""
    cam = frame.camera
    pts = synth.depth_to_points(frame.depth, cam).reshape(-1, 3).astype(np.float64)
    base = pts @ cam.pose.rotation_optical.T + cam.pose.translation
    x, y, yaw = frame.robot_pose
    c, s = math.cos(yaw), math.sin(yaw)
    world = np.stack([x + c * base[:, 0] - s * base[:, 1], y + s * base[:, 0] + c * base[:, 1],
                      base[:, 2] + frame.base_z], 1)
    return base.reshape(*frame.depth.shape, 3), world.reshape(*frame.depth.shape, 3)


@pytest.mark.parametrize("cam_index", range(len(CAMERAS)))
@pytest.mark.parametrize("relief", [None, "rugged"])
def test_depth_back_projects_onto_the_rendered_surface(rugged, relief, cam_index):
    world = rugged if relief else synth.SyntheticWorld.generate(5, **SMALL)
    cam = CAMERAS[cam_index]
    errors, obstacle_pixels = [], 0
    for x, lateral, dyaw in ((12.0, 0.0, 0.0), (30.0, 0.8, 0.5), (45.0, -0.5, -0.4)):
        frame = synth.render_frame(world, cam, seed=1, robot_pose=_pose(world, x, lateral, dyaw),
                                   topdown=None)
        sky = frame.labels == SKY
        assert np.isnan(frame.depth[sky]).all() and np.isfinite(frame.depth[~sky]).all()
        assert (frame.depth[~sky] > 0).all()
        base, pts = _world_points(frame)
        # Depth is z of the optical frame; the point lies on the pixel's ray at ray_length.
        origin = cam.pose.translation
        length = np.linalg.norm(base[~sky] - origin, axis=1)
        assert np.allclose(length, frame.ray_length[~sky], rtol=1e-5, atol=1e-5)
        ground = np.isin(frame.labels, GROUND)
        gp = pts[ground]
        err = np.abs(gp[:, 2] - world.ground_height(gp[:, 0], gp[:, 1]))
        errors.append(err / (1e-4 + 1e-6 * frame.ray_length[ground]))
        obstacles = world.obstacles_at(frame.time)
        for k in np.unique(frame.instances[frame.instances >= 0]):
            o, mine = obstacles[k], frame.instances == k
            p = pts[mine]
            assert (p[:, 2] >= o.bottom - 1e-3).all() and (p[:, 2] <= o.top + 1e-3).all()
            if o.is_cylinder:
                # Flat worlds intersect in float32 (their historical precision): ~2 mm at 40 m.
                tol = 1e-4 + (6e-5 * frame.ray_length[mine] if relief is None else 0.0)
                r = np.hypot(p[:, 0] - o.x, p[:, 1] - o.y)
                assert (r <= o.radius + tol).all(), (r - o.radius).max()
            obstacle_pixels += int(mine.sum())
    # Tolerance 0.1 mm + 1 um per metre of ray (float32 rays and depth); measured: at most
    # 1.2e-5 m within 45 m on relief, 1.4e-7 x the ray length on flat ground (rays to 34 km).
    err = np.concatenate(errors)
    assert err.size > 20000 and err.max() <= 1.0, err.max()
    assert obstacle_pixels > 500


def _uniform(classes: np.ndarray) -> np.ndarray:
    k = np.ones((3, 3), np.uint8)
    return cv2.erode(classes, k) == cv2.dilate(classes, k)


def test_ground_hits_land_in_their_cells_at_their_elevation(rugged):
    cam = CAMERAS[0]
    checked = agree = z_ok = 0
    for x, lateral, dyaw in ((12.0, 0.0, 0.0), (30.0, 0.8, 0.5), (45.0, -0.5, -0.4)):
        frame = synth.render_frame(rugged, cam, seed=2, robot_pose=_pose(rugged, x, lateral,
                                                                         dyaw))
        top = frame.topdown
        base, _ = _world_points(frame)
        ground = np.isin(frame.labels, GROUND)
        p = base[ground]
        row, col, inside = top.cell_of(p[:, 0], p[:, 1])
        keep = inside & _uniform(top.classes)[row, col]
        checked += int(keep.sum())
        agree += int((top.classes[row, col][keep] == frame.labels[ground][keep]).sum())
        # Elevation of the cell centre vs the hit: within the slope across half a cell.
        gx, gy = rugged.height_field.gradient(*(_world_points(frame)[1][ground][:, :2].T))
        tol = np.hypot(gx, gy) * top.resolution * 0.75 + 1e-3
        dz = np.abs(top.elevation[row, col] - p[:, 2])
        z_ok += int((dz <= tol)[keep].sum())
    assert checked > 20000, checked
    # Measured 100.0 % (class) and 99.9 % (elevation within tolerance) on these poses.
    assert agree / checked >= 0.995, agree / checked
    assert z_ok / checked >= 0.99, z_ok / checked


def test_elevation_map_is_the_height_field(rugged):
    pose = _pose(rugged, 25.0, 0.5, 0.3)
    spec = synth.TopDownSpec(0.1, -2.0, -8.0, 16.0, 16.0)
    top = synth.render_topdown(rugged, pose, spec=spec)
    cx, cy = top.cell_centres()
    c, s = math.cos(pose[2]), math.sin(pose[2])
    wx, wy = pose[0] + c * cx - s * cy, pose[1] + s * cx + c * cy
    base_z = rugged.ground_height(np.array([pose[0]]), np.array([pose[1]]))[0]
    expected = (rugged.ground_height(wx.ravel(), wy.ravel()) - base_z).reshape(cx.shape)
    assert top.elevation.dtype == np.float32 and top.elevation.shape == top.classes.shape
    assert np.allclose(top.elevation, expected, atol=1e-5)
    assert np.ptp(top.elevation) > 0.5
    assert (top.surface >= top.elevation).all()
    footprint = np.isin(top.classes, (OBSTACLE, 5))
    assert footprint.any()
    assert np.array_equal(top.surface[~footprint], top.elevation[~footprint])
    # Over a footprint: the obstacle's top (or the ground where a slope rises above it).
    want = expected.copy()
    seen = 0
    for o in rugged.obstacles_at(0.0):
        mine = o.contains(wx, wy)
        want[mine] = np.maximum(want[mine], o.top - base_z)
        seen += bool(mine.any())
    assert seen >= 3 and np.allclose(top.surface, want, atol=1e-5), seen


def test_depth_encodings_and_camera_cloud_pixels(rugged):
    cam = CAMERAS[1]
    frame = synth.render_frame(rugged, cam, seed=0, robot_pose=_pose(rugged, 20.0),
                               topdown=None)
    mm = synth.encode_depth(frame.depth, "16UC1")
    metres = synth.encode_depth(frame.depth, "32FC1")
    assert mm.dtype == np.uint16 and metres.dtype == np.float32
    a, b = synth.decode_depth(mm, "16UC1"), synth.decode_depth(metres, "32FC1")
    both = np.isfinite(a)
    assert np.array_equal(both, np.isfinite(b))
    assert np.abs(a[both] - b[both]).max() <= 0.0005 + 1e-6
    assert (mm[frame.labels == SKY] == 0).all() and np.isnan(metres[frame.labels == SKY]).all()
    far = synth.encode_depth(np.array([[70.0, 65.0, np.nan, 0.0]]), "16UC1")
    assert far.tolist() == [[0, 65000, 0, 0]]
    with pytest.raises(ValueError, match="encoding"):
        synth.encode_depth(frame.depth, "8UC1")
    # Each cloud point projects back onto its own pixel (so it takes that pixel's label).
    cloud = synth.depth_to_points(frame.depth, cam).reshape(-1, 3)
    valid = np.isfinite(cloud[:, 2])
    uv, front = cam.intrinsics.project_optical(cloud[valid])
    grid = cam.intrinsics.pixel_grid()[valid]
    assert front.all() and np.abs(uv - grid).max() < 0.02
    with pytest.raises(ValueError, match="depth image"):
        synth.depth_to_points(frame.depth[:-1], cam)
