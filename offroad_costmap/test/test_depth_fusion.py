"""Depth mode: painting with occlusion, the terrain rules, and whole frames on relief scenes
(``depth_scene.py``: analytic ray casting, independent of the costmap code)."""

import numpy as np
import pytest

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose
from offroad_core.costmap.categories import CategoryValues, LabelTable, model_categories
from offroad_core.costmap.depthmap import DepthCostmap, DepthSettings
from offroad_core.costmap.extrinsics import FrameTable, Rigid, optical_rigid
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.painting import Painter
from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, ModelInfo
from offroad_core.costmap.pointcloud import pack_cloud
from offroad_core.costmap.sensors import CloudMessage, DepthMessage, Paired
from offroad_core.costmap.terrain import TerrainFuser, TerrainRules
from offroad_core.ontology import CLASS_NAMES
from offroad_costmap.test.depth_scene import Box, ReliefScene

IDS = tuple(range(len(CLASS_NAMES)))
TABLE = LabelTable.build(IDS, CLASS_NAMES, model_categories(CLASS_NAMES, (), {}))
COMPLIANT = np.isin(np.arange(256), [2])           # vegetation
GEOM = GridGeometry.from_size(10, 10, 0.1, -2, -5)
INTR = CameraIntrinsics.from_fov(320, 272, 90)
POSE = CameraPose(0.3, 0.0, 1.0, 0.0, 0.26, 0.0)
LIDAR = CameraPose(0.0, 0.0, 1.3)
SMOOTH, ROUGH, VEG, OBSTACLE, WATER = 0, 1, 2, 3, 4


def fuse(points, labels, rules=None):
    rules = rules or TerrainRules(factor=1)
    fuser = TerrainFuser(GEOM, rules, TABLE, COMPLIANT, CategoryValues())
    return fuser.fuse([fuser.batch_xyz(np.asarray(points, np.float32),
                                       np.asarray(labels, np.uint8))]).levels


def patch(x0, x1, y0, y1, z, step=0.02):
    x, y = np.meshgrid(np.arange(x0, x1, step), np.arange(y0, y1, step))
    zz = z(x, y) if callable(z) else np.full(x.shape, z)
    return np.stack([x.ravel(), y.ravel(), zz.ravel()], 1)


def level_at(levels, x, y):
    return levels.ravel()[GEOM.cell_index(np.array([x]), np.array([y]))[0]]


def test_geometry_blocks_steps_tall_things_and_slopes_whatever_their_class():
    ground = patch(0, 6, -2, 2, 0.0)
    step = patch(3, 6, 0.5, 2, 0.3)                  # a 0.3 m plateau, labelled smooth ground
    low = patch(3, 6, -2, -1, 0.1)                   # 0.1 m: climbable
    pts = np.concatenate([ground[~((ground[:, 0] >= 3) & (ground[:, 1] >= -1) & (
        ground[:, 1] < -1 + 1e-9)) & ~((ground[:, 0] >= 3) & ((ground[:, 1] >= 0.5)
                                                           | (ground[:, 1] < -1)))], step, low])
    levels = fuse(pts, np.full(len(pts), SMOOTH))
    assert level_at(levels, 1.0, 0.0) == 1                     # flat smooth ground: FREE
    assert level_at(levels, 3.05, 1.2) == 3                    # the plateau's edge: BLOCKED
    assert level_at(levels, 4.5, 0.55) == 3                    # its side edge
    assert level_at(levels, 4.5, 1.3) == 1                     # on top, away from the edge
    assert level_at(levels, 3.05, -1.5) == 1                   # 0.1 m step: climbable
    assert level_at(levels, 8.0, 0.0) == 0                     # no points: unknown


