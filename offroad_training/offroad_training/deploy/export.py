"""``offroad export onnx``: a training checkpoint -> the deploy ONNX graph (opset 17).

Graph (the deploy contract of :mod:`offroad_core.contract`)::

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
and the segment heads (BN -> ReLU -> Conv) have no conv to fold into: each becomes a 1x1
``Conv`` with the diagonal weight ``gamma / sqrt(var + eps)`` and bias ``beta - mean * weight``,
the same function. Why: onnxruntime's QDQ quantiser treats a ``BatchNormalization`` like a conv
whose weight is ``gamma`` (per-tensor, it cannot do per-channel on a 1-D tensor) and quantises
``beta`` at ``input_scale x gamma_scale`` while ``mean``/``var`` stay float; with the
``1 / sqrt(var)`` factor the quantised BN is off (biases round to 0). A conv gets int8
per-channel weights (one non-zero per output channel: exact) and an int32 bias like every other
conv. Not a depthwise conv: QAIRT 2.51's HTP compiler segfaults on a 16-bit depthwise 1x1 conv
(W8A16 and the mixed precision failed to build); a diagonal 1x1 conv costs C^2 MACs at 1/64 and
1/8 resolution, nothing next to the backbone. DAPPM's ``AveragePool -> BN`` pairs become one
depthwise k x k conv (weights ``W[c] / k^2``, the pool's stride/pads; compiles in 8 and 16 bits):
the quantiser gives a pool's output its *input's* scale and the pooled map is far smaller than
DAPPM's input, so in 8 bits it rounded to 0. The exported graph has no ``BatchNormalization``
and no ``AveragePool`` left. The contract (classes, palette, input size, normalisation,
provenance) goes into ``metadata_props``.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from offroad_core.contract import (
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
from offroad_core.exit_codes import CommandError
from offroad_training.outputs import check_output_file

LOG = logging.getLogger(__name__)
OPSET = 17
UPSAMPLE_MODES = ("bilinear", "nearest")
KINDS = ("labels", "logits")


class ExportError(CommandError, RuntimeError):
    """The checkpoint cannot be exported, or the exported graph breaks the deploy contract."""


def check_size(height: int, width: int) -> None:
    """Refuse an input size that is not a positive multiple of 8 (DDRNet's output stride)."""
    if height <= 0 or width <= 0 or height % 8 or width % 8:
        raise ExportError(f"input size {width}x{height} (WxH) must be a positive multiple of 8 "
                          "(DDRNet's output stride); 640x544 and 320x272 are")


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
    check_size(height, width)

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

    from offroad_core.atomic import atomic_write_bytes
    from offroad_core.provenance import provenance

    check_output_file(out)
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
    batchnorm_to_conv(onnx_model)
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


def batchnorm_to_conv(onnx_model: Any) -> int:
    """Replace every BatchNormalization (NCHW, inference) by the equal Conv.

    ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` is a 1x1 ``Conv(x, diag(W), B)`` with
    ``W[c] = gamma[c] / sqrt(var[c] + eps)`` and ``B[c] = beta[c] - mean[c] * W[c]``.
    When the BN's input is an ``AveragePool`` (k x k, zero padding counted, only consumer the
    BN), both become one depthwise k x k Conv with weights ``W[c] / k^2`` and the pool's
    stride/pads: the quantiser gives a pool's output its *input's* scale, and the pooled map
    is far smaller than DAPPM's input, so in 8 bits it rounded to 0; a conv's output gets its
    own calibrated range. Edits ``onnx_model`` in place; returns the number of BNs replaced.
    """
    from onnx import helper, numpy_helper

    graph = onnx_model.graph
    inits = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    replaced = 0
    for index, node in enumerate(list(graph.node)):
        if node.op_type != "BatchNormalization":
            continue
        try:
            gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64)
                                      for n in node.input[1:5])
        except KeyError as exc:
            raise ExportError(f"{node.name}: batch norm parameters are not constants") from exc
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        weight = gamma / np.sqrt(var + eps)
        bias = beta - mean * weight
        channels = weight.shape[0]
        source, attrs = node.input[0], {"kernel_shape": [1, 1]}
        pool = producers.get(source)
        if pool is not None and pool.op_type == "AveragePool" and consumers[source] == 1:
            pool_attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
            kernel = list(pool_attrs["kernel_shape"])
            exact = (not pool_attrs.get("ceil_mode", 0) and pool_attrs.get("auto_pad", b"NOTSET")
                     in (b"NOTSET", "NOTSET") and len(kernel) == 2
                     and (pool_attrs.get("count_include_pad", 0)
                          or not any(pool_attrs.get("pads", [0]))))
            if exact:
                weight = np.repeat(weight.reshape(channels, 1, 1, 1) / (kernel[0] * kernel[1]),
                                   kernel[0] * kernel[1]).reshape(channels, 1, *kernel)
                attrs = {"kernel_shape": kernel,
                         "strides": list(pool_attrs.get("strides", [1, 1])),
                         "pads": list(pool_attrs.get("pads", [0, 0, 0, 0]))}
                source = pool.input[0]
                graph.node.remove(pool)
        stem = node.name or f"bn_{index}"
        w_name, b_name = f"{stem}/dw_weight", f"{stem}/dw_bias"
        if attrs["kernel_shape"] == [1, 1]:
            kernel_weight, group = np.diag(weight).reshape(channels, channels, 1, 1), 1
        else:
            kernel_weight, group = weight.reshape(channels, 1, *attrs["kernel_shape"]), channels
        graph.initializer.extend([
            numpy_helper.from_array(kernel_weight.astype(np.float32), w_name),
            numpy_helper.from_array(bias.astype(np.float32), b_name)])
        conv = helper.make_node("Conv", [source, w_name, b_name], [node.output[0]],
                                name=f"{stem}/affine", group=group, **attrs)
        position = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(position, conv)
        replaced += 1
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return replaced


