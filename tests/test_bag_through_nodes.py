"""Acceptance (issue 8): a bag from ``offroad data synth --bag`` replayed through the real
segmentation and costmap nodes (separate processes, DDS) on the CPU provider yields one label
image per input frame, and the costmap turns them into grids.

The bag is replayed at rate 0.25 (a frame every 2 s of wall time): the CPU model takes
0.17-0.31 s per frame here idle and 0.86-1.19 s at load ~10 on 2 cores, where rate 1.0 (a
frame every 0.5 s) made the node drop 4-8 of 12 frames, as its latest-frame policy should. The
demo replays at rate 1.0; the replay's pacing is tested in ``offroad_replay``.

The demo's live stage (``scripts/demo/live.py``) is the code under test: it starts the nodes
with ``launch/config/replay.yaml``, plays the bag with the ``offroad_replay`` ``replay``
executable, records the outputs and scores them with ``offroad_replay.scoring``.
The model is a randomly initialised DDRNet23-slim exported at the robot's 544x640 through the
deploy chain, so the CPU cost per frame is the real model's.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
BAG_FRAMES = 12
BAG_RATE_HZ = 2.0
REPLAY_RATE = 0.25
PERIOD_MS = 1000.0 / (BAG_RATE_HZ * REPLAY_RATE)  # wall time between frames: 2000 ms


def _live_module():
    path = REPO / "scripts" / "demo" / "live.py"
    spec = importlib.util.spec_from_file_location("demo_live", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthetic_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bag")
    bag = root / "synthetic_bag"
    subprocess.run([sys.executable, "-m", "offroad_training.cli", "data", "synth",
                    "--out", str(root / "frames"), "--frames", str(BAG_FRAMES),
                    "--size", "640x544", "--seed", "5", "--bag", str(bag),
                    "--rate", str(BAG_RATE_HZ), "--storage", "sqlite3", "--no-progress"],
                   check=True, cwd=REPO, capture_output=True)
    return bag


@pytest.fixture(scope="module")
def ddrnet_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from offroad_training.deploy.export import export_model
    from offroad_training.model.ddrnet import DDRNet23Slim

    torch.manual_seed(0)
    model = DDRNet23Slim(num_classes=7).eval()
    return export_model(model, tmp_path_factory.mktemp("model") / "ddrnet.onnx",
                        height=544, width=640, confidence=True)


@pytest.mark.slow
def test_synthetic_bag_one_label_image_per_frame_on_cpu(synthetic_bag: Path, ddrnet_onnx: Path,
                                                         tmp_path: Path) -> None:
    live = _live_module()
    result = live.run_live(bag=synthetic_bag, model=ddrnet_onnx, out=tmp_path / "live",
                           logs=tmp_path, rate=REPLAY_RATE, provider="cpu")
    logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("live_*.log")}
    assert "error" not in result, (result, logs)
    assert result["execution_provider"] == "CPUExecutionProvider"
    assert result["frames_in_bag"] == BAG_FRAMES
    counters = result["counters"]
    assert counters["frames_received"] == BAG_FRAMES, logs
    assert counters["frames_rejected"] == 0
    # every frame is accounted for: one label image with the stamp of its image (scored =
    # matched to the bag's ground truth by stamp), or a counted drop (latest-frame policy)
    dropped = counters["frames_dropped"]
    assert counters["frames_processed"] + dropped == BAG_FRAMES, result
    assert result["labels_received"] == result["labels_scored"] == BAG_FRAMES - dropped, result
    # one grid per label image (stamped like it); "scored" needs cells observed in both
    assert result["grids_for_labels"] == BAG_FRAMES - dropped, result
    assert result["grids_scored"] >= 1
    # the per-frame series the report plots: one entry per processed frame, in bag order
    per_frame = result["per_frame"]
    # Latest-frame policy: the first frame finds the worker idle and the last has no successor
    # to replace it, so both are processed on any machine; a frame in between is dropped only
    # if a newer one arrived while the worker was busy. The node's own stage times tell
    # whether it was: a frame done in under half a period leaves no reason to drop one.
    assert 0 not in result["frames_without_labels"], result["frames_without_labels"]
    assert BAG_FRAMES - 1 not in result["frames_without_labels"], result["frames_without_labels"]
    slowest = max(f["preprocess_ms"] + f["inference_ms"] + f["postprocess_ms"]
                  for f in per_frame)
    if slowest < 0.5 * PERIOD_MS:
        assert dropped == 0, (counters, result["latency_ms"])
    # Whatever the load: a drop needs a frame slower than the 2 s period, ~8x the idle
    # 0.17-0.31 s and 1.7x the worst at load ~10 (1.19 s; 0 dropped there).
    assert dropped <= BAG_FRAMES // 4, (counters, result["latency_ms"])
    assert result["costmap"]["compared_cells"] > 0
    assert len(per_frame) == counters["frames_processed"], per_frame
    assert [f["stamp_ns"] for f in per_frame] == sorted(f["stamp_ns"] for f in per_frame)
    # age is in the bag's sim time (/clock ticks, frozen after the last message): only >= 0
    assert all(f["inference_ms"] > 0 and f["age_ms"] >= 0 for f in per_frame), per_frame
    assert result["confidence_threshold"] == 0.6  # replay.yaml's gate, from SegmentationInfo
    assert result["exit_codes"] == {"segmentation_node": 0, "costmap_node": 0}