def test_vegetation_by_height_overhangs_ignored_and_geometry_only_points():
    ground = patch(0, 6, -2, 2, 0.0)
    grass = patch(1, 2, -0.5, 0.5, 0.4)               # 0.4 m grass: driven through
    hedge = patch(3, 4, -0.5, 0.5, 0.9)               # 0.9 m: too tall
    branch = patch(1, 2, 1.0, 1.5, 1.9)               # 1.9 m above ground: passed under
    pts = np.concatenate([ground, grass, hedge, branch])
    labels = np.concatenate([np.full(len(ground), SMOOTH), np.full(len(grass), VEG),
                             np.full(len(hedge), VEG), np.full(len(branch), OBSTACLE)])
    levels = fuse(pts, labels)
    assert level_at(levels, 1.5, 0.0) == 2            # vegetation CAUTION (class)
    assert level_at(levels, 3.5, 0.0) == 3            # too tall: BLOCKED
    assert level_at(levels, 1.5, 1.25) == 1           # the branch is ignored
    rock = patch(5, 5.3, 1, 1.3, lambda x, y: 0.1 + 0 * x)
    rock = np.concatenate([rock, rock + np.array([0, 0, 0.3])])  # 0.4 m, no label at all
    pts = np.concatenate([ground, rock])
    unlabelled = np.full(len(pts), 255)
    levels = fuse(pts, unlabelled)
    assert level_at(levels, 1.0, 0.0) == 2            # geometry only: CAUTION by default
    assert level_at(levels, 5.15, 1.15) == 3          # geometry alone: BLOCKED
    levels = fuse(pts, unlabelled, TerrainRules(factor=1, geometry_only_level=0))
    assert level_at(levels, 1.0, 0.0) == 0 and level_at(levels, 5.15, 1.15) == 3


@pytest.mark.parametrize("grade, blocked", [(0.2, False), (0.35, False), (0.6, True)])
def test_slopes_beyond_the_limit_are_blocked(grade, blocked):
    ramp = patch(0, 6, -2, 2, lambda x, y: np.maximum(x - 2, 0) * grade)
    levels = fuse(ramp, np.full(len(ramp), SMOOTH), TerrainRules(factor=2))
    assert (level_at(levels, 4.0, 0.0) == 3) == blocked      # 25 deg = grade 0.47
    assert level_at(levels, 1.0, 0.0) == 1


def render(scene):
    labels, depth = scene.render(Camera(INTR, POSE))
    mm = np.nan_to_num(depth * 1000, nan=0).astype(np.uint16)
    msg = DepthMessage(0.0, "camera_optical_frame", "16UC1", depth.shape[0], depth.shape[1],
                       2 * depth.shape[1], mm.tobytes())
    return labels, depth, msg


def lidar_message(scene, stamp=0.0, frame="lidar_link"):
    pts, cls = scene.lidar((LIDAR.x, LIDAR.y, LIDAR.z), rings=48, columns=1024)
    fields, step, data = pack_cloud([("x", pts[:, 0]), ("y", pts[:, 1]), ("z", pts[:, 2])])
    return CloudMessage(stamp, frame, tuple(fields), len(pts), 1, step, step * len(pts), data,
                        False, "lidar/points"), pts, cls


def test_painting_gives_visible_points_their_pixel_and_hidden_points_no_label():
    scene = ReliefScene(boxes=[Box(3.0, 3.4, -1.0, 1.0, 0.6, cls=OBSTACLE)])
    labels, depth, _ = render(scene)
    _, pts, cls = lidar_message(scene)
    pts = pts + np.float32([LIDAR.x, LIDAR.y, LIDAR.z])        # lidar frame -> base_link
    painter = Painter(Camera(INTR, POSE))
    for depth_image in (depth.ravel(), None):                  # depth test, then z-buffer
        painted = painter.paint(pts[:, 0], pts[:, 1], pts[:, 2], labels.ravel(), depth_image,
                                255)
        shown = painted.labels != 255
        # the LiDAR (0.3 m higher, 0.3 m back) sees the ground 6.3-8.05 m ahead behind the
        # box, the camera does not
        behind = (pts[:, 0] > 6.4) & (np.abs(pts[:, 1]) < 0.8) & (pts[:, 0] < 7.9)
        assert behind.sum() > 50
        assert not (painted.labels[behind] == OBSTACLE).any()
        assert (painted.labels[shown] == cls[shown]).mean() > 0.97
        on_box = (cls == OBSTACLE) & (pts[:, 0] < 3.05)
        assert (painted.labels[on_box] == OBSTACLE).mean() > 0.9
    assert painted.hidden >= behind.sum() * 0.9


def scene_costmap(**rules):
    frames = FrameTable("base_link", {"camera_optical_frame": optical_rigid(POSE),
                                      "lidar_link": Rigid.from_pose(LIDAR)})
    return DepthCostmap(DepthSettings(TerrainRules(**rules)), GEOM, TABLE, CategoryValues(),
                        IDS, CLASS_NAMES, frames)


HILL = ReliefScene(boxes=[Box(6.0, 6.4, -2.0, -1.2, 1.5 + 0.4, cls=OBSTACLE),
                          Box(4.0, 4.3, 1.0, 1.6, 1.0 + 0.1, cls=OBSTACLE)],
                   ramp_start=3.0, ramp_grade=0.1, patches=[(5.0, 0.5, 0.6, WATER)])


