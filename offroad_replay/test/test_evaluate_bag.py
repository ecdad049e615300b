"""`offroad evaluate-bag`: a tiny contract model over bags written here in the synthetic bag's
topic layout (Image or CompressedImage, CameraInfo, ground-truth labels and class map).

Scene: every pixel has one colour, so the tiny model (class = f(colour)) predicts one class
``c`` everywhere. That class is made FREE for the costmap, so every observed cell is FREE (0).
Ground truth is then built independently: labels with a known wrong block (expected IoU by
counting pixels) and class maps whose left half (+y) is an obstacle (expected unsafe cells)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from offroad_core.camera import CameraIntrinsics
from offroad_core.costmap import params as costmap_params
from offroad_core.engine import InferenceEngine
from offroad_core.imaging import encode_compressed
from offroad_core.ontology import class_id
from offroad_core.params import load_params_file
from offroad_core.segmentation import params as segmentation_params
from offroad_core.testing import build_tiny_model
from offroad_replay.bag_replay import BagError
from offroad_replay.evaluate_bag import BagEvaluator, EvalOptions
from offroad_replay.node_params import offline_costmap_config, read_sections
from offroad_training import cli

TS = get_typestore(Stores.ROS2_JAZZY)
W, H = 80, 64
T0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000
FRAMES = 6
VERTICAL = ("obstacle", "dynamic")
# grid: 4 m x 4 m at 0.1 m in front of the robot, y from -2 to 2
GRID = {"resolution": 0.1, "size_x": 4.0, "size_y": 4.0, "origin_x": 0.0, "origin_y": -2.0,
        "camera_z": 1.0, "camera_pitch": 0.5, "max_range": 4.0}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """(model path, colour, predicted class id) with a class that is not vertical."""
    model = build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", height=H, width=W)
    engine = InferenceEngine(model, "cpu")
    rng = np.random.default_rng(1)
    for colour in rng.integers(0, 256, size=(200, 3)):
        rgb = np.broadcast_to(colour.astype(np.uint8), (H, W, 3)).copy()
        labels = engine.run(rgb).labels
        cls = int(labels[0, 0])
        if (labels == cls).all() and engine.contract.class_names[cls] not in VERTICAL:
            return model, colour.astype(np.uint8), cls, engine.contract.class_names[cls]
    pytest.fail("no uniform non-vertical colour for the tiny model")


def _header(stamp, frame_id):
    return TS.types["std_msgs/msg/Header"](
        stamp=TS.types["builtin_interfaces/msg/Time"](sec=stamp // 10**9,
                                                      nanosec=stamp % 10**9),
        frame_id=frame_id)


def _camera_info(stamp):
    intr = CameraIntrinsics.from_fov(W, H, 90.0)
    roi = TS.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                       width=0, do_rectify=False)
    return TS.types["sensor_msgs/msg/CameraInfo"](
        header=_header(stamp, "camera_optical_frame"), height=H, width=W,
        distortion_model="plumb_bob", d=np.zeros(5), k=intr.k.ravel(), r=np.eye(3).ravel(),
        p=np.zeros(12), binning_x=0, binning_y=0, roi=roi)


def _class_map(stamp, left_class, right_class):
    """GT grid 6 m x 6 m at 0.1 m, x from -1, y from -3; +y half = left_class."""
    nx = ny = 60
    ys = -3.0 + (np.arange(ny) + 0.5) * 0.1
    data = np.where(ys[:, None] > 0, left_class, right_class).repeat(nx, axis=1).astype(np.int8)
    m = TS.types
    return m["nav_msgs/msg/OccupancyGrid"](
        header=_header(stamp, "base_link"),
        info=m["nav_msgs/msg/MapMetaData"](
            map_load_time=_header(stamp, "").stamp, resolution=0.1, width=nx, height=ny,
            origin=m["geometry_msgs/msg/Pose"](
                position=m["geometry_msgs/msg/Point"](x=-1.0, y=-3.0, z=0.0),
                orientation=m["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))),
        data=data.ravel())


def write_eval_bag(path, colour, *, storage="sqlite3", compressed=False, labels=None,
                   class_map=None, frames=FRAMES):
    """Bag in the synthetic layout; ``labels``/``class_map`` None -> topic absent."""
    m = TS.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    rgb = np.broadcast_to(colour, (H, W, 3)).copy()
    with Writer(path, version=8, storage_plugin=plugin) as w:
        img_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        c_img = w.add_connection("/camera/image_raw", img_type, typestore=TS)
        c_info = w.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo",
                                  typestore=TS)
        c_lab = (w.add_connection("/ground_truth/labels", "sensor_msgs/msg/Image", typestore=TS)
                 if labels is not None else None)
        c_map = (w.add_connection("/ground_truth/class_map", "nav_msgs/msg/OccupancyGrid",
                                  typestore=TS) if class_map is not None else None)
        for i in range(frames):
            stamp = T0 + i * PERIOD
            header = _header(stamp, "camera_optical_frame")
            w.write(c_info, stamp, TS.serialize_cdr(_camera_info(stamp),
                                                    "sensor_msgs/msg/CameraInfo"))
            if compressed:
                msg = m["sensor_msgs/msg/CompressedImage"](
                    header=header, format="png",
                    data=np.frombuffer(encode_compressed(rgb, "png"), dtype=np.uint8))
            else:
                msg = m["sensor_msgs/msg/Image"](header=header, height=H, width=W,
                                                 encoding="rgb8", is_bigendian=0, step=3 * W,
                                                 data=rgb.reshape(-1))
            w.write(c_img, stamp + 10, TS.serialize_cdr(msg, img_type))
            if c_lab is not None:
                lab = m["sensor_msgs/msg/Image"](header=header, height=H, width=W,
                                                 encoding="mono8", is_bigendian=0, step=W,
                                                 data=labels.reshape(-1))
                w.write(c_lab, stamp + 20, TS.serialize_cdr(lab, "sensor_msgs/msg/Image"))
            if c_map is not None:
                w.write(c_map, stamp + 30, TS.serialize_cdr(_class_map(stamp, *class_map),
                                                            "nav_msgs/msg/OccupancyGrid"))
    return path


def _options(model, out, name, **kw):
    params = {**GRID, "category_overrides": f"{name}=FREE"}
    return EvalOptions(model=str(model), out_dir=str(out), costmap_params=params, every=2, **kw)


def test_perfect_ground_truth_scores_one(scene, tmp_path):
    model, colour, cls, name = scene
    labels = np.full((H, W), cls, dtype=np.uint8)
    labels[:4] = 255  # ignored pixels are not scored
    free = class_id("smooth_ground")
    bag = write_eval_bag(tmp_path / "bag", colour, labels=labels, class_map=(free, free))
    out = tmp_path / "out"
    report = BagEvaluator(_options(model, out, name)).run(bag)
    assert report["counters"]["frames"] == FRAMES
    assert report["counters"]["frames_without_labels"] == 0
    seg = report["segmentation"]
    assert seg["miou"] == pytest.approx(1.0)
    assert seg["pixels"] == FRAMES * (H - 4) * W
    cost = report["costmap"]
    assert cost["agreement"] == pytest.approx(1.0)
    assert cost["compared_cells"] > FRAMES * 100
    assert 0 < cost["coverage"] <= 1 and cost["unsafe_cells"] == 0
    for stage in ("decode", "preprocess", "inference", "postprocess", "costmap"):
        assert report["latency_ms"][stage]["n"] == FRAMES
        assert report["latency_ms"][stage]["p50"] >= 0
    assert report["class_distribution"]["mean"][name] == pytest.approx(1.0)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["segmentation"]["miou"] == pytest.approx(1.0)
    rows = (out / "frames.csv").read_text().strip().splitlines()
    assert len(rows) == FRAMES + 1 and f"frac_{name}" in rows[0]
    assert sorted(p.name for p in (out / "overlays").glob("*.png")) == [
        "000000.png", "000002.png", "000004.png"]
    assert len(list((out / "costmaps").glob("*.png"))) == 3
    assert not list(out.rglob(".*.tmp*"))  # atomic writes left no temporaries


def test_known_errors_give_the_expected_scores_mcap_compressed_video(scene, tmp_path):
    model, colour, cls, name = scene
    other = (cls + 1) % 7
    labels = np.full((H, W), cls, dtype=np.uint8)
    labels[:, :20] = other  # a quarter of the pixels are "really" another class
    blocked = class_id("obstacle")
    free = class_id("smooth_ground")
    bag = write_eval_bag(tmp_path / "bag", colour, storage="mcap", compressed=True,
                         labels=labels, class_map=(blocked, free))
    out = tmp_path / "out"
    report = BagEvaluator(_options(model, out, name, video=True)).run(bag)
    seg = report["segmentation"]
    # class cls: TP 60 cols, FP 20 cols, FN 0 -> IoU 0.75; class other: TP 0 -> IoU 0
    assert seg["iou"][name] == pytest.approx(0.75)
    assert seg["miou"] == pytest.approx(0.375)
    assert seg["pixel_accuracy"] == pytest.approx(0.75)
    cost = report["costmap"]
    # every observed cell is FREE: the +y half of the compared cells (ground truth BLOCKED) is
    # wrong and unsafe, the rest agrees
    wrong = cost["compared_cells"] - round(cost["agreement"] * cost["compared_cells"])
    assert wrong == cost["unsafe_cells"] > 0
    assert 0.3 < cost["agreement"] < 0.7
    confusion = np.array(cost["level_confusion_gt_rows"])
    assert confusion[3, 1] == cost["unsafe_cells"] and confusion[:, 2:].sum() == 0
    video = cv2.VideoCapture(str(out / "overlay.mp4"))  # every frame, read back (not its size)
    frames = [f for ok, f in iter(video.read, (False, None)) if ok]
    assert len(frames) == FRAMES and all(f.any() for f in frames)  # not black
    assert not (out / "overlays").exists()


def test_bag_without_ground_truth_reports_distribution_only(scene, tmp_path):
    model, colour, _cls, name = scene
    bag = write_eval_bag(tmp_path / "bag", colour)
    report = BagEvaluator(_options(model, tmp_path / "out", name)).run(bag)
    assert report["segmentation"] is None and report["costmap"] is None
    assert report["counters"]["frames"] == FRAMES


def test_params_files_are_read_like_the_nodes(scene, tmp_path):
    model = scene[0]
    path = tmp_path / "p.yaml"
    path.write_text("offroad_costmap:\n  ros__parameters:\n    resolution: 0.1\n")
    values, notes = read_sections(path)  # no segmentation section: that node's defaults
    assert values == {"offroad_segmentation": {}, "offroad_costmap": {"resolution": 0.1}}
    assert notes == [f"{path} has no offroad_segmentation section: that node's defaults"]
    root = Path(__file__).resolve().parents[2]
    shipped_files = [*root.glob("launch/config/r*.yaml"),  # robot.yaml, replay.yaml
                     root / "offroad_costmap/config/costmap.yaml",
                     root / "offroad_seg_node/config/segmentation.yaml"]
    for shipped in shipped_files:
        values, _ = read_sections(shipped)
        assert any(values.values()), shipped
        # the evaluation accepts every shipped params file, through each node's validator
        segmentation_params.validate({**values["offroad_segmentation"],
                                      "model_path": str(model)})
        offline_costmap_config(values["offroad_costmap"])


def test_errors_are_clear(scene, tmp_path):
    model, colour, _cls, name = scene
    with pytest.raises(BagError, match="bag not found"):
        BagEvaluator(_options(model, tmp_path / "o", name)).run(tmp_path / "missing")
    bag = write_eval_bag(tmp_path / "bag", colour)
    opts = _options(model, tmp_path / "o", name)
    opts.topics.image = "/nope"
    with pytest.raises(BagError, match="no image topic /nope"):
        BagEvaluator(opts).run(bag)


def _files(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


def test_command_line(scene, tmp_path):
    model, colour, cls, name = scene
    labels = np.full((H, W), cls, dtype=np.uint8)
    bag = write_eval_bag(tmp_path / "bag", colour, labels=labels)
    params = tmp_path / "costmap.yaml"
    params.write_text("offroad_costmap:\n  ros__parameters:\n"
                      + "".join(f"    {k}: {v}\n" for k, v in GRID.items()))
    cmd = [sys.executable, "-m", "offroad_training.cli", "evaluate-bag", str(bag), "--model",
           str(model), "--out", str(tmp_path / "out"), "--params", str(params),
           "--set", f"category_overrides={name}=FREE"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mIoU 100.00" in done.stdout
    assert f"report: {tmp_path / 'out' / 'report.json'}" in done.stdout
    # bad input: exit 2, one line on stderr, nothing written
    bad = subprocess.run([*cmd[:4], str(tmp_path / "nothing"), *cmd[5:8],
                          str(tmp_path / "bad_out"), *cmd[9:]],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"offroad evaluate-bag: bag not found: {tmp_path / 'nothing'}"]
    assert not (tmp_path / "bad_out").exists()


def _bad_inputs(tmp_path, model, colour):
    """(name, argument changes, expected text) of every kind of bad input."""
    bag = write_eval_bag(tmp_path / "bag", colour, labels=np.zeros((H, W), np.uint8))
    garbage = tmp_path / "garbage.db3"
    garbage.write_bytes(b"garbage" * 100)
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("not a model")
    unreadable = tmp_path / "bad.yaml"
    unreadable.write_text("offroad_costmap: [unclosed\n")
    no_section = tmp_path / "other.yaml"
    no_section.write_text("some_node:\n  ros__parameters:\n    a: 1\n")
    shipped = Path(__file__).resolve().parents[2] / "launch/config/replay.yaml"
    return [
        ("missing bag", {"bag": str(tmp_path / "none")}, "bag not found"),
        ("corrupt bag", {"bag": str(garbage)}, "cannot read bag"),
        ("missing model", {"--model": str(tmp_path / "none.onnx")}, "file not found"),
        ("bad model", {"--model": str(not_onnx)}, "not a readable ONNX file"),
        ("bad value", {"--set": "offroad_costmap.resolution=-1"}, "resolution: -1.0 is outside"),
        ("unknown name", {"--set": "offroad_costmap.nope=1"}, "unknown parameter(s) nope"),
        ("ambiguous name", {"--set": "diagnostics_period=2"}, "both nodes have"),
        ("bad --set", {"--set": "resolution"}, "expected [node.]name=value"),
        ("unreadable params", {"--params": str(unreadable)}, "cannot read params file"),
        ("no section", {"--params": str(no_section)}, "no 'offroad_segmentation"),
        # the shipped 0.6 gate needs a confidence output, which the tiny model lacks
        ("gate without confidence", {"--params": str(shipped)},
         "confidence_threshold 0.6 needs a model with a confidence output"),
    ], bag


def test_bad_input_exits_2_with_one_line_and_writes_nothing(scene, tmp_path, capsys):
    model, colour, _cls, _name = scene
    cases, bag = _bad_inputs(tmp_path, model, colour)
    for case, change, expected in cases:
        out = tmp_path / f"out_{case.replace(' ', '_')}"
        args = {"bag": str(bag), "--model": str(model), "--out": str(out), **change}
        argv = ["evaluate-bag", args.pop("bag"), *[x for kv in args.items() for x in kv]]
        assert cli.main(argv) == 2, case
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("offroad evaluate-bag: "), (case, err)
        assert expected in err[0], (case, err)
        assert _files(out) == [], case


def test_bag_corrupt_after_some_frames_leaves_nothing_half_written(scene, tmp_path, capsys):
    model, colour, _cls, name = scene
    bag = write_eval_bag(tmp_path / "bag", colour, frames=FRAMES)
    with Writer(tmp_path / "tail", version=8) as w:  # the same frames, then a broken image
        conn = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=TS)
        info = w.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo",
                                typestore=TS)
        for c, stamp, raw in _raw_messages(bag):
            w.write(conn if c.topic == "/camera/image_raw" else info, stamp, raw)
        w.write(conn, T0 + FRAMES * PERIOD, b"\x00\x01\x00\x00" + b"\xff" * 40)
    out = tmp_path / "out"
    argv = ["evaluate-bag", str(tmp_path / "tail"), "--model", str(model), "--out", str(out),
            "--every", "1", "--set", f"category_overrides={name}=FREE"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt bag" in err[0], err
    assert _files(out) == []  # the frames before the broken one wrote pictures: all removed
    assert cli.main([*argv[:1], str(bag), *argv[2:]]) == 0  # the intact part evaluates
    assert len(list((out / "overlays").glob("*.png"))) == FRAMES


def _raw_messages(bag):
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        return [(c, t, bytes(raw)) for c, t, raw in reader.messages()]


def test_params_file_configures_both_nodes_as_live(tmp_path, capsys):
    """``--params launch/config/replay.yaml``: the shipped confidence gate (0.6) and the
    costmap section's values reach the pipelines, as the launch file runs them."""
    root = Path(__file__).resolve().parents[2]
    shipped = root / "launch/config/replay.yaml"
    model = build_tiny_model(tmp_path / "conf.onnx", height=H, width=W, confidence=True)
    bag = write_eval_bag(tmp_path / "bag", np.array([90, 140, 60], np.uint8),
                         labels=np.zeros((H, W), np.uint8))
    out = tmp_path / "out"
    assert cli.main(["evaluate-bag", str(bag), "--model", str(model), "--out", str(out),
                     "--params", str(shipped)]) == 0, capsys.readouterr().err
    assert "confidence threshold 0.6" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["segmentation_params"]["confidence_threshold"] == 0.6
    section = load_params_file(shipped, "offroad_costmap")
    section.pop("use_sim_time")
    assert {k: report["costmap_params"][k] for k in section} == section
    assert (section["camera_pitch"], section["camera_x"], section["stale_timeout"]) == (
        0.2094, 0.3, 2.0)
    # the live nodes' defaults differ: the file is what made these values
    defaults = costmap_params.validate({}).values
    assert defaults["camera_pitch"] != 0.2094 and defaults["camera_x"] != 0.3
    evaluator = BagEvaluator(EvalOptions(str(model), str(tmp_path / "o2"),
                                         segmentation_params=read_sections(shipped)[0][
                                             "offroad_segmentation"]))
    assert evaluator.segmentation_config.confidence_threshold == 0.6
    # explicit overrides win over the file
    assert cli.main(["evaluate-bag", str(bag), "--model", str(model), "--out", str(out),
                     "--params", str(shipped), "--confidence-threshold", "0.3",
                     "--set", "offroad_costmap.max_range=6"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["segmentation_params"]["confidence_threshold"] == 0.3
    assert report["costmap_params"]["max_range"] == 6.0


def test_offline_costmap_ignores_odometry_with_a_note():
    robot = Path(__file__).resolve().parents[2] / "launch/config/robot.yaml"
    values = load_params_file(robot, "offroad_costmap")
    assert values["use_odom"] is True  # robot.yaml fuses in odom
    config, note = offline_costmap_config(values)
    assert (config.use_odom, config.output_frame, config.fusion) == (False, "base_link", False)
    assert "not replayed offline" in note
    assert offline_costmap_config({})[1] is None
