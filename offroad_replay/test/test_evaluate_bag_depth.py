"""`offroad evaluate-bag` scores the depth mode beside the flat-ground one on a synthetic relief
bag (depth image at the camera's resolution, LiDAR cloud, /tf_static), with a tiny contract
model; a bag without depth topics says so and scores the flat mode only."""

import csv
import json

import pytest

from offroad_core.testing import build_tiny_model
from offroad_replay.evaluate_bag import BagEvaluator, EvalOptions
from offroad_training.synth import LidarSpec, TopDownSpec, default_camera
from offroad_training.synth.commands import write_sequence_bag

FRAMES = 4
PARAMS = {"resolution": 0.1, "camera_x": 0.3, "camera_z": 1.0, "camera_pitch": 0.2094}


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    model = build_tiny_model(root / "tiny.onnx", height=64, width=80)
    camera = default_camera(160, 128)
    spec = TopDownSpec(0.1, -2.0, -5.0, 10.0, 10.0)
    for name, depth, lidar in (("relief", True, LidarSpec(rings=16)), ("plain", False, None)):
        write_sequence_bag(root / name, FRAMES, camera, seed=5, rate_hz=5.0, speed=1.0,
                           storage="sqlite3", spec=spec, progress=False, relief="gentle",
                           depth=depth, lidar=lidar)
    return root, model


def evaluate(root, model, name):
    out = root / f"eval_{name}"
    report = BagEvaluator(EvalOptions(model=str(model), out_dir=str(out),
                                      costmap_params=PARAMS)).run(root / name)
    return report, out


def test_both_modes_are_scored_on_a_bag_with_depth_and_lidar(bags):
    root, model = bags
    report, out = evaluate(root, model, "relief")
    depth, flat = report["costmap_depth"], report["costmap"]
    assert depth["topics"] == ["/camera/depth/image_raw", "/lidar/points"]
    assert depth["grids_by_mode"] == {"depth": FRAMES}
    assert depth["sensor_problems"] == {}
    assert depth["compared_cells"] > 500 and flat["compared_cells"] > 500
    assert depth["costmap_ms"]["n"] == FRAMES
    # in the camera's view: only cells the flat grid observed, a subset of the whole grid's
    view = depth["in_camera_view"]
    assert 0 < view["compared_cells"] <= min(depth["compared_cells"], flat["compared_cells"])
    assert view["unsafe_cells"] <= depth["unsafe_cells"]
    assert any("depth mode: /camera/depth/image_raw, /lidar/points" in n for n in report["notes"])
    assert not any("differ from the bag's /tf_static" in n for n in report["notes"])
    rows = list(csv.DictReader((out / "frames.csv").open()))
    assert [r["costmap_mode_depth"] for r in rows] == ["depth"] * FRAMES
    assert all(r["costmap_agreement_depth"] for r in rows)
    assert json.loads((out / "report.json").read_text())["costmap_depth"] == depth


def test_a_bag_without_depth_scores_the_flat_mode_only(bags):
    root, model = bags
    report, _ = evaluate(root, model, "plain")
    assert report["costmap_depth"] is None and report["costmap"]["compared_cells"] > 0
    assert any("depth mode not scored" in n for n in report["notes"])
