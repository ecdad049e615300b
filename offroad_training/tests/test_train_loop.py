"""The training loop on small generated files, through the documented dataset interface.

Runs without the synthetic world (test_train_acceptance.py covers that end to end): the
dataset object here reads real JPEG/PNG files laid out in the unified format.
"""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("albumentations")


import ddrnet_reference_keys as ref  # noqa: E402  (after importorskip)

from offroad_training.train import loop  # noqa: E402
from offroad_training.train.checkpoint import ResumeError  # noqa: E402
from offroad_training.train.config import config_path, load_config  # noqa: E402

COLOURS = np.array([[128, 128, 128], [150, 110, 60], [40, 160, 40], [90, 40, 20],
                    [30, 60, 200], [250, 200, 0], [140, 200, 240]], np.float32)


class _FilesDataset:
    """The UnifiedDataset interface over <root>/images, labels, splits."""

    def __init__(self, root, split):
        self.root = Path(root)
        self.ids = (self.root / "splits" / f"{split}.txt").read_text().split()

    def image_path(self, item):
        return self.root / "images" / f"{item}.jpg"

    def label_path(self, item):
        return self.root / "labels" / f"{item}.png"

    def load(self, item):
        rgb = cv2.cvtColor(cv2.imread(str(self.image_path(item))), cv2.COLOR_BGR2RGB)
        return rgb, cv2.imread(str(self.label_path(item)), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    for sub in ("images", "labels", "splits"):
        (root / sub).mkdir()
    rng = np.random.default_rng(0)
    ids = []
    for i in range(20):
        labels = np.zeros((96, 128), np.uint8)
        horizon = int(rng.integers(24, 48))
        labels[:horizon] = 6
        labels[horizon:] = rng.integers(0, 3)
        for _ in range(3):
            y, x = int(rng.integers(horizon, 86)), int(rng.integers(0, 108))
            labels[y:y + int(rng.integers(8, 24)), x:x + int(rng.integers(10, 30))] = \
                rng.integers(3, 6)
        rgb = np.clip(COLOURS[labels] + rng.normal(0, 12, (96, 128, 3)), 0, 255)
        cv2.imwrite(str(root / "images" / f"{i}.jpg"),
                    cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "labels" / f"{i}.png"), labels)
        ids.append(str(i))
    (root / "splits" / "train.txt").write_text("\n".join(ids[:16]))
    (root / "splits" / "val.txt").write_text("\n".join(ids[16:]))
    return root


@pytest.fixture(autouse=True)
def _dataset_double(monkeypatch):
    monkeypatch.setattr(loop, "_open_dataset", _FilesDataset)


def _cfg(root, out, *extra):
    return load_config(config_path("tiny.yaml"), [f"data_root={root}", f"out_dir={out}",
                                                  "epochs=3", "eval_every=3", *extra])


