"""seed_full.yaml cannot rot: two optimizer steps of the real-data recipe, exactly as shipped
(544x640 crops, batch 8, 8 DataLoader workers, Cityscapes-style pretrained file, the
domain-gap augmentations), on tiny generated data in the unified format."""

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("albumentations")


import ddrnet_reference_keys as ref  # noqa: E402  (after importorskip)

from offroad_training.data import fixtures  # noqa: E402
from offroad_training.data.unified import UnifiedWriter  # noqa: E402
from offroad_training.train.config import config_path, load_config  # noqa: E402
from offroad_training.train.loop import train  # noqa: E402


def _amp_here() -> list[str]:
    """AMP where the device allows: the config's own (fp16) on CUDA, bf16 on a CPU with bf16
    kernels, else off (the config's ``auto`` on CPU)."""
    if torch.cuda.is_available():
        return []
    return ["amp=bf16"] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else []


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:This DataLoader will create 8 worker processes")
def test_seed_full_config_runs_two_steps_with_workers(tmp_path):
    root = tmp_path / "unified"
    writer = UnifiedWriter(root, base_size=None)
    ids = {"train": [f"t{i:02d}" for i in range(16)], "val": ["v0", "v1"]}
    rng = np.random.default_rng(0)
    for n, item in enumerate(ids["train"] + ids["val"]):
        labels = fixtures.stripes(rng.permutation([0, 1, 2, 3, 4, 5, 6, 255]), 160, 136)
        writer.write_pair(item, fixtures.textured_image(160, 136, n), labels)
    for split, members in ids.items():
        writer.write_split(split, members)
    writer.write_ontology()
    weights = tmp_path / "ddrnet23_slim_cityscapes.pth"
    torch.save(ref.training_checkpoint(ref.random_state(ref.segmentation_shapes(19))), weights)
    overrides = [f"data_root={root}", f"out_dir={tmp_path / 'run'}", f"pretrained={weights}",
                 "max_steps=2", *_amp_here()]
    cfg = load_config(config_path("seed_full.yaml"), overrides)
    assert cfg.num_workers == 8 and cfg.persistent_workers and cfg.batch_size == 8
    result = train(cfg, progress=False)
    assert result.step == 2 and result.interrupted is None
    with open(tmp_path / "run" / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(np.isfinite(float(r["loss"])) for r in rows)
    assert float(rows[1]["lr_backbone"]) == pytest.approx(0.1 * float(rows[1]["lr"]))
    last = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert last["config"] == cfg.to_dict()
    report = last["provenance"]["pretrained"]
    assert report["backbone_loaded"] == report["backbone_total"] and report["head_replaced"]
