"""Quantise -> compile -> report on real onnxruntime / onnxruntime-qnn (emulated HTP).

Fast tests use the tiny contract model (a 1x1 conv over colour) and a random DDRNet23-slim at
136x160; the synthetic-world acceptance test lives in test_deploy_acceptance.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from offroad_core.contract import read_contract
from offroad_core.engine import InferenceEngine, sha256_file
from offroad_core.testing import build_tiny_model
from offroad_training.cli import main
from offroad_training.deploy.compile import CompileError, check_context_model, compile_context
from offroad_training.deploy.export import export_model
from offroad_training.deploy.quantize import (
    QuantizeError,
    calibration_ids,
    quantize_model,
)
from offroad_training.deploy.report import markdown, quantize_report
from offroad_training.model.ddrnet import DDRNet23Slim

H, W = 64, 80


def _image(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    """Blocky colour fields with noise: every class of the tiny model appears."""
    base = rng.integers(0, 256, (h // 8, w // 8, 3)).astype(np.float32)
    img = np.kron(base, np.ones((8, 8, 1))) + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


class _Frames:
    """In-memory dataset (the evaluator's protocol); labels from a reference model."""

    def __init__(self, images: list[np.ndarray], labels: list[np.ndarray]) -> None:
        self.ids = [f"f{i:03d}" for i in range(len(images))]
        self._data = dict(zip(self.ids, zip(images, labels, strict=True), strict=True))

    def load(self, item_id: str) -> tuple[np.ndarray, np.ndarray]:
        return self._data[item_id]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("tiny")
    fp32 = build_tiny_model(tmp / "tiny.onnx", H, W, seed=4)
    rng = np.random.default_rng(0)
    calib = [_image(rng) for _ in range(24)]
    val = [_image(rng) for _ in range(12)]
    ref = InferenceEngine(fp32, provider="cpu")
    data = _Frames(val, [ref.run(v).labels for v in val])
    qdq = quantize_model(fp32, calib, tmp / "tiny.qdq.onnx")
    ctx = compile_context(qdq, tmp / "tiny_ctx.onnx")
    return {"tmp": tmp, "fp32": fp32, "qdq": qdq, "ctx": ctx, "calib": calib, "data": data}


def _io(path: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    g = onnx.load(str(path), load_external_data=False).graph
    return ([(i.name, i.type.tensor_type.elem_type) for i in g.input],
            [(o.name, o.type.tensor_type.elem_type) for o in g.output])


def test_calibration_subset_is_seeded() -> None:
    ids = [f"{i:04d}" for i in range(1000)]
    a = calibration_ids(ids, 300, seed=1)
    assert a == calibration_ids(list(reversed(ids)), 300, seed=1)
    assert len(set(a)) == 300 and a != calibration_ids(ids, 300, seed=2)
    assert sorted(calibration_ids(ids[:10], 300)) == ids[:10]
    with pytest.raises(QuantizeError):
        calibration_ids([], 10)


def test_qdq_has_integer_io_and_fixed_input_scale(tiny: dict) -> None:
    assert _io(tiny["qdq"]) == ([("image", TensorProto.UINT8)], [("labels", TensorProto.UINT8)])
    g = onnx.load(str(tiny["qdq"])).graph
    (dq,) = [n for n in g.node if "image" in n.input]
    assert dq.op_type == "DequantizeLinear"
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    assert inits[dq.input[1]] == pytest.approx(1 / 255)
    assert int(inits[dq.input[2]]) == 0
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "image" for n in g.node)
    meta = read_contract(tiny["qdq"]).producer["quantization"]
    assert meta["precision"] == "w8a8-mixed" and meta["calibration_images"] == 24
    assert meta["uint16_tensors"]  # the tiny model's colour conv + upsampling


def test_qdq_agrees_with_fp32(tiny: dict) -> None:
    fp32 = InferenceEngine(tiny["fp32"], provider="cpu")
    qdq = InferenceEngine(tiny["qdq"], provider="cpu")
    rng = np.random.default_rng(9)
    agree = np.mean([(fp32.run(x).labels == qdq.run(x).labels).mean()
                     for x in (_image(rng) for _ in range(5))])
    assert agree >= 0.98  # measured 0.9954; CPU kernels move a few boundary pixels by machine


def test_w8a16(tiny: dict) -> None:
    out = quantize_model(tiny["fp32"], tiny["calib"][:8], tiny["tmp"] / "w8a16.onnx",
                         precision="w8a16")
    g = onnx.load(str(out)).graph
    zero_points = {i.data_type for i in g.initializer if i.name.endswith("_zero_point")}
    assert TensorProto.UINT16 in zero_points
    assert _io(out)[0] == [("image", TensorProto.UINT8)]
    rgb = tiny["calib"][0]
    # measured 0.9963 (19 of 5120 pixels differ; 0.99 allowed 51, 0.6 % from failing): 0.98
    # leaves ~80 pixels for another machine's kernels, a broken 16-bit path flips far more
    assert (InferenceEngine(out, provider="cpu").run(rgb).labels
            == InferenceEngine(tiny["fp32"], provider="cpu").run(rgb).labels).mean() >= 0.98


def test_pure_w8a8(tiny: dict) -> None:
    out = quantize_model(tiny["fp32"], tiny["calib"][:8], tiny["tmp"] / "w8a8.onnx",
                         precision="w8a8")
    g = onnx.load(str(out)).graph
    assert {i.data_type for i in g.initializer if i.name.endswith("_zero_point")} \
        <= {TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32}
    ctx = compile_context(out, tiny["tmp"] / "w8a8_ctx.onnx")
    assert ctx.qnn.precision == "int8"


def test_quantize_refuses_logits_graph_and_bad_images(tiny: dict) -> None:
    logits = build_tiny_model(tiny["tmp"] / "logits.onnx", H, W, output_kind="logits")
    with pytest.raises(QuantizeError, match="deploy graph"):
        quantize_model(logits, tiny["calib"], tiny["tmp"] / "x.onnx")
    with pytest.raises(QuantizeError, match="calibration image"):
        quantize_model(tiny["fp32"], [np.zeros((10, 10, 3), np.uint8)], tiny["tmp"] / "x.onnx")


def test_context_binary(tiny: dict) -> None:
    ctx = tiny["ctx"]
    binary = check_context_model(ctx.model)
    assert binary == ctx.binary and binary.name == "tiny_ctx.bin"
    assert _io(ctx.model) == ([("image", TensorProto.UINT8)], [("labels", TensorProto.UINT8)])
    contract = read_contract(ctx.model)
    q = contract.qnn
    assert (q.soc_model, q.htp_arch, q.precision) == (77, 73, "int8+int16")
    assert q.onnxruntime_qnn_version == "2.7.0" and q.qairt_version.startswith("2.")
    assert q.binary_sha256 == sha256_file(binary)
    assert contract.class_names == read_contract(tiny["fp32"]).class_names
    engine = InferenceEngine(ctx.model, provider="qnn")
    assert engine.is_context_binary and engine.provider == "QNNExecutionProvider"
    qdq = InferenceEngine(tiny["qdq"], provider="cpu")
    x = tiny["calib"][3]
    # measured 0.9990 (5 of 5120 pixels; HTP emulator vs CPU QDQ rounding): 0.99 was within
    # 1 %, 0.98 leaves ~100 pixels
    assert (engine.run(x).labels == qdq.run(x).labels).mean() >= 0.98


def test_fp16_context_binary_only_on_request(tiny: dict) -> None:
    with pytest.raises(CompileError, match="float graph"):
        compile_context(tiny["fp32"], tiny["tmp"] / "bad_ctx.onnx")
    with pytest.raises(CompileError, match="QDQ"):
        compile_context(tiny["fp32"], tiny["tmp"] / "bad_ctx.onnx", precision="int8")
    fp16 = compile_context(tiny["fp32"], tiny["tmp"] / "fp16_ctx.onnx", precision="fp16")
    assert read_contract(fp16.model).qnn.precision == "fp16"
    assert _io(fp16.model) == ([("image", TensorProto.UINT8)], [("labels", TensorProto.UINT8)])


@pytest.mark.xfail(strict=True, reason="known: the FP16 context binary's labels do not match "
                   "FP32 in HTP emulation (13% agreement); see docs/deployment.md")
def test_fp16_context_binary_accuracy(tiny: dict) -> None:
    fp16 = compile_context(tiny["fp32"], tiny["tmp"] / "fp16b_ctx.onnx", precision="fp16")
    x = tiny["calib"][5]
    assert (InferenceEngine(fp16.model, provider="qnn").run(x).labels
            == InferenceEngine(tiny["fp32"], provider="cpu").run(x).labels).mean() >= 0.99


def _collapse_overrides(model_path: Path, cls: int, classes: int = 7) -> dict:
    """A bad calibration range on the classifier conv's channel ``cls``: its weights round to 0."""
    g = onnx.load(str(model_path)).graph
    conv = [n for n in g.node if n.op_type == "Conv"][-1]
    per_channel = [{} for _ in range(classes)]
    per_channel[cls] = {"rmin": -1e4, "rmax": 1e4}
    per_channel[0] = {**per_channel[0], "axis": 0}
    return {conv.input[1]: per_channel}


def _victim(report: dict) -> str:
    return report["classes"][2]


def test_report_passes_good_and_flags_collapsed_class(tiny: dict, tmp_path: Path) -> None:
    # The tiny model is one linear layer on colour: 8-bit moves a few % of boundary pixels
    # (measured 99.56 % agreement, 98.7 % earlier), so its "healthy" band is wider than a real
    # network's 3 points.
    good = quantize_report(tiny["fp32"], tiny["data"], qdq=tiny["qdq"], ctx=tiny["ctx"].model,
                           threshold=15.0)
    assert good["flags"] == [], good["flags"]
    assert good["results"]["htp"]["agreement_with_fp32"] >= 98.0
    assert good["results"]["fp32"]["miou"] == pytest.approx(100.0)
    broken = quantize_model(tiny["fp32"], tiny["calib"], tmp_path / "broken.qdq.onnx",
                            tensor_overrides=_collapse_overrides(tiny["fp32"], 2))
    bad = quantize_report(tiny["fp32"], tiny["data"], qdq=broken)
    flagged = {(f["model"], f["class"]) for f in bad["flags"]}
    assert ("qdq", _victim(bad)) in flagged
    assert bad["results"]["qdq"]["iou"][_victim(bad)] < 5.0  # measured 0.17 (79.8 healthy)
    table = markdown(bad)
    assert "**FLAG**" in table and _victim(bad) in table.split("FLAGGED")[1]


def test_report_cli_exit_codes(tiny: dict, tmp_path: Path) -> None:
    from offroad_training.data.unified import UnifiedWriter

    writer = UnifiedWriter(tmp_path / "data", jpeg_quality=98)
    ids = []
    for item, (rgb, labels) in zip(tiny["data"].ids, map(tiny["data"].load, tiny["data"].ids),
                                   strict=True):
        writer.write_pair(item, rgb, labels)
        ids.append(item)
    writer.write_split("val", ids)
    writer.write_split("train", ids)
    writer.write_ontology()
    broken = quantize_model(tiny["fp32"], tiny["calib"], tmp_path / "broken.qdq.onnx",
                            tensor_overrides=_collapse_overrides(tiny["fp32"], 2))
    out = tmp_path / "report.json"
    assert main(["quantize-report", "--fp32", str(tiny["fp32"]), "--qdq", str(broken),
                 "--data", str(tmp_path / "data"), "--out", str(out)]) == 3
    data = json.loads(out.read_text())
    assert any(f["class"] == data["classes"][2] for f in data["flags"])
    assert (tmp_path / "report.md").read_text().startswith("# Quantisation report")
    assert main(["quantize-report", "--fp32", str(tiny["fp32"]), "--qdq", str(tiny["qdq"]),
                 "--data", str(tmp_path / "data"), "--out", str(out), "--threshold", "15"]) == 0
    # quantize + compile through the CLI on the same dataset
    qdq = tmp_path / "cli.qdq.onnx"
    assert main(["quantize", "--onnx", str(tiny["fp32"]), "--calib", str(tmp_path / "data"),
                 "--num", "8", "--out", str(qdq)]) == 0
    assert read_contract(qdq).producer["quantization"]["calibration_images"] == 8
    assert main(["compile", "--qdq", str(qdq), "--out", str(tmp_path / "cli_ctx.onnx")]) == 0
    assert (tmp_path / "cli_ctx.bin").is_file()
    assert main(["quantize", "--onnx", str(tiny["fp32"]), "--calib", str(tmp_path / "nope"),
                 "--out", str(qdq)]) == 2


@pytest.fixture(scope="module")
def ddrnet(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A random DDRNet23-slim through the whole chain at 136x160."""
    tmp = tmp_path_factory.mktemp("ddrnet")
    torch.manual_seed(0)
    model = DDRNet23Slim(num_classes=7).eval()
    with torch.no_grad():
        model.final_layer.conv2.weight.mul_(0.02)
    fp32 = export_model(model, tmp / "m.onnx", height=136, width=160, confidence=True)
    rng = np.random.default_rng(0)
    calib = [_image(rng, 136, 160) for _ in range(16)]
    qdq = quantize_model(fp32, calib, tmp / "m.qdq.onnx")
    return {"fp32": fp32, "qdq": qdq, "ctx": compile_context(qdq, tmp / "m_ctx.onnx"),
            "calib": calib}


def test_ddrnet_mixed_precision_tensors(ddrnet: dict) -> None:
    g = onnx.load(str(ddrnet["qdq"])).graph
    meta = read_contract(ddrnet["qdq"]).producer["quantization"]
    wide = meta["uint16_tensors"]
    assert meta["precision"] == "w8a8-mixed"
    assert next(n.input[0] for n in g.node if n.op_type == "ArgMax").startswith(wide[0])
    assert sum("final_layer" in t for t in wide) == 5  # BN, conv, ReLU, conv, ReLU
    assert sum(t.startswith("/net/spp/") for t in wide) > 30  # all of DAPPM
    zero_points = {i.name: i.data_type for i in g.initializer if i.name.endswith("_zero_point")}
    activations = {n.input[0]: zero_points[n.input[2]] for n in g.node
                   if n.op_type == "QuantizeLinear" and n.input[2] in zero_points
                   and not n.name.endswith("_convert_QuantizeLinear")}
    assert all(activations[t] == TensorProto.UINT16 for t in wide if t in activations)
    assert sum(v == TensorProto.UINT8 for v in activations.values()) > 50  # the backbone


def test_ddrnet_compiles_to_one_htp_node_with_confidence(ddrnet: dict) -> None:
    model = ddrnet["ctx"].model
    assert [n.op_type for n in onnx.load(str(model), load_external_data=False).graph.node] \
        == ["EPContext"]
    assert _io(model) == ([("image", TensorProto.UINT8)],
                          [("labels", TensorProto.UINT8), ("confidence", TensorProto.UINT8)])
    htp = InferenceEngine(model, provider="qnn")
    qdq = InferenceEngine(ddrnet["qdq"], provider="cpu")
    x = ddrnet["calib"][0]
    a, b = htp.run(x), qdq.run(x)
    # an untrained net has near-tied logits everywhere; the trained-model figure is >= 99%
    assert (a.labels == b.labels).mean() >= 0.95  # measured 0.9727
    # the HTP's 8-bit softmax differs from the CPU's QDQ softmax by a few levels (measured 7/255)
    assert np.abs(a.confidence.astype(int) - b.confidence).mean() <= 12.0