def _losses(out):
    with open(Path(out) / "train_log.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_interrupted_then_resumed_run_equals_uninterrupted(data_root, tmp_path):
    full = loop.train(_cfg(data_root, tmp_path / "a"), progress=False)
    part = loop.train(_cfg(data_root, tmp_path / "b", "max_steps=6"), progress=False)
    assert part.step == 6
    rest = loop.train(_cfg(data_root, tmp_path / "b", "num_workers=2"), resume=True,
                      progress=False)
    assert full.step == rest.step == 12
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    for name in ("config.yaml", "eval_log.csv", "best_model.pth", "last.pth"):
        assert (tmp_path / "b" / name).exists()
    best = torch.load(tmp_path / "b" / "best_model.pth", weights_only=True)
    assert best["provenance"]["git_revision"]
    assert best["metrics"]["miou"] == pytest.approx(rest.best_miou, abs=1e-6)
    last = torch.load(tmp_path / "b" / "last.pth", weights_only=True)
    assert {"model", "ema", "optimizer", "scheduler", "scaler", "rng", "config"} <= set(last)


def test_resume_refuses_a_changed_recipe(data_root, tmp_path):
    loop.train(_cfg(data_root, tmp_path / "c", "max_steps=2"), progress=False)
    with pytest.raises(ResumeError, match="lr"):
        loop.train(_cfg(data_root, tmp_path / "c", "lr=0.1"), resume=True, progress=False)
    with pytest.raises(ResumeError, match="nothing to resume"):
        loop.train(_cfg(data_root, tmp_path / "none"), resume=True, progress=False)


def _log_rows(out):
    with open(Path(out) / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_parameter_groups_follow_warmup_and_cosine_and_resume_restores_them(data_root,
                                                                             tmp_path):
    from offroad_training.train.optim import lr_factor

    weights = tmp_path / "checkpoint.pth.tar"  # the reference training code's layout
    torch.save(ref.training_checkpoint(ref.random_state(ref.segmentation_shapes(19), seed=3)),
               weights)
    extra = (f"pretrained={weights}", "warmup_epochs=1", "min_lr_ratio=0.1")
    full = loop.train(_cfg(data_root, tmp_path / "a", *extra), progress=False)
    cfg = load_config(tmp_path / "a" / "config.yaml")
    assert cfg.backbone_lr_factor == 0.1  # null -> 0.1 because pretrained weights are set
    steps_per_epoch, total = 16 // 4, full.step
    rows = _log_rows(tmp_path / "a")
    assert [int(r["step"]) for r in rows] == list(range(1, total + 1))
    for i, row in enumerate(rows):  # the lr logged at a step is the one that step used
        factor = lr_factor(i, steps_per_epoch, total, 0.1)
        assert float(row["lr"]) == pytest.approx(cfg.lr * factor, rel=1e-9)
        assert float(row["lr_backbone"]) == pytest.approx(0.1 * cfg.lr * factor, rel=1e-9)
    assert float(rows[steps_per_epoch - 1]["lr"]) == pytest.approx(cfg.lr)  # warm-up peak
    assert float(rows[-1]["lr"]) < 0.2 * cfg.lr  # cosine towards 0.1 (exact: 0.134 x lr)
    last = torch.load(tmp_path / "a" / "last.pth", weights_only=True)
    groups = last["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert [g["initial_lr"] for g in groups] == pytest.approx([0.1 * cfg.lr, cfg.lr])
    report = last["provenance"]["pretrained"]
    assert report["dropped"] == ["loss.criterion.weight"] and report["head_replaced"]
    # interrupted mid-warm-up, resumed: both groups continue exactly where they were
    loop.train(_cfg(data_root, tmp_path / "b", *extra, "max_steps=3"), progress=False)
    loop.train(_cfg(data_root, tmp_path / "b", *extra), resume=True, progress=False)
    resumed = _log_rows(tmp_path / "b")
    assert [(r["lr"], r["lr_backbone"]) for r in resumed] == \
        [(r["lr"], r["lr_backbone"]) for r in rows]
    assert _losses(tmp_path / "b") == _losses(tmp_path / "a")
    with pytest.raises(ResumeError, match="backbone_lr_factor"):
        loop.train(_cfg(data_root, tmp_path / "b", *extra, "backbone_lr_factor=0.5"),
                   resume=True, progress=False)


def test_two_identical_short_runs_are_bit_identical(data_root, tmp_path):
    """tiny.yaml: seeds, one thread, deterministic algorithms (issue 12: a failing run can be
    re-run and studied)."""
    runs = [loop.train(_cfg(data_root, tmp_path / name, "epochs=2", "eval_every=2"),
                       progress=False) for name in ("a", "b")]
    assert runs[0].step == runs[1].step == 8
    assert load_config(tmp_path / "a" / "config.yaml").deterministic == "on"
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")  # repr() of every float
    a = torch.load(tmp_path / "a" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pth", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"]["module"][k], b["ema"]["module"][k])
               for k in a["ema"]["module"])
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run
