"""Tiny ONNX models that follow the deploy contract, for tests and benchmarks (and
:func:`png_bomb`, the decompression-bomb image of the robustness tests, and
:func:`stop_process` and :func:`spin_until`, how the DDS tests stop a node they started and
wait for what it sends).

Not a segmentation network: a 1x1 convolution over the normalised RGB values, so every pixel's
class is a deterministic function of its colour. Same interface as the real exported model
(see :mod:`offroad_core.contract`): input ``image`` uint8 (1, H, W, 3) with the
normalisation inside the graph, output ``labels`` uint8 (1, H, W) from ArgMax -> Cast, optional
``confidence`` uint8 (max softmax x 255), or ``logits`` float32 (1, C, H, W).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from offroad_core.contract import (
    CONFIDENCE_OUTPUT,
    INPUT_NAME,
    LABELS_OUTPUT,
    LOGITS_OUTPUT,
    ModelContract,
    write_contract,
)

OPSET = 17


def build_tiny_model(path: str | Path, height: int = 64, width: int = 80, *,
                     output_kind: str = "labels", confidence: bool = False, seed: int = 0,
                     contract: ModelContract | None = None) -> Path:
    """Write a tiny deploy-contract model to ``path`` and return the path.

    ``contract`` overrides the metadata written (to build deliberately mismatching models);
    by default it is a :class:`ModelContract` describing exactly this graph.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    base = ModelContract(height=height, width=width, output_kind=output_kind,
                         has_confidence=confidence and output_kind == "labels",
                         model_id="tiny_test_model")
    meta = contract or base
    classes = base.num_classes
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), "scale"),
        numpy_helper.from_array(np.array(base.mean, np.float32), "mean"),
        numpy_helper.from_array(np.array(base.std, np.float32), "std"),
        numpy_helper.from_array(rng.normal(size=(classes, 3, 1, 1)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(scale=0.3, size=classes).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["x_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x_f", "scale"], ["x_01"]),
        helper.make_node("Sub", ["x_01", "mean"], ["x_c"]),
        helper.make_node("Div", ["x_c", "std"], ["x_n"]),
        helper.make_node("Transpose", ["x_n"], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x_nchw", "w", "b"],
                         [LOGITS_OUTPUT if output_kind == "logits" else "scores"]),
    ]
    out_shape = [1, height, width]
    if output_kind == "logits":
        outputs = [helper.make_tensor_value_info(LOGITS_OUTPUT, TensorProto.FLOAT,
                                                 [1, classes, height, width])]
    else:
        nodes += [
            helper.make_node("ArgMax", ["scores"], ["ids"], axis=1, keepdims=0),
            helper.make_node("Cast", ["ids"], [LABELS_OUTPUT], to=TensorProto.UINT8),
        ]
        outputs = [helper.make_tensor_value_info(LABELS_OUTPUT, TensorProto.UINT8, out_shape)]
        if confidence:
            inits.append(numpy_helper.from_array(np.array(255.0, np.float32), "c255"))
            nodes += [
                helper.make_node("Softmax", ["scores"], ["prob"], axis=1),
                helper.make_node("ReduceMax", ["prob"], ["pmax"], axes=[1], keepdims=0),
                helper.make_node("Mul", ["pmax", "c255"], ["pmax255"]),
                helper.make_node("Cast", ["pmax255"], [CONFIDENCE_OUTPUT], to=TensorProto.UINT8),
            ]
            outputs.append(helper.make_tensor_value_info(CONFIDENCE_OUTPUT, TensorProto.UINT8,
                                                         out_shape))
    graph = helper.make_graph(
        nodes, "tiny_offroad_segmentation",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [1, height, width, 3])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    write_contract(model, meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from offroad_core.atomic import atomic_write_bytes

    atomic_write_bytes(path, model.SerializeToString())
    onnx.checker.check_model(str(path))
    return path


def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of zeros: ~420 KB for 12000x12000 (432 MB decoded; ~3 s to build)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    compressor, row = zlib.compressobj(9), bytes(1 + 3 * width)  # filter byte + pixels
    idat = b"".join(compressor.compress(row * 64) for _ in range(height // 64))
    idat += compressor.compress(row * (height % 64)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> str:
    """Stop a node started with ``stdout=PIPE, text=True`` by SIGINT (kill after ``timeout``
    seconds); return everything it printed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read()


def spin_until(executor: Any, seconds: float, until: Callable[[], bool] | None = None,
               step: float = 0.01) -> bool:
    """Spin an rclpy executor for up to ``seconds``: True as soon as ``until()`` holds (True at
    the end when there is no ``until``), False when time ran out."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=step)
        if until is not None and until():
            return True
    return until is None
