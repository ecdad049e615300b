"""Issue 5 acceptance on a DDRNet23-slim trained briefly on the synthetic world (slow).

One module-scoped fixture renders a small synthetic dataset (unified format), trains for a
short run, exports, quantises (W8A8) and compiles it; the tests then check the acceptance
figures and print them (run with ``-s`` to see them).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

synth = pytest.importorskip("offroad_training.synth")
unified = pytest.importorskip("offroad_training.data.unified")

from offroad_training.deploy.compile import compile_context  # noqa: E402
from offroad_training.deploy.export import export_checkpoint, torch_logits  # noqa: E402
from offroad_training.deploy.quantize import quantize_dataset  # noqa: E402
from offroad_training.deploy.report import markdown, quantize_report  # noqa: E402
from offroad_training.engine import InferenceEngine  # noqa: E402
from offroad_training.evaluation import evaluate  # noqa: E402
from offroad_training.model.ddrnet import load_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow
H, W = 136, 160


def _write_synthetic(root: Path, n_train: int, n_val: int) -> Path:
    writer = unified.UnifiedWriter(root, jpeg_quality=95)
    cam = synth.default_camera(width=W, height=H)
    splits: dict[str, list[str]] = {"train": [], "val": []}
    for i in range(n_train + n_val):
        split = "train" if i < n_train else "val"
        frame = synth.render_frame(synth.SyntheticWorld.generate(seed=2000 + i), cam, seed=i)
        item = f"{split}_{i:04d}"
        writer.write_pair(item, frame.rgb, frame.labels)
        splits[split].append(item)
    for split, ids in splits.items():
        writer.write_split(split, ids)
    writer.write_ontology()
    return root


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from offroad_training.train.config import config_path, load_config
    from offroad_training.train.loop import train

    tmp = tmp_path_factory.mktemp("accept")
    root = _write_synthetic(tmp / "data", 32, 10)
    torch.set_num_threads(2)
    times: dict[str, float] = {}
    start = time.perf_counter()
    cfg = load_config(config_path("tiny.yaml"), [
        f"data_root={root}", f"out_dir={tmp / 'run'}", "epochs=40", "eval_every=40",
        "torch_threads=2", f"crop_height={H}", f"crop_width={W}", "batch_size=4", "lr=0.005"])
    train(cfg, progress=False)
    times["train"] = time.perf_counter() - start
    ckpt = tmp / "run" / "best_model.pth"
    start = time.perf_counter()
    fp32 = export_checkpoint(ckpt, tmp / "model.onnx", height=H, width=W)
    logits = export_checkpoint(ckpt, tmp / "model_logits.onnx", height=H, width=W, kind="logits")
    nearest = export_checkpoint(ckpt, tmp / "model_nearest.onnx", height=H, width=W,
                                upsample="nearest")
    times["export"] = time.perf_counter() - start
    start = time.perf_counter()
    qdq = quantize_dataset(fp32, unified.UnifiedDataset(root, "train"), tmp / "model.qdq.onnx",
                           num=32, seed=0)
    times["quantize"] = time.perf_counter() - start
    ctx = compile_context(qdq, tmp / "model_ctx.onnx")
    times["compile"] = ctx.seconds
    return {"root": root, "ckpt": ckpt, "fp32": fp32, "logits": logits, "nearest": nearest,
            "qdq": qdq, "ctx": ctx, "times": times,
            "val": unified.UnifiedDataset(root, "val")}


def test_torch_vs_onnx_on_synthetic_model(chain: dict) -> None:
    model, _ = load_checkpoint(chain["ckpt"])
    logits_engine = InferenceEngine(chain["logits"], provider="cpu")
    labels_engine = InferenceEngine(chain["fp32"], provider="cpu")
    worst, same, total = 0.0, 0, 0
    for item in chain["val"].ids:
        rgb, _ = chain["val"].load(item)
        ref = torch_logits(model, rgb)
        worst = max(worst, float(np.abs(logits_engine.run(rgb).logits - ref).max()))
        labels = labels_engine.run(rgb).labels
        same += int((labels == ref.argmax(0)).sum())
        total += labels.size
    print(f"\n[acceptance] torch vs ONNX FP32: max |logit diff| {worst:.2e}, labels identical "
          f"{100 * same / total:.3f}%")
    assert worst <= 1e-3 and same / total >= 0.999


def test_context_binary_accuracy(chain: dict, tmp_path: Path) -> None:
    graph = onnx.load(str(chain["ctx"].model), load_external_data=False).graph
    assert [n.op_type for n in graph.node] == ["EPContext"]
    assert [i.type.tensor_type.elem_type for i in [*graph.input, *graph.output]] \
        == [TensorProto.UINT8, TensorProto.UINT8]
    start = time.perf_counter()
    report = quantize_report(chain["fp32"], chain["val"], qdq=chain["qdq"],
                             ctx=chain["ctx"].model)
    chain["times"]["report"] = time.perf_counter() - start
    print("\n" + markdown(report))
    print(f"[acceptance] times (s): {chain['times']} at {W}x{H}")
    htp = report["results"]["htp"]
    assert report["results"]["fp32"]["miou"] > 100 * 2 / 7, "the model did not learn"
    assert htp["agreement_with_fp32"] >= 99.0
    assert htp["miou_drop"] <= 1.0
    assert report["flags"] == []


def test_upsampling_choice(chain: dict) -> None:
    scores = {}
    for mode in ("fp32", "nearest"):
        engine = InferenceEngine(chain[mode], provider="cpu")
        scores[mode] = evaluate(lambda x, e=engine: e.run(x).labels, chain["val"],
                                height=H, width=W).miou
    print(f"\n[acceptance] val mIoU: bilinear-then-ArgMax {100 * scores['fp32']:.2f}, "
          f"ArgMax-at-1/8-then-nearest {100 * scores['nearest']:.2f}")
    assert scores["fp32"] >= scores["nearest"] - 0.005
