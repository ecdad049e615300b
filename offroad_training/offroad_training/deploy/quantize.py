"""``offroad quantize``: FP32 deploy ONNX -> QDQ ONNX for the QNN HTP (W8A8 default, W8A16).

Uses onnxruntime's QNN quantisation configuration
(``onnxruntime.quantization.execution_providers.qnn.get_qnn_qdq_config``) and
``quantize_static`` (QDQ format, MinMax calibration, per-channel weights).

Integer I/O (why this module edits the graph around the quantiser):

* The deploy graph's ``image`` is uint8 and goes ``Cast -> x / 255``. For calibration the
  ``Cast`` and the ``/ 255`` are removed and the graph input becomes the float image in
  [0, 1]; its quantisation is fixed at scale 1/255, zero point 0 (uint8). After quantisation
  the input ``QuantizeLinear`` is removed and ``image`` is uint8 again feeding the
  ``DequantizeLinear`` directly: bit-for-bit the deployment input, no quantise work on the CPU.
* ``labels`` stays ``ArgMax -> Cast(uint8)``; the QNN EP runs both on the HTP.
* ``confidence`` (when present): the graph's ``Softmax -> ReduceMax`` output is quantised at
  fixed scale 1/255, zero point 0 (uint8) and that quantised tensor *is* the output (the float
  ``x 255 -> Cast`` tail is dropped): ``round(p x 255)``, as the float graph computes.

Calibration: a seeded random subset of ``num`` images of a dataset (``.ids``, ``.load(id)``,
e.g. ``data.unified.UnifiedDataset(root, "train")``), resized exactly as in deployment
(:func:`offroad_core.imaging.resize_to_model`).

Precision (weights always int8 symmetric per-channel; graph I/O always uint8):

``w8a8-mixed`` (default)
    uint8 activations in the backbone (stem, layer1-4, both branches up to 1/8 resolution:
    ~75 % of the activation tensors and nearly all the work) and uint16 in the low-resolution
    context path and the head: every tensor of DAPPM (nodes ``/net/spp/*``, at 1/64, i.e.
    ~0 cost), the merge ``Add`` that feeds the head and its upsampled DAPPM operand, and the
    segment head (the single-input chain ending in the ArgMax: its BN, 3x3 conv, classifier
    and the upsampled logits). onnxruntime's mixed-precision overrides insert the 8 <-> 16
    bit converts. Why: the logits carry the decision and their top-2 margins are small
    compared with their range, and DAPPM sums five branches into one 8-bit tensor.
``w8a8``
    uint8 activations everywhere.
``w8a16``
    uint16 activations everywhere (QDQ contrib ops below opset 21).

Measured label agreement with FP32 (synthetic world, docs/deployment.md): w8a8 97.3 %,
w8a8-mixed 98.9 %, w8a16 99.7 % (all with mIoU drops <= 0.1 point).
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from offroad_core.contract import (
    CONFIDENCE_OUTPUT,
    INPUT_NAME,
    ModelContract,
    read_contract,
    write_contract,
)

LOG = logging.getLogger(__name__)

PRECISIONS = ("w8a8-mixed", "w8a8", "w8a16")
DEFAULT_PRECISION = "w8a8-mixed"
_CONTEXT_PREFIX = "/net/spp/"  # DAPPM's nodes in graphs of `offroad export onnx`
_HEAD_OPS = ("Conv", "Relu", "Clip", "Resize")
_HEAD_MAX_NODES = 8
INPUT_SCALE = 1.0 / 255.0
_FLOAT_INPUT = "image_f01"
_CONF_FLOAT = "confidence_f01"


class QuantizeError(RuntimeError):
    """The model or the calibration data cannot be quantised; the message says why."""


class CalibrationSource(Protocol):
    """What calibration needs from a dataset (``UnifiedDataset`` has it)."""

    ids: list[str]

    def load(self, item_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(rgb uint8 (H, W, 3), labels uint8 (H, W))``."""
        ...


