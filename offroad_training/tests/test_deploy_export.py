"""Export: torch vs ONNX parity, deploy-graph contract, upsampling modes, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from offroad_core.contract import read_contract
from offroad_core.engine import InferenceEngine
from offroad_training.cli import main
from offroad_training.deploy.export import ExportError, export_model, torch_logits
from offroad_training.model.ddrnet import DDRNet23Slim

H, W = 136, 160


def _model(seed: int = 0) -> DDRNet23Slim:
    """A DDRNet with non-trivial BN statistics and logits of a trained model's magnitude."""
    torch.manual_seed(seed)
    model = DDRNet23Slim(num_classes=7).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    with torch.no_grad():
        model.final_layer.conv2.weight.mul_(0.02)
    return model


def _images(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        # smooth colour fields with noise: closer to a photo than white noise
        base = rng.integers(0, 256, (H // 8, W // 8, 3)).astype(np.float32)
        img = np.kron(base, np.ones((8, 8, 1))) + rng.normal(0, 12, (H, W, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[DDRNet23Slim, Path, Path]:
    tmp = tmp_path_factory.mktemp("export")
    model = _model()
    logits = export_model(model, tmp / "logits.onnx", height=H, width=W, kind="logits")
    labels = export_model(model, tmp / "labels.onnx", height=H, width=W, confidence=True)
    return model, logits, labels


def test_torch_onnx_parity(exported: tuple[DDRNet23Slim, Path, Path]) -> None:
    model, logits_path, labels_path = exported
    logits_engine = InferenceEngine(logits_path, provider="cpu")
    labels_engine = InferenceEngine(labels_path, provider="cpu")
    worst, same, total = 0.0, 0, 0
    for rgb in _images():
        ref = torch_logits(model, rgb)
        out = logits_engine.run(rgb)
        worst = max(worst, float(np.abs(out.logits - ref).max()))
        labels = labels_engine.run(rgb).labels
        same += int((labels == ref.argmax(0)).sum())
        total += labels.size
    print(f"torch vs ONNX FP32: logits max abs diff {worst:.2e}, labels identical "
          f"{100 * same / total:.3f}%")
    # measured 1.6e-5 and 100 %: the same FP32 maths; a logit difference that small flips
    # only exact near-ties, for which 0.1 % of the pixels (65) is left
    assert worst <= 1e-3
    assert same / total >= 0.999


def test_deploy_graph_contract(exported: tuple[DDRNet23Slim, Path, Path]) -> None:
    _, logits_path, labels_path = exported
    graph = onnx.load(str(labels_path))
    assert graph.opset_import[0].version == 17
    (inp,) = graph.graph.input
    assert inp.name == "image" and inp.type.tensor_type.elem_type == TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, H, W, 3]
    outs = {o.name: o.type.tensor_type for o in graph.graph.output}
    assert set(outs) == {"labels", "confidence"}
    for t in outs.values():
        assert t.elem_type == TensorProto.UINT8
        assert [d.dim_value for d in t.shape.dim] == [1, H, W]
    ops = [n.op_type for n in graph.graph.node]
    # static graph: no shape arithmetic left; every BN folded (into its conv, or a diagonal 1x1
    # conv; DAPPM's AvgPool + BN into one depthwise conv), which the quantiser needs
    assert not {"Shape", "Gather", "Unsqueeze"} & set(ops)
    assert not {"BatchNormalization", "AveragePool"} & set(ops)
    affine = [n for n in graph.graph.node if n.name.endswith("/affine")]
    kernels = sorted((dict((a.name, tuple(a.ints)) for a in n.attribute)["kernel_shape"],
                      next(a.i for a in n.attribute if a.name == "group") > 1) for n in affine)
    assert kernels == [((1, 1), False)] * 9 + [((5, 5), True), ((9, 9), True), ((17, 17), True)]
    resizes = [n for n in graph.graph.node if n.op_type == "Resize"]
    assert all(dict((a.name, a.s) for a in n.attribute).get(
        "coordinate_transformation_mode") != b"align_corners" for n in resizes)
    contract = read_contract(labels_path)
    assert (contract.height, contract.width, contract.output_kind) == (H, W, "labels")
    assert contract.has_confidence and contract.producer["upsample"] == "bilinear"
    assert read_contract(logits_path).output_kind == "logits"


def test_confidence_is_max_softmax(exported: tuple[DDRNet23Slim, Path, Path]) -> None:
    model, _, labels_path = exported
    rgb = _images(1)[0]
    ref = torch.softmax(torch.from_numpy(torch_logits(model, rgb)), 0).amax(0).numpy()
    conf = InferenceEngine(labels_path, provider="cpu").run(rgb).confidence
    assert np.abs(conf.astype(np.float32) - ref * 255).max() <= 1.0  # uint8 rounding: 0.50


def test_nearest_is_argmax_at_one_eighth(tmp_path: Path) -> None:
    model = _model(3)
    path = export_model(model, tmp_path / "nearest.onnx", height=H, width=W, upsample="nearest")
    rgb = _images(1)[0]
    x = torch.from_numpy(rgb)[None].float().div(255).permute(0, 3, 1, 2)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    with torch.no_grad():
        low = model((x - mean) / std)[0].argmax(0).numpy()
    expected = np.repeat(np.repeat(low, 8, axis=0), 8, axis=1)
    got = InferenceEngine(path, provider="cpu").run(rgb).labels
    assert (got == expected).mean() >= 0.999  # measured 1.0; near-ties only, as above


def test_bad_size_and_class_count(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="multiple of 8"):
        export_model(_model(), tmp_path / "x.onnx", height=130, width=160)
    with pytest.raises(ExportError, match="classes"):
        export_model(DDRNet23Slim(num_classes=5).eval(), tmp_path / "y.onnx", height=H, width=W)


def test_cli_export_size_defaults_to_the_training_size(tmp_path: Path, caplog) -> None:
    ckpt = tmp_path / "best_model.pth"
    torch.save({"model": _model().state_dict(),
                "config": {"crop_height": 72, "crop_width": 96}}, ckpt)
    assert main(["export", "onnx", "--checkpoint", str(ckpt), "--out",
                 str(tmp_path / "a.onnx")]) == 0
    contract = read_contract(tmp_path / "a.onnx")
    assert (contract.height, contract.width) == (72, 96)
    assert "trained at" not in caplog.text
    assert main(["export", "onnx", "--checkpoint", str(ckpt), "--out", str(tmp_path / "b.onnx"),
                 "--height", "64", "--width", "96"]) == 0
    assert read_contract(tmp_path / "b.onnx").height == 64
    assert "exporting" in caplog.text and "at 96x64 (WxH) although it was trained at 96x72" \
        in caplog.text


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model()
    ckpt = tmp_path / "best_model.pth"
    torch.save({"model": model.state_dict(), "config": {"crop_height": 64}}, ckpt)
    out = tmp_path / "model.onnx"
    assert main(["export", "onnx", "--checkpoint", str(ckpt), "--out", str(out),
                 "--height", str(H), "--width", str(W)]) == 0
    contract = read_contract(out)
    assert contract.producer["checkpoint"] == str(ckpt)
    assert contract.producer["train_config"] == {"crop_height": 64}
    rgb = _images(1)[0]
    assert (InferenceEngine(out, provider="cpu").run(rgb).labels
            == torch_logits(model, rgb).argmax(0)).mean() >= 0.999  # measured 1.0 (as above)
    assert main(["export", "onnx", "--checkpoint", str(tmp_path / "missing.pth"),
                 "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
