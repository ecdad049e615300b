"""Issue 14, item 3: the published window holds the camera's view at any heading.

The core pipeline with the shipped robot.yaml (output_frame odom, fusion) and odometry at yaw
0, 90, 180 and -90 deg: the grid it publishes must keep every cell the frame observes, as many
as the per-frame base_link grid, reach as far ahead, and fit in the Nav2 example's window.
(The axis-aligned window of the old code kept 21,777 cells at yaw 0, ~8,000 at +-90 and 1,398
at 180 deg.)
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import nav2_harness as h

from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, ModelInfo
from offroad_core.ontology import CLASS_NAMES, CLASSES

X, Y = 12.3, -4.7          # the robot somewhere in odom, not at a cell corner


def _frame(params: dict, yaw_deg: float):
    pipeline = CostmapPipeline(validate(params))
    pipeline.set_model_info(ModelInfo(tuple(range(len(CLASS_NAMES))), CLASS_NAMES,
                                      tuple(c.category.value for c in CLASSES)))
    pipeline.set_camera(h.INTRINSICS)
    for k in range(50):
        pipeline.add_odometry(k * 0.02, X, Y, math.radians(yaw_deg))
    return pipeline.process(h.ground_labels(h.robot_config()), 0.5, 0.5)


def _counts(values: np.ndarray) -> dict[int, int]:
    return {v: int((values == v).sum()) for v in (0, 50, 100)}


@pytest.fixture(scope="module")
def per_frame():
    """The frame's own base_link grid (no odometry): what one frame observes."""
    params = {**h.robot_params(), "use_odom": False, "output_frame": "base_link",
              "fusion": "off"}
    return _frame(params, 0.0).values


@pytest.mark.parametrize("yaw", [0, 90, 180, -90])
def test_coverage_is_the_same_at_every_heading(yaw, per_frame):
    frame = _frame(h.robot_params(), yaw)
    assert frame.in_odom
    observed = frame.values >= 0
    print(f"\nyaw {yaw:4d}: {observed.sum()} observed cells (per-frame grid "
          f"{(per_frame >= 0).sum()}), {_counts(frame.values)}")
    assert observed.sum() == (per_frame >= 0).sum() > 15000      # measured 18,491 each
    assert _counts(frame.values) == _counts(per_frame)
    # as far ahead as the camera sees, whatever the heading
    xs, ys = frame.geometry.cell_centres()
    heading = (math.cos(math.radians(yaw)), math.sin(math.radians(yaw)))
    ahead = ((xs - X) * heading[0] + (ys - Y) * heading[1])[observed]
    config = h.robot_config()
    assert ahead.max() >= config.camera_x + config.max_range - 0.3   # measured 8.275 m
    # every observed cell is inside the Nav2 example's window centred on the robot
    local = next(n for n in h.nav2_nodes() if n.name == "local_costmap").params
    assert np.abs(xs - X)[observed].max() < local["width"] / 2
    assert np.abs(ys - Y)[observed].max() < local["height"] / 2