def calibration_ids(ids: Sequence[str], num: int, seed: int = 0) -> list[str]:
    """A seeded random subset of ``num`` ids (all of them, shuffled, if fewer exist)."""
    if not ids:
        raise QuantizeError("the calibration split has no images")
    pool = sorted(ids)
    random.Random(seed).shuffle(pool)
    return pool[:num]


def calibration_images(dataset: CalibrationSource, num: int, height: int, width: int,
                       seed: int = 0) -> list[np.ndarray]:
    """Load and resize (as deployment does) the seeded calibration subset; uint8 (H, W, 3)."""
    from offroad_core.imaging import resize_to_model

    return [resize_to_model(dataset.load(i)[0], width, height)
            for i in calibration_ids(dataset.ids, num, seed)]


class _Reader:
    """``CalibrationDataReader`` over uint8 images, fed as float [0, 1] NHWC."""

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self._images = list(images)
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._images):
            return None
        rgb = self._images[self._next]
        self._next += 1
        return {_FLOAT_INPUT: (rgb[None].astype(np.float32) * np.float32(INPUT_SCALE))}

    def rewind(self) -> None:
        self._next = 0


def _consumers(graph: Any, name: str) -> list[Any]:
    return [n for n in graph.node if name in n.input]


def _producer(graph: Any, name: str) -> Any | None:
    return next((n for n in graph.node if name in n.output), None)


