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


@pytest.mark.parametrize("yaw", [0.0, math.pi / 2, math.pi, -math.pi / 2, 0.7])
def test_odom_window_holds_the_whole_frame_at_any_heading(yaw):
    frame = GridGeometry(0.1, 40, 20, -1.0, -1.0)      # corners up to 3.2 m from base_link
    store = EvidenceGrid(frame, decay_time=1.0, window_step=0.5)
    pose = Pose2D(10.03, -4.96, yaw)
    store.insert(np.zeros((20, 40), np.int8), pose, 0.0)
    out, window = store.in_odom(0.0, pose)
    assert (out == 0).sum() == frame.num_cells          # every observed cell, at every heading
    assert window.nx == window.ny == 2 * (math.ceil((math.hypot(3, 1) + 0.5) / 0.1) + 1)
    assert window.origin_x / 0.1 == pytest.approx(round(window.origin_x / 0.1))


def test_odom_window_moves_in_steps():
    frame = GridGeometry(0.1, 40, 20, -1.0, -1.0)
    store = EvidenceGrid(frame, decay_time=1.0, reach=2.0, window_step=0.5)
    first = store.window.at(0.0, 0.0)
    assert first.origin_x == pytest.approx(-first.nx * 0.05)  # centred on the robot
    assert first.nx == 2 * (math.ceil(2.5 / 0.1) + 1)          # reach 2 m + step + a cell
    assert store.window.at(0.44, -0.5) == first                # within the step: no move
    moved = store.window.at(0.61, 0.0)
    assert moved.origin_x == pytest.approx(first.origin_x + 0.6) and moved.nx == first.nx
    # the view (reach) stays inside the window wherever the robot is within the step
    for x, y in [(1.1, 0.5), (0.11, -0.5), (1.1, -0.5)]:
        store.window.at(0.61, 0.0)
        w = store.window.at(x, y)
        assert w.origin_x <= x - 2.0 and x + 2.0 <= w.origin_x + w.nx * 0.1
        assert w.origin_y <= y - 2.0 and y + 2.0 <= w.origin_y + w.ny * 0.1


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


def _nav2_static_layer_cost(value: int, costmap: dict) -> int:
    """Nav2 Jazzy's StaticLayer::interpretValue (nav2_costmap_2d/plugins/static_layer.cpp
    268-284) of one grid value, with the costmap's parameters or Nav2's defaults
    (costmap_2d_ros.cpp 119, 130, 133, 134); values and unknown_cost_value are unsigned char."""
    v, unknown = value & 0xFF, costmap.get("unknown_cost_value", 255) & 0xFF
    lethal = max(min(costmap.get("lethal_cost_threshold", 100), 100), 0)   # :171
    if v == unknown:
        return 255 if costmap.get("track_unknown_space", False) else 0
    if v >= lethal:
        return 254
    if costmap.get("trinary_costmap", True):
        return 0
    return int(v / lethal * 254)                      # double -> unsigned char truncates


@pytest.mark.parametrize("name", ["nav2_local_costmap.yaml", "nav2_global_costmap.yaml"])
def test_nav2_example_reads_our_grid_correctly(name):
    """Every category of robot.yaml becomes what the planner/controller must see."""
    node = yaml.safe_load((BRINGUP_CONFIG / "robot.yaml").read_text())
    ours = validate(node["/**/offroad_costmap"]["ros__parameters"])
    costmap = next(iter(yaml.safe_load((BRINGUP_CONFIG / name).read_text()).values()))
    params = next(iter(costmap.values()))["ros__parameters"]
    layer = params[params["plugins"][0]]
    assert layer["plugin"] == "nav2_costmap_2d::StaticLayer" and not params["use_maximum"]
    cost = {category: _nav2_static_layer_cost(getattr(ours.category_values, category), params)
            for category in ("free", "caution", "blocked", "hazard")}
    assert cost == {"free": 0, "caution": 127, "blocked": 254, "hazard": 254}
    assert _nav2_static_layer_cost(-1, params) == 255       # unknown stays NO_INFORMATION
    # Nav2's defaults would plan through CAUTION and unknown terrain as free
    assert _nav2_static_layer_cost(ours.caution_value, {}) == 0
    assert _nav2_static_layer_cost(-1, {}) == 0
    assert params["resolution"] >= ours.resolution
    assert params["resolution"] / ours.resolution == round(params["resolution"] / ours.resolution)
