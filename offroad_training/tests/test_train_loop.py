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