def test_depth_places_obstacles_on_a_hill_where_flat_ground_misplaces_them():
    labels, _, msg = render(HILL)
    result = scene_costmap().process(labels, Camera(INTR, POSE), None, Paired(depth=msg), 0.0,
                                     pytest.fail)
    xs, ys = GEOM.cell_centres()
    truth = TABLE.levels[HILL.truth_levels(xs, ys)]
    ours = result.levels
    known = ours > 0
    agreement = (ours[known] == truth[known]).mean()
    print(f"\nhill: depth mode agreement {agreement:.4f} over {known.sum()} cells")
    assert agreement > 0.97                         # measured 0.99
    # no unsafe cell (truth BLOCKED/HAZARD, ours FREE) one cell inside a lethal region (at
    # its border a cell may hold no pixel of it: the pixel footprint is 0.25 m at 5.5 m)
    core = truth >= 3
    core[1:-1, 1:-1] = np.all([np.roll(np.roll(truth >= 3, dr, 0), dc, 1)[1:-1, 1:-1]
                               for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
    assert not (core & (ours == 1)).any()
    lethal = ours == 3
    near = np.zeros_like(lethal)
    for box in HILL.boxes:
        near |= (xs >= box.x0 - 0.11) & (xs <= box.x1 + 0.11) & (ys >= box.y0 - 0.11) & (
            ys <= box.y1 + 0.11)
    assert lethal.sum() > 10 and near[lethal].all()
    flat = CostmapPipeline(validate({"resolution": 0.1, "camera_x": 0.3, "camera_z": 1.0,
                                     "camera_pitch": 0.26}))
    flat.set_model_info(ModelInfo(IDS, CLASS_NAMES))
    flat.set_camera(INTR)
    flat_levels = flat.process(labels, 0.0, 0.0).values
    flat_lethal = flat_levels == 100
    # the far obstacle on the hill lands about 0.5-1 m too far on flat ground
    assert flat_lethal.sum() > 5 and not near[flat_lethal].all()


def test_lidar_behind_the_robot_gives_geometry_only_and_pipeline_falls_back_to_flat():
    scene = ReliefScene(boxes=[Box(-1.8, -1.4, 2.0, 2.6, 0.5, cls=OBSTACLE)])
    labels, _, msg = render(scene)
    cloud, _, _ = lidar_message(scene)
    result = scene_costmap().process(labels, Camera(INTR, POSE), None,
                                     Paired(depth=msg, clouds=[cloud]), 0.0, pytest.fail)
    assert result.sources == ("depth", "lidar/points")
    assert level_at(result.levels, -1.6, 2.3) == 3       # behind: seen by the LiDAR alone
    xs, ys = GEOM.cell_centres()
    behind = (xs < 0.3) & ~((np.abs(xs + 1.6) < 0.5) & (np.abs(ys - 2.3) < 0.5))
    seen = result.levels[behind]
    assert (seen == 2).sum() > 300 and not (seen == 1).any()  # unlabelled: CAUTION
    lethal = result.points(3)
    assert len(lethal.level) > 0 and (lethal.level >= 3).all()
    assert (lethal.confidence[lethal.labels == 255] == 0).all()
    params = {"resolution": 0.1, "camera_x": 0.3, "camera_z": 1.0, "camera_pitch": 0.26,
              "depth_topic": "depth", "cloud_topics": "lidar/points", "lidar_z": LIDAR.z,
              "terrain_resolution": 0.2}
    problems = []
    pipeline = CostmapPipeline(validate(params), on_sensor=lambda r, m: problems.append(r))
    pipeline.set_model_info(ModelInfo(IDS, CLASS_NAMES))
    pipeline.set_camera(INTR)
    pipeline.depth.add_depth(msg)
    pipeline.depth.add_cloud(cloud)
    frame = pipeline.process(labels, 0.0, 0.0)
    assert frame.mode == "depth" and not problems
    np.testing.assert_array_equal(frame.values, result.values)
    stale = pipeline.process(labels, 2.0, 2.0)          # inputs 2 s old: flat ground
    assert stale.mode == "flat" and stale.depth is None
    assert problems == ["depth_missing", "cloud_missing"]
    bad = DepthMessage(3.0, "camera_optical_frame", "32FC1", 272, 320, 1280,
                       np.full((272, 320), -1.0, np.float32).tobytes())
    pipeline.depth.add_depth(bad)
    assert pipeline.process(labels, 3.0, 3.0).mode == "flat"
    assert problems[-3:] == ["cloud_missing", "depth_negative", "depth_empty"]