def _const_value(graph: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    node = _producer(graph, name)
    if node is not None and node.op_type == "Constant":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def float_input_graph(model: Any) -> Any:
    """Copy of the deploy graph whose input is the float image in [0, 1] (for calibration).

    Removes ``image -> Cast -> Mul(1/255)``; raises :class:`QuantizeError` if the graph does
    not start that way (not exported by ``offroad export onnx``).
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    first = _consumers(graph, INPUT_NAME)
    cast = first[0] if len(first) == 1 and first[0].op_type == "Cast" else None
    nxt = _consumers(graph, cast.output[0]) if cast else []
    mul = nxt[0] if len(nxt) == 1 and nxt[0].op_type == "Mul" else None
    scale = None
    if mul is not None:
        other = mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0]
        scale = _const_value(graph, other)
    if mul is None or scale is None or not np.allclose(scale, INPUT_SCALE, rtol=1e-6):
        raise QuantizeError("the model does not start with image(uint8) -> Cast -> Mul(1/255); "
                            "quantise a graph written by `offroad export onnx` (kind labels)")
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == mul.output[0]:
                node.input[i] = _FLOAT_INPUT
    graph.node.remove(cast)
    graph.node.remove(mul)
    shape = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(_FLOAT_INPUT, TensorProto.FLOAT, shape))
    if any(o.name == CONFIDENCE_OUTPUT for o in graph.output):
        _float_confidence_tail(graph)
    for i, node in enumerate(graph.node):  # the mixed-precision (W8A16) fixer needs names
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    return model


def _float_confidence_tail(graph: Any) -> None:
    """Make the max-softmax (float [0, 1]) the confidence output; drop ``x 255 -> Cast``."""
    from onnx import TensorProto, helper

    reduce = next((n for n in graph.node if n.op_type == "ReduceMax"), None)
    if reduce is None:
        raise QuantizeError("confidence output without a ReduceMax(Softmax) in the graph")
    tail, frontier = [], list(_consumers(graph, reduce.output[0]))
    while frontier:
        node = frontier.pop()
        tail.append(node)
        frontier += [c for out in node.output for c in _consumers(graph, out)]
    for node in tail:
        graph.node.remove(node)
    reduce.output[0] = _CONF_FLOAT
    conf = next(o for o in graph.output if o.name == CONFIDENCE_OUTPUT)
    shape = [d.dim_value for d in conf.type.tensor_type.shape.dim]
    kept = [o for o in graph.output if o.name != CONFIDENCE_OUTPUT]
    del graph.output[:]
    graph.output.extend(kept)
    graph.output.append(helper.make_tensor_value_info(_CONF_FLOAT, TensorProto.FLOAT, shape))


def head_tensors(model: Any) -> list[str]:
    """Activation tensors of the segment head, from the ArgMax input backwards.

    Follows producers while they are ``Conv``/``Relu``/``Clip``/``Resize`` with exactly one
    non-constant input (at most 8 nodes): for DDRNet23-slim the upsampled logits, the
    classifier conv, the head's 3x3 conv, its ReLUs and its depthwise BN; it stops at the Add
    that merges DAPPM with the high-resolution branch. Empty if the graph has no ArgMax.
    """
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    argmax = next((n for n in graph.node if n.op_type == "ArgMax"), None)
    names: list[str] = []
    tensor = argmax.input[0] if argmax is not None else ""
    while tensor and len(names) < _HEAD_MAX_NODES:
        node = _producer(graph, tensor)
        if node is None or node.op_type not in _HEAD_OPS:
            break
        dynamic = [i for i in node.input if i and i not in constants]
        if len(dynamic) != 1:
            break
        names.append(tensor)
        tensor = dynamic[0]
    return names


def mixed_precision_tensors(model: Any) -> list[str]:
    """The uint16 tensors of ``w8a8-mixed``: head, merge ``Add`` + its DAPPM operand, DAPPM.

    A graph without DAPPM (not a DDRNet, e.g. the test models) gets only its head in 16 bits.
    """
    graph = model.graph
    head = head_tensors(model)
    context = [out for node in graph.node if node.name.startswith(_CONTEXT_PREFIX)
               for out in node.output]
    names = list(head)
    merge_input = _producer(graph, head[-1]).input[0] if head else ""
    merge = _producer(graph, merge_input) if merge_input else None
    if context and merge is not None and merge.op_type == "Add":
        names.append(merge_input)
        for operand in merge.input:
            node = _producer(graph, operand)
            if node is not None and node.op_type == "Resize" and node.input[0] in context:
                names.append(operand)
    return names + [c for c in context if c not in names]


def integer_io_graph(qdq: Any, height: int, width: int) -> Any:
    """Turn the calibrated QDQ graph's float input/confidence into uint8 graph I/O."""
    from onnx import TensorProto, helper

    graph = qdq.graph
    quant = [n for n in _consumers(graph, _FLOAT_INPUT)]
    if len(quant) != 1 or quant[0].op_type != "QuantizeLinear":
        raise QuantizeError(f"expected one QuantizeLinear on the input, found "
                            f"{[n.op_type for n in quant]}")
    q_in = quant[0]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == q_in.output[0]:
                node.input[i] = INPUT_NAME
    graph.node.remove(q_in)
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8,
                                                     [1, height, width, 3]))
    if any(o.name == _CONF_FLOAT for o in graph.output):
        dq = _producer(graph, _CONF_FLOAT)
        if dq is None or dq.op_type != "DequantizeLinear":
            raise QuantizeError("the confidence output is not quantised")
        q_out = _producer(graph, dq.input[0])
        graph.node.remove(dq)
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == q_out.output[0]:
                    node.output[i] = CONFIDENCE_OUTPUT
        kept = [o for o in graph.output if o.name != _CONF_FLOAT]
        del graph.output[:]
        graph.output.extend(kept)
        graph.output.append(helper.make_tensor_value_info(CONFIDENCE_OUTPUT, TensorProto.UINT8,
                                                          [1, height, width]))
    return qdq


