"""The ``offroad`` commands of training, data and export on bad input: exit status 2, one clear
line on stderr, nothing half-written where the output would go (offroad_core.exit_codes).

Each case failed before the fix (a traceback, exit 0 or 1, or torch's ``weights_only=False``
advice); the matrix of node faults is elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from offroad_training.cli import main  # noqa: E402
from offroad_training.data import fixtures  # noqa: E402
from offroad_training.model.ddrnet import DDRNet23Slim  # noqa: E402
from offroad_training.train.config import config_path  # noqa: E402


def _one_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"offroad {command}: "), lines[0]
    assert "Traceback" not in err and "weights_only" not in err
    return lines[0]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")) if root.exists() else []


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offroad_training.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_train_with_a_missing_data_root(tmp_path):
    out = tmp_path / "run"
    proc = _run("train", "--config", str(config_path("tiny.yaml")), "--no-progress", "--set",
                f"data_root={tmp_path / 'nowhere'}", "--set", f"out_dir={out}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "nowhere" in _one_line(proc.stderr, "train")
    assert not out.exists()  # no run directory for a run that never started


def test_train_with_a_broken_yaml_config(tmp_path, capsys):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("epochs: [1, 2\nlr: 0.1\n")
    assert main(["train", "--config", str(cfg), "--set", f"out_dir={tmp_path / 'run'}"]) == 2
    line = _one_line(capsys.readouterr().err, "train")
    assert "not valid YAML (line" in line and str(cfg) in line
    assert not (tmp_path / "run").exists()


def test_data_convert_out_naming_a_file(tmp_path, capsys):
    root = fixtures.write_goose(tmp_path / "goose", [(
        "train/a", "a_0", fixtures.textured_image(40, 16, 0),
        fixtures.stripes([23, 54], 40, 16))])
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    assert main(["data", "convert", "--dataset", "goose", "--root", str(root), "--out",
                 str(target), "--no-progress"]) == 2
    assert "is a file" in _one_line(capsys.readouterr().err, "data convert")
    assert target.read_text() == "keep me"


def test_data_convert_where_every_pair_is_corrupt(tmp_path, capsys):
    frames = [("train/a", f"a_{k}", fixtures.textured_image(40, 16, k),
               fixtures.stripes([23, 54], 40, 16)) for k in range(3)]
    root = fixtures.write_goose(tmp_path / "goose", frames)
    for image in (root / "images").rglob("*.png"):
        image.write_bytes(b"not a png")
    out = tmp_path / "converted"
    assert main(["data", "convert", "--dataset", "goose", "--root", str(root), "--out",
                 str(out), "--workers", "1", "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err, "data convert")
    assert "none of the 3 pairs could be converted" in line and "corrupt" in line
    assert not out.exists()  # the output directory this run created is gone again


def _checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "best_model.pth"
    torch.save({"model": DDRNet23Slim(num_classes=7).state_dict(),
                "config": {"crop_height": 64, "crop_width": 80}}, path)
    return path


@pytest.fixture
def no_export_work(monkeypatch):
    """Fail the test if the export reaches loading the checkpoint or tracing the graph."""
    import offroad_training.deploy.export as export
    import offroad_training.model.checkpoint as checkpoint

    def forbidden(*_a, **_k):
        raise AssertionError("the export work started before the bad argument was refused")

    monkeypatch.setattr(export, "export_model", forbidden)
    monkeypatch.setattr(checkpoint, "load_checkpoint", forbidden)


@pytest.mark.parametrize("size", [("0", "-8"), ("64", "0"), ("60", "80")])
def test_export_with_an_impossible_size(tmp_path, capsys, size, no_export_work):
    ckpt, out = _checkpoint(tmp_path), tmp_path / "model.onnx"
    assert main(["export", "onnx", "--checkpoint", str(ckpt), "--out", str(out),
                 "--height", size[0], "--width", size[1]]) == 2
    line = _one_line(capsys.readouterr().err, "export onnx")
    assert "positive multiple of 8" in line
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_export_out_naming_a_directory_fails_before_the_export(tmp_path, capsys,
                                                               no_export_work):
    ckpt, out = _checkpoint(tmp_path), tmp_path / "models"
    out.mkdir()
    assert main(["export", "onnx", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert "is a directory" in _one_line(capsys.readouterr().err, "export onnx")
    assert _files(out) == []


def test_corrupt_checkpoints_get_one_line_and_never_weights_only_advice(tmp_path, capsys):
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": {"w": Path("/etc")}}, pickled)  # a pickled object, not a tensor
    truncated = tmp_path / "truncated.pth"
    torch.save({"model": DDRNet23Slim(7).state_dict()}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:4096])
    data = tmp_path / "data"
    for bad in (pickled, truncated):
        assert main(["export", "onnx", "--checkpoint", str(bad), "--out",
                     str(tmp_path / "m.onnx")]) == 2
        _one_line(capsys.readouterr().err, "export onnx")
        assert main(["eval", "--checkpoint", str(bad), "--data", str(fixtures_dataset(data)),
                     "--split", "val"]) == 2
        _one_line(capsys.readouterr().err, "eval")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pth").write_bytes(pickled.read_bytes())
    assert main(["train", "--config", str(config_path("tiny.yaml")), "--resume", "--set",
                 f"out_dir={run}", "--set", f"data_root={data}"]) == 2
    assert "not a plain file of tensors" in _one_line(capsys.readouterr().err, "train")
    assert main(["train", "--config", str(config_path("tiny.yaml")), "--set",
                 f"pretrained={pickled}", "--set", f"out_dir={tmp_path / 'run2'}",
                 "--set", f"data_root={data}", "--no-progress"]) == 2
    assert "pickled.pth" in _one_line(capsys.readouterr().err, "train")
    assert not (tmp_path / "m.onnx").exists()


def fixtures_dataset(root: Path) -> Path:
    """A small unified dataset (train 8, val 2) at ``root`` (written once)."""
    if root.exists():
        return root
    from offroad_training.data.unified import UnifiedWriter

    writer = UnifiedWriter(root, base_size=None)
    rng = np.random.default_rng(0)
    ids = {"train": [f"t{i}" for i in range(8)], "val": ["v0", "v1"]}
    for n, item in enumerate(ids["train"] + ids["val"]):
        writer.write_pair(item, fixtures.textured_image(80, 64, n),
                          fixtures.stripes(rng.permutation([0, 1, 2, 6]), 80, 64))
    for split, members in ids.items():
        writer.write_split(split, members)
    writer.write_ontology()
    return root


def test_a_corrupt_image_met_by_a_dataloader_worker_is_one_line(tmp_path, capsys):
    data = fixtures_dataset(tmp_path / "data")
    (data / "images" / "t3.jpg").write_bytes(b"not a jpeg")
    assert main(["train", "--config", str(config_path("tiny.yaml")), "--no-progress",
                 "--set", f"data_root={data}", "--set", f"out_dir={tmp_path / 'run'}",
                 "--set", "num_workers=2"]) == 2
    line = _one_line(capsys.readouterr().err, "train")
    assert "t3.jpg" in line and "DataLoader" not in line


@pytest.mark.parametrize("where", ["directory", "under_a_file"])
def test_eval_out_is_checked_before_the_evaluation(tmp_path, capsys, where):
    data = fixtures_dataset(tmp_path / "data")
    if where == "directory":
        out = tmp_path / "reports"
        out.mkdir()
    else:
        (tmp_path / "note.txt").write_text("keep")
        out = tmp_path / "note.txt" / "eval.json"
    assert main(["eval", "--checkpoint", str(_checkpoint(tmp_path)), "--data", str(data),
                 "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before any image was scored
    assert ("is a directory" if where == "directory" else "is a file, not a directory") in \
        _one_line(captured.err, "eval")
