"""``offroad export onnx``: a training checkpoint -> the deploy ONNX graph (opset 17).

Graph (the deploy contract of :mod:`offroad_training.contract`)::

    image uint8 (1, H, W, 3) RGB -> Cast -> x / 255 -> Transpose -> (x - mean) / std
      -> DDRNet23-slim (BN folded into the convs) -> logits at 1/8 (1, C, H/8, W/8)
      -> upsample to (H, W) -> ArgMax -> Cast uint8 -> ``labels`` (1, H, W)
                                      -> Softmax -> max -> x 255 -> Cast -> ``confidence``

``kind="logits"`` stops after the upsampling and outputs float32 ``logits`` (1, C, H, W) for
evaluation (the engine takes the ArgMax on the CPU).

Upsampling (``upsample``):

``bilinear`` (default)
    logits resized bilinearly (``align_corners=False``, as in training and in the evaluator of
    the reference implementation), then ArgMax at full resolution.
``nearest``
    ArgMax at 1/8 then nearest upsampling. Implemented as a nearest resize of the *logits*
    followed by ArgMax: the ArgMax of a replicated pixel is the replicated ArgMax, so the labels
    are identical, and the graph keeps only ops the HTP runs on quantised tensors.

Decision (measured, see docs/deployment.md): ``bilinear``; it scores higher mIoU on the
synthetic world and the extra full-resolution ArgMax is cheap on the HTP.

Batch norm is folded into the preceding convolution by the exporter (eval mode) and constants
are folded (torch's exporter, then ``onnxscript.optimizer`` so the resize sizes are constants);
the export fails if a Conv -> BatchNormalization pair survives. The pre-activation BNs of DAPPM
and the segment heads (BN -> ReLU -> Conv) have no conv to fold into and stay (the HTP runs them
as per-channel scale/offset). The contract (classes, palette, input size, normalisation,
provenance) goes into ``metadata_props``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from offroad_training.contract import (
    CONFIDENCE_OUTPUT,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_NAME,
    LABELS_OUTPUT,
    LOGITS_OUTPUT,
    ModelContract,
    write_contract,
)

OPSET = 17
UPSAMPLE_MODES = ("bilinear", "nearest")
KINDS = ("labels", "logits")


class ExportError(RuntimeError):
    """The checkpoint cannot be exported, or the exported graph breaks the deploy contract."""


def deploy_module(model: Any, height: int, width: int, *, kind: str = "labels",
                  upsample: str = "bilinear", confidence: bool = False,
                  mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD) -> Any:
    """Wrap a DDRNet (eval mode) into the deploy graph as a ``torch.nn.Module``.

    Input uint8 (1, H, W, 3); output ``labels`` uint8 (1, H, W) (plus ``confidence``) or
    ``logits`` float32 (1, C, H, W).
    """
    import torch
    import torch.nn.functional as F  # noqa: N812 (conventional name)

    if kind not in KINDS:
        raise ExportError(f"kind {kind!r} is not one of {KINDS}")
    if upsample not in UPSAMPLE_MODES:
        raise ExportError(f"upsample {upsample!r} is not one of {UPSAMPLE_MODES}")
    if height % 8 or width % 8:
        raise ExportError(f"input size {width}x{height} must be a multiple of 8 (DDRNet output "
                          "stride); 640x544 and 320x272 are")

    class Deploy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32)
                                 .view(1, 3, 1, 1))

        def forward(self, image: torch.Tensor) -> Any:
            x = (image.to(torch.float32) * (1.0 / 255.0)).permute(0, 3, 1, 2)
            logits = self.net((x - self.mean) * self.inv_std)
            if upsample == "bilinear":
                logits = F.interpolate(logits, size=(height, width), mode="bilinear",
                                       align_corners=False)
            else:
                logits = F.interpolate(logits, size=(height, width), mode="nearest")
            if kind == "logits":
                return logits
            labels = torch.argmax(logits, dim=1).to(torch.uint8)
            if not confidence:
                return labels
            prob = torch.softmax(logits, dim=1).amax(dim=1)
            return labels, (prob * 255.0 + 0.5).to(torch.uint8)

    return Deploy().eval()


def export_model(model: Any, out: str | Path, *, height: int = DEFAULT_HEIGHT,
                 width: int = DEFAULT_WIDTH, kind: str = "labels", upsample: str = "bilinear",
                 confidence: bool = False, contract: ModelContract | None = None,
                 producer: dict[str, Any] | None = None) -> Path:
    """Export ``model`` (a DDRNet in eval mode) to ``out`` atomically and return the path.

    ``contract`` (optional) supplies class names, palette, normalisation and identity; its
    size/output fields are replaced by the arguments. ``producer`` is recorded in the metadata.
    """
    import onnx
    import onnxscript.optimizer
    import torch

    from offroad_training.atomic import atomic_write_bytes
    from offroad_training.provenance import provenance

    base = contract or ModelContract()
    num_classes = int(model.num_classes)
    if num_classes != base.num_classes:
        raise ExportError(f"the model predicts {num_classes} classes, the contract names "
                          f"{base.num_classes} ({', '.join(base.class_names)})")
    wrapper = deploy_module(model.eval(), height, width, kind=kind, upsample=upsample,
                            confidence=confidence, mean=base.mean, std=base.std)
    outputs = [LOGITS_OUTPUT] if kind == "logits" else (
        [LABELS_OUTPUT, CONFIDENCE_OUTPUT] if confidence else [LABELS_OUTPUT])
    dummy = torch.zeros((1, height, width, 3), dtype=torch.uint8)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) folds eval-mode BN into the convs; torch
        # flags it as legacy.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapper, (dummy,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=outputs,
                          do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)
    # Static shapes: fold the Shape/Gather/Concat chains of the resizes into constants.
    onnx_model = onnxscript.optimizer.optimize(onnx.load_from_string(buffer.getvalue()))
    onnx_model = onnx.shape_inference.infer_shapes(onnx_model, strict_mode=True)
    unfolded = _conv_bn_pairs(onnx_model)
    if unfolded:
        raise ExportError(f"batch norm not folded into its convolution: {unfolded[:5]}")
    meta = {**(producer or {}), "upsample": upsample, "export": provenance()}
    final = replace(base, height=height, width=width, output_kind=kind,
                    has_confidence=confidence and kind == "labels",
                    producer={**base.producer, **meta}, qnn=None)
    write_contract(onnx_model, final)
    onnx.checker.check_model(onnx_model, full_check=True)
    return atomic_write_bytes(out, onnx_model.SerializeToString())


def _conv_bn_pairs(onnx_model: Any) -> list[str]:
    """Names of BatchNormalization nodes that directly follow a Conv (should have been folded).

    DDRNet's pre-activation units (DAPPM, segment heads: BN -> ReLU -> Conv) have no preceding
    conv to fold into; they stay as per-channel BatchNormalization, which the HTP runs natively.
    """
    producers = {out: node for node in onnx_model.graph.node for out in node.output}
    return [node.name for node in onnx_model.graph.node
            if node.op_type == "BatchNormalization"
            and getattr(producers.get(node.input[0]), "op_type", None) == "Conv"]


def export_checkpoint(checkpoint: str | Path, out: str | Path, **kwargs: Any) -> Path:
    """Load a training checkpoint (``best_model.pth``/``last.pth``) and export it (see above)."""
    from offroad_training.model.ddrnet import load_checkpoint

    model, config = load_checkpoint(checkpoint)
    producer = {"checkpoint": str(checkpoint),
                "train_config": {k: v for k, v in config.items()
                                 if isinstance(v, str | int | float | bool | None)}}
    return export_model(model, out, producer={**producer, **kwargs.pop("producer", {})},
                        **kwargs)


def torch_logits(model: Any, rgb: np.ndarray, upsample: str = "bilinear") -> np.ndarray:
    """Reference logits (C, H, W) of ``model`` for one uint8 RGB image, computed by torch."""
    import torch

    height, width = rgb.shape[:2]
    wrapper = deploy_module(model.eval(), height, width, kind="logits", upsample=upsample)
    with torch.no_grad():
        return wrapper(torch.from_numpy(np.ascontiguousarray(rgb))[None])[0].numpy()