def export_checkpoint(checkpoint: str | Path, out: str | Path, *, height: int | None = None,
                      width: int | None = None, **kwargs: Any) -> Path:
    """Load a training checkpoint (``best_model.pth``/``last.pth``) and export it (see above).

    ``height``/``width`` default to the checkpoint's training size (``crop_height`` x
    ``crop_width`` of its config; 544x640 if it records none); another size is exported as
    asked, with a warning (the model was not trained at it).
    """
    from offroad_training.model import checkpoint as checkpoints

    if height is not None or width is not None:
        check_size(8 if height is None else height, 8 if width is None else width)
    check_output_file(out)
    model, config = checkpoints.load_checkpoint(checkpoint)
    trained = (config.get("crop_height"), config.get("crop_width"))
    size = (int(height or trained[0] or DEFAULT_HEIGHT), int(width or trained[1] or DEFAULT_WIDTH))
    check_size(*size)
    if None not in trained and size != (int(trained[0]), int(trained[1])):
        LOG.warning("exporting %s at %dx%d (WxH) although it was trained at %dx%d: accuracy at "
                    "another size is not what training measured", checkpoint, size[1], size[0],
                    int(trained[1]), int(trained[0]))
    producer = {"checkpoint": str(checkpoint),
                "train_config": {k: v for k, v in config.items()
                                 if isinstance(v, str | int | float | bool | None)}}
    return export_model(model, out, height=size[0], width=size[1],
                        producer={**producer, **kwargs.pop("producer", {})}, **kwargs)


def torch_logits(model: Any, rgb: np.ndarray, upsample: str = "bilinear") -> np.ndarray:
    """Reference logits (C, H, W) of ``model`` for one uint8 RGB image, computed by torch."""
    import torch

    height, width = rgb.shape[:2]
    wrapper = deploy_module(model.eval(), height, width, kind="logits", upsample=upsample)
    with torch.no_grad():
        return wrapper(torch.from_numpy(np.ascontiguousarray(rgb))[None])[0].numpy()