def quantize_model(onnx_path: str | Path, images: Sequence[np.ndarray], out: str | Path, *,
                   precision: str = DEFAULT_PRECISION,
                   tensor_overrides: dict[str, list[dict[str, Any]]] | None = None,
                   producer: dict[str, Any] | None = None) -> Path:
    """Quantise the FP32 deploy graph at ``onnx_path`` with ``images`` and write ``out``.

    ``images`` are uint8 (H, W, 3) at the model size (see :func:`calibration_images`).
    ``tensor_overrides`` are extra onnxruntime ``TensorQuantOverrides`` (tensor name -> list of
    dicts), merged over the fixed input/confidence ranges. Returns ``out``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    from offroad_core.atomic import atomic_write_bytes
    from offroad_core.provenance import provenance

    if precision not in PRECISIONS:
        raise QuantizeError(f"precision {precision!r} is not one of {PRECISIONS}")
    contract = read_contract(onnx_path)
    if contract.output_kind != "labels" or contract.input_dtype != "uint8":
        raise QuantizeError(f"{onnx_path}: quantise the deploy graph (uint8 image -> labels), "
                            f"not a {contract.output_kind} graph")
    if not images:
        raise QuantizeError("no calibration images")
    for img in images:
        if img.shape != (contract.height, contract.width, 3) or img.dtype != np.uint8:
            raise QuantizeError(f"calibration image {img.dtype} {img.shape}; expected uint8 "
                                f"({contract.height}, {contract.width}, 3)")
    float_model = float_input_graph(onnx.load(str(onnx_path)))
    act = QuantType.QUInt16 if precision == "w8a16" else QuantType.QUInt8
    fixed = {"quant_type": QuantType.QUInt8, "scale": np.array(INPUT_SCALE, np.float32),
             "zero_point": np.array(0, np.uint8)}
    overrides: dict[str, list[dict[str, Any]]] = {_FLOAT_INPUT: [dict(fixed)]}
    wide = mixed_precision_tensors(float_model) if precision == "w8a8-mixed" else []
    overrides.update({name: [{"quant_type": QuantType.QUInt16}] for name in wide})
    if any(o.name == _CONF_FLOAT for o in float_model.graph.output):
        overrides[_CONF_FLOAT] = [dict(fixed)]
    overrides.update(tensor_overrides or {})
    with tempfile.TemporaryDirectory(prefix="offroad_quant_") as tmp:
        src = Path(tmp) / "float_input.onnx"
        onnx.save(float_model, str(src))
        config = get_qnn_qdq_config(
            str(src), _Reader(images), calibrate_method=CalibrationMethod.MinMax,
            activation_type=act, weight_type=QuantType.QInt8, per_channel=True,
            init_overrides=overrides)
        # The input Transpose is a "direct 8-bit" op that would otherwise stay float because
        # its input (the graph input) is not quantised yet when it is visited.
        config.extra_options["ForceQuantizeNoInputCheck"] = True
        dst = Path(tmp) / "qdq.onnx"
        quantize(str(src), str(dst), config)
        qdq = onnx.load(str(dst))
    qdq = integer_io_graph(qdq, contract.height, contract.width)
    meta = {**contract.producer, "quantization": {
        "precision": precision, "calibration_images": len(images), "method": "MinMax",
        "weights": "int8 symmetric per-channel",
        "activations": {"w8a8": "uint8", "w8a16": "uint16"}.get(
            precision, f"uint8, DAPPM + head uint16 ({len(wide)} tensors)"),
        "uint16_tensors": wide,
        "input": "uint8, scale 1/255, zero point 0", **(producer or {}),
        "provenance": provenance()}}
    write_contract(qdq, replace(contract, producer=meta))
    onnx.checker.check_model(qdq)
    LOG.info("quantised %s -> %s (%s, %d calibration images)", onnx_path, out, precision,
             len(images))
    return atomic_write_bytes(out, qdq.SerializeToString())


def quantize_dataset(onnx_path: str | Path, dataset: CalibrationSource, out: str | Path, *,
                     num: int = 300, seed: int = 0, precision: str = DEFAULT_PRECISION,
                     source: str = "") -> Path:
    """:func:`quantize_model` with a seeded subset of ``num`` images of ``dataset``."""
    contract: ModelContract = read_contract(onnx_path)
    images = calibration_images(dataset, num, contract.height, contract.width, seed)
    return quantize_model(onnx_path, images, out, precision=precision,
                          producer={"calibration_source": source, "calibration_seed": seed})

