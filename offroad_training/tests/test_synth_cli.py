"""``offroad data synth``: a readable unified dataset with camera and top-down maps; bag."""

import json

import cv2
import numpy as np
import pytest

from offroad_training.cli import main
from offroad_training.data.unified import UnifiedDataset
from offroad_training.synth import render_frame
from offroad_training.synth.bag import bag_topics, camera_from_dict
from offroad_training.synth.commands import frame_recipe
from offroad_training.synth.render import TopDownSpec


def test_synth_writes_a_unified_dataset_and_resumes(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["data", "synth", "--out", str(out), "--frames", "5", "--size", "96x80", "--seed",
            "2", "--val-fraction", "0.4", "--no-progress", "--workers", "1"]
    assert main(args) == 0
    train, val = UnifiedDataset(out, "train"), UnifiedDataset(out, "val")
    assert len(train.ids) == 3 and len(val.ids) == 2
    assert not set(train.ids) & set(val.ids)
    rgb, labels = val.load(val.ids[0])
    assert rgb.shape == (80, 96, 3) and labels.shape == (80, 96)
    camera = camera_from_dict(json.loads((out / "camera.json").read_text()))
    assert (camera.intrinsics.width, camera.intrinsics.height) == (96, 80)
    top_meta = json.loads((out / "topdown.json").read_text())
    spec = TopDownSpec(top_meta["resolution"], top_meta["origin_x"], top_meta["origin_y"])
    item = val.ids[0]
    _, world, pose = frame_recipe(2, int(item.rsplit("_", 1)[1]))
    assert top_meta["frames"][item]["robot_pose_xyyaw"] == list(pose)
    frame = render_frame(world, camera, seed=int(item.rsplit("_", 1)[1]), robot_pose=pose,
                         topdown=spec)
    assert np.array_equal(labels, frame.labels)  # PNG labels are exact
    top = cv2.imread(str(out / "topdown" / f"{item}.png"), cv2.IMREAD_UNCHANGED)
    assert top.dtype == np.uint8 and np.array_equal(top, frame.topdown.classes)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["counts"] == {"train": 3, "val": 2}
    # Re-run: nothing to render; a changed option is refused with exit code 2.
    mtime = (out / "images" / f"{item}.jpg").stat().st_mtime_ns
    assert main(args) == 0
    assert "wrote 0 new frames" in capsys.readouterr().out
    assert (out / "images" / f"{item}.jpg").stat().st_mtime_ns == mtime
    assert main([*args[:-2], "--seed", "3"]) == 2
    assert "other options" in capsys.readouterr().err


def test_synth_parallel_equals_serial_and_bag(tmp_path):
    base = ["data", "synth", "--frames", "4", "--size", "64x48", "--seed", "9", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--workers", "2", "--bag",
                 str(tmp_path / "bag"), "--storage", "mcap", "--rate", "5"]) == 0
    for sub in ("images", "labels", "topdown"):
        for f in sorted((tmp_path / "a" / sub).iterdir()):
            assert f.read_bytes() == (tmp_path / "b" / sub / f.name).read_bytes(), f
    from rosbags.rosbag2 import Reader

    with Reader(tmp_path / "bag") as reader:
        # Depth and LiDAR are on by default: every topic per frame, /tf_static once.
        assert reader.message_count == 4 * (len(bag_topics(True, True)) - 1) + 1
        assert reader.duration == pytest.approx(3 * 0.2e9 + 1, abs=2)
    world = json.loads((tmp_path / "bag" / "world.json").read_text())
    assert (world["world_seed"], world["relief"]) == (9, "flat")
    assert json.loads((tmp_path / "bag" / "lidar.json").read_text())["rings"] == 32


def test_synth_bag_options_relief_depth_lidar(tmp_path):
    from rosbags.rosbag2 import Reader

    base = ["data", "synth", "--frames", "2", "--size", "48x40", "--seed", "4", "--no-progress",
            "--relief", "gentle"]
    assert main([*base, "--bag", str(tmp_path / "plain"), "--no-depth", "--no-lidar"]) == 0
    with Reader(tmp_path / "plain") as reader:
        assert {c.topic for c in reader.connections} == {
            t for t, _ in bag_topics(False, False).values()}
    assert main([*base, "--bag", str(tmp_path / "full"), "--depth-encoding", "32FC1",
                 "--lidar-rings", "4", "--lidar-resolution", "5", "--lidar-height", "0.9"]) == 0
    lidar = json.loads((tmp_path / "full" / "lidar.json").read_text())
    assert (lidar["rings"], lidar["columns"], lidar["z"]) == (4, 72, 0.9)
    world = json.loads((tmp_path / "full" / "world.json").read_text())
    assert world["relief"] == "gentle" and world["relief_amounts"]["hills"] > 0
    with Reader(tmp_path / "full") as reader:
        assert {c.topic for c in reader.connections} == {
            t for t, _ in bag_topics(True, True).values()}


@pytest.mark.parametrize("bad", [["--relief", "alpine"], ["--lidar-rings", "0"],
                                 ["--lidar-resolution", "0"]])
def test_bad_bag_options_exit_2(tmp_path, bad, capsys):
    args = ["data", "synth", "--bag", str(tmp_path / "b"), "--frames", "2", "--no-progress"]
    assert main(args + bad) == 2
    assert "offroad data synth:" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("bad", [["--frames", "0"], ["--size", "native"], ["--size", "axb"],
                                 ["--val-fraction", "1.5"]])
def test_bad_arguments_exit_2(tmp_path, bad, capsys):
    args = ["data", "synth", "--out", str(tmp_path / "x"), "--frames", "2", "--no-progress"]
    assert main(args + bad) == 2
    assert "offroad data synth:" in capsys.readouterr().err
