"""Pure modules of offroad_costmap: categories, parameters, fusion, messages."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image

from offroad_core.costmap.categories import (
    LEVELS,
    CategoryError,
    CategoryValues,
    LabelTable,
    parse_overrides,
)
from offroad_core.costmap.fusion import EvidenceGrid, Pose2D, PoseHistory, yaw_from_quaternion
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.params import PARAMETERS, ConfigError, validate
from offroad_core.ontology import CATEGORY_OF, CLASS_NAMES, Category
from offroad_core.stamps import stamp_seconds
from offroad_costmap.conversions import (
    InputError,
    debug_image,
    intrinsics_from_camera_info,
    labels_from_image,
    obstacle_cloud,
    occupancy_grid,
)

# ------------------------------------------------------------------ categories


def test_label_table_maps_by_name_not_by_index():
    """A model with another class order and an extra class: values follow the names."""
    names = ["sky", "water", "smooth_ground", "obstacle", "mystery"]
    ids = [10, 11, 12, 13, 14]
    table = LabelTable.build(ids, names, dict(CATEGORY_OF))
    assert table.levels[10] == 0                                  # sky: no evidence
    assert table.levels[11] == LEVELS[Category.HAZARD]
    assert table.levels[12] == LEVELS[Category.FREE]
    assert table.levels[13] == LEVELS[Category.BLOCKED] and table.vertical[13]
    assert table.levels[14] == 0 and not table.vertical[14]       # unknown name -> unknown
    assert table.unmapped == ("mystery",)
    assert table.levels[[0, 1, 200, 255]].tolist() == [0, 0, 0, 0]  # values naming no class


def test_overrides_and_values():
    categories = {**dict(CATEGORY_OF),
                  **parse_overrides(["vegetation=free", " rough_ground = BLOCKED "])}
    table = LabelTable.build(range(7), CLASS_NAMES, categories)
    values = CategoryValues(caution=70).level_lut()
    assert values[table.levels[2]] == 0       # vegetation -> FREE
    assert values[table.levels[1]] == 100     # rough_ground -> BLOCKED
    assert values[table.levels[0]] == 0
    assert values[LEVELS[Category.CAUTION]] == 70
    assert values[0] == -1


@pytest.mark.parametrize("entry", ["vegetation", "=FREE", "vegetation=GREEN"])
def test_bad_override_is_refused(entry):
    with pytest.raises(CategoryError, match="category override"):
        parse_overrides([entry])


def test_bad_label_tables_are_refused():
    with pytest.raises(CategoryError, match="2 class ids but 1 names"):
        LabelTable.build([0, 1], ["sky"], dict(CATEGORY_OF))
    with pytest.raises(CategoryError, match=r"outside 0\.\.255"):
        LabelTable.build([300], ["sky"], dict(CATEGORY_OF))
    with pytest.raises(CategoryError, match="caution value 120"):
        CategoryValues(caution=120)


# ------------------------------------------------------------------ parameters


def test_defaults_validate():
    config = validate({})
    assert config.geometry == GridGeometry(0.05, 200, 200, -2.0, -5.0)
    assert config.category_values == CategoryValues()
    assert not config.fusion and config.stale_timeout == 0.5
    assert config.vertical_classes == ("obstacle", "dynamic")
    assert validate({"use_odom": True}).fusion
    assert not validate({"use_odom": True, "fusion": "off"}).fusion


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        validate({"resolution": 5.0, "occlusion": "cone", "caution_value": "high",
                  "colour": 1})
    text = str(info.value)
    for part in ("resolution: 5.0 is outside", "occlusion: 'cone' is not one of",
                 "caution_value: expected int", "unknown parameter(s) colour"):
        assert part in text


@pytest.mark.parametrize(("values", "message"), [
    ({"output_frame": "odom"}, "output_frame odom needs use_odom"),
    ({"fusion": "on"}, "fusion on needs use_odom"),
    ({"category_overrides": "water=WET"}, "category must be one of"),
])
def test_inconsistent_parameters_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        validate(values)


def test_parameter_table_is_complete():
    names = [s.name for s in PARAMETERS]
    assert len(names) == len(set(names))
    for spec in PARAMETERS:
        assert spec.description
        if spec.low is not None:
            assert spec.low <= spec.default <= spec.high, spec.name


# ------------------------------------------------------------------ fusion


def test_pose_history_interpolates_at_the_stamp():
    history = PoseHistory(horizon=2.0, max_extrapolation=0.1)
    assert history.at(1.0) is None
    history.add(10.0, Pose2D(0.0, 0.0, math.pi - 0.1))
    history.add(10.2, Pose2D(1.0, 2.0, -math.pi + 0.1))  # crosses +-pi
    mid = history.at(10.05)
    assert mid.x == pytest.approx(0.25) and mid.y == pytest.approx(0.5)
    assert math.remainder(mid.yaw - (math.pi - 0.05), 2 * math.pi) == pytest.approx(0.0)
    assert history.at(10.25) == Pose2D(1.0, 2.0, -math.pi + 0.1)  # small extrapolation: newest
    assert history.at(10.5) is None                             # too far past the newest
    assert history.at(9.9) is None                              # before the history
    history.add(10.1, Pose2D(9.0, 9.0, 0.0))                    # out of order: dropped
    assert history.at(10.1).x == pytest.approx(0.5)
    history.add(13.0, Pose2D(5.0, 0.0, 0.0))                    # old poses leave the horizon
    assert len(history) == 1 and history.at(10.1) is None


def test_yaw_from_quaternion():
    assert yaw_from_quaternion(0, 0, math.sin(0.4), math.cos(0.4)) == pytest.approx(0.8)


def test_evidence_moves_with_the_robot_and_decays_to_unknown():
    frame = GridGeometry(0.1, 40, 40, 0.0, -2.0)       # 4 m ahead, 4 m wide
    values = np.full((40, 40), -1, np.int8)
    values[20, 20] = 100                               # obstacle at base (2.05, 0.05)
    values[15, 30] = 0                                 # free at (3.05, -0.45)
    store = EvidenceGrid(frame, decay_time=1.0)
    store.insert(values, Pose2D(0.0, 0.0, 0.0), stamp=0.0)
    store.insert(np.full((40, 40), -1, np.int8), Pose2D(1.0, 0.0, 0.0), stamp=0.5)
    # 1 m further on the obstacle is 1 m ahead; an unobserved frame keeps the older evidence.
    now = store.in_base(0.5, Pose2D(1.0, 0.0, 0.0))
    assert now[20, 10] == 100 and (now == 100).sum() == 1
    assert now[15, 20] == 0 and (now == 0).sum() == 1
    rotated = store.in_base(0.5, Pose2D(1.0, 0.0, math.pi / 2))  # turned left: it is on the right
    ys, xs = np.nonzero(rotated == 100)
    assert frame.origin_y + (ys[0] + 0.5) * 0.1 == pytest.approx(-1.05, abs=0.11)
    assert frame.origin_x + (xs[0] + 0.5) * 0.1 == pytest.approx(0.0, abs=0.11)
    assert (store.in_base(1.0, Pose2D(1.0, 0.0, 0.0)) == 100).sum() == 1
    assert (store.in_base(1.01, Pose2D(1.0, 0.0, 0.0)) == -1).all()   # decayed


def test_newer_observation_replaces_older():
    frame = GridGeometry(0.1, 10, 10, 0.0, -0.5)
    store = EvidenceGrid(frame, decay_time=5.0)
    store.insert(np.full((10, 10), 100, np.int8), Pose2D(0, 0, 0), 0.0)
    store.insert(np.full((10, 10), 0, np.int8), Pose2D(0, 0, 0), 0.1)
    assert (store.in_base(0.1, Pose2D(0, 0, 0)) == 0).all()
    store.clear()
    assert (store.in_base(0.1, Pose2D(0, 0, 0)) == -1).all()


def test_odom_window_is_axis_aligned_and_snapped():
    frame = GridGeometry(0.1, 40, 20, -1.0, -1.0)
    values = np.zeros((20, 40), np.int8)
    store = EvidenceGrid(frame, decay_time=1.0)
    pose = Pose2D(10.03, -4.96, 0.0)
    store.insert(values, pose, 0.0)
    out, window = store.in_odom(0.0, pose)
    assert out.shape == (20, 40)
    assert window.origin_x == pytest.approx(9.0) and window.origin_y == pytest.approx(-6.0)
    assert (out[1:-1, 1:-1] == 0).all()


# ------------------------------------------------------------------ messages


def _image(encoding="mono8", width=4, height=3, step=4, data=None) -> Image:
    msg = Image(encoding=encoding, width=width, height=height, step=step)
    msg.data = bytes(range(step * height)) if data is None else data
    return msg


def test_labels_from_image_handles_row_padding():
    plain = labels_from_image(_image())
    assert plain.shape == (3, 4) and plain[2, 3] == 11
    padded = labels_from_image(_image(step=6))
    assert padded.tolist() == [[0, 1, 2, 3], [6, 7, 8, 9], [12, 13, 14, 15]]


@pytest.mark.parametrize(("msg", "reason"), [
    (_image(encoding="rgb8"), "bad_encoding"),
    (_image(step=2), "bad_step"),
    (_image(width=0), "zero_size"),
    (_image(data=b"\x00" * 5), "truncated_data"),
])
def test_bad_label_images_are_refused_with_a_reason(msg, reason):
    with pytest.raises(InputError) as info:
        labels_from_image(msg)
    assert info.value.reason == reason


def test_camera_info_conversion():
    k = [300.0, 0, 160, 0, 310.0, 120, 0, 0, 1]
    intr = intrinsics_from_camera_info(CameraInfo(width=320, height=240, k=k,
                                                  distortion_model="plumb_bob",
                                                  d=[0.1, 0.0, 0.0, 0.0, 0.0]))
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (300.0, 310.0, 160.0, 120.0)
    with pytest.raises(InputError) as info:
        intrinsics_from_camera_info(CameraInfo(width=320, height=240, k=[0.0] * 9))
    assert info.value.reason == "bad_camera_info"


def test_grid_cloud_and_debug_image_messages():
    geometry = GridGeometry(0.5, 3, 2, -1.0, 2.0)
    values = np.array([[-1, 0, 50], [100, 100, 0]], np.int8)
    stamp = Time(sec=12, nanosec=345)
    grid = occupancy_grid(values, geometry, "odom", stamp)
    assert grid.header.frame_id == "odom" and grid.header.stamp == stamp
    assert (grid.info.width, grid.info.height, grid.info.resolution) == (3, 2, 0.5)
    assert (grid.info.origin.position.x, grid.info.origin.position.y) == (-1.0, 2.0)
    assert list(grid.data) == [-1, 0, 50, 100, 100, 0]
    cloud = obstacle_cloud(values, geometry, 100, 0.2, "odom", stamp)
    points = np.frombuffer(bytes(cloud.data), np.float32).reshape(-1, 3)
    assert cloud.width == 2 and cloud.row_step == 24 and cloud.header.stamp == stamp
    np.testing.assert_allclose(points, [[-0.75, 2.75, 0.2], [-0.25, 2.75, 0.2]])
    image = debug_image(values, "base_link", stamp)
    rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)
    assert (image.width, image.height, image.encoding) == (2, 3, "rgb8")
    # forward (+x, columns) up, left (+y, rows) left: grid (row 0, col 0) is bottom right
    assert tuple(rgb[2, 1]) == (90, 90, 90)
    assert tuple(rgb[0, 1]) == (255, 255, 0) and tuple(rgb[2, 0]) == (255, 0, 0)
    assert stamp_seconds(stamp) == pytest.approx(12.000000345)


# ------------------------------------------------------------------ shipped configuration

CONFIG = Path(__file__).parents[1] / "config"
BRINGUP_CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"


def test_params_file_lists_every_parameter_with_its_default():
    params = yaml.safe_load((CONFIG / "costmap.yaml").read_text())
    values = params["offroad_costmap"]["ros__parameters"]
    assert set(values) == {s.name for s in PARAMETERS}
    for spec in PARAMETERS:
        assert values[spec.name] == spec.default, spec.name
    validate(values)


def test_nav2_example_reads_our_grid_correctly():
    costmap = yaml.safe_load((BRINGUP_CONFIG / "nav2_local_costmap.yaml").read_text())
    params = costmap["local_costmap"]["local_costmap"]["ros__parameters"]
    defaults = {s.name: s.default for s in PARAMETERS}
    assert params["track_unknown_space"] is True and params["trinary_costmap"] is False
    assert params["unknown_cost_value"] == -1 and params["lethal_cost_threshold"] == 100
    assert params["resolution"] == defaults["resolution"]
    layer = params[params["plugins"][0]]
    assert layer["plugin"] == "nav2_costmap_2d::StaticLayer"
    assert layer["map_topic"] == defaults["grid_topic"]
    assert layer["map_subscribe_transient_local"] is True
    source = params["offroad_obstacles"][params["offroad_obstacles"]["observation_sources"]]
    assert source["topic"] == defaults["obstacles_topic"]
    assert source["data_type"] == "PointCloud2"
    assert (source["min_obstacle_height"] < defaults["obstacle_point_height"]
            < source["max_obstacle_height"])
