"""``offroad compile``: QDQ ONNX -> QNN HTP context binary (EPContext model + ``.bin``).

Compiled by the onnxruntime-qnn plugin EP (the x86_64 wheel compiles for the real HTP; see
docs/deployment.md) with:

* provider options ``backend_path`` = the HTP backend, ``htp_arch`` (73 for the QCS9075),
  ``soc_model`` (77), ``htp_graph_finalization_optimization_mode`` = 3;
* session entries ``ep.context_enable=1``, ``ep.context_file_path``, ``ep.context_embed_mode=0``
  (the binary is a separate ``.bin`` next to the ``.onnx``) and
  ``session.disable_cpu_ep_fallback=1``: an op the HTP cannot run fails the build.

The result is checked: exactly one ``EPContext`` node, input ``image`` uint8 (1, H, W, 3), output
``labels`` uint8 (1, H, W) (plus ``confidence`` uint8). Its metadata is the source model's
contract plus :class:`~offroad_core.contract.QnnInfo` (onnxruntime-qnn and QAIRT versions,
SoC model, HTP arch, precision, sha256 of the ``.bin``). Both files are written atomically, the
``.bin`` first, so a reader never sees an ``.onnx`` pointing at a missing or partial binary.

``precision="fp16"`` compiles the FP32 deploy graph (not a QDQ one) with
``enable_htp_fp16_precision=1``: the float alternative to compare on the robot.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from offroad_core.contract import (
    CONFIDENCE_OUTPUT,
    INPUT_NAME,
    LABELS_OUTPUT,
    QnnInfo,
    read_contract,
    write_contract,
)

LOG = logging.getLogger(__name__)

DEFAULT_SOC_MODEL = 77  # QCS9075 shares the QCS9100 id
DEFAULT_HTP_ARCH = 73
COMPILE_PRECISIONS = ("int8", "int8+int16", "int16", "fp16")
_QUANT_PRECISION = {"w8a8": "int8", "w8a8-mixed": "int8+int16", "w8a16": "int16"}


class CompileError(RuntimeError):
    """The model does not compile to a single HTP context binary; the message says why."""


@dataclass(frozen=True)
class CompileResult:
    """What :func:`compile_context` wrote."""

    model: Path
    binary: Path
    qnn: QnnInfo
    seconds: float


def _precision_of(model: Any) -> str:
    """``int8``/``int8+int16``/``int16`` of a QDQ graph, ``fp16`` for a float graph.

    Taken from the quantisation record ``offroad quantize`` writes (``w8a8`` -> ``int8``,
    ``w8a8-mixed`` -> ``int8+int16``, ``w8a16`` -> ``int16``), else from the activation
    zero-point types.
    """
    import json

    from onnx import TensorProto

    if not any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        return "fp16"
    producer = next((p.value for p in model.metadata_props if p.key == "offroad.producer"), "")
    try:
        recorded = json.loads(producer).get("quantization", {}).get("precision")
    except (ValueError, AttributeError):
        recorded = None
    if recorded in _QUANT_PRECISION:
        return _QUANT_PRECISION[recorded]
    types = {init.data_type for init in model.graph.initializer
             if init.name.endswith("_zero_point")}
    return "int16" if types & {TensorProto.UINT16, TensorProto.INT16} else "int8"


def qnn_provider_options(soc_model: int, htp_arch: int, fp16: bool) -> dict[str, str]:
    """Provider options of the compile session (HTP backend for the target SoC)."""
    import onnxruntime_qnn

    options = {
        "backend_path": onnxruntime_qnn.get_qnn_htp_path(),
        "htp_arch": str(htp_arch),
        "soc_model": str(soc_model),
        "htp_graph_finalization_optimization_mode": "3",
    }
    if fp16:
        options["enable_htp_fp16_precision"] = "1"
    return options


def check_context_model(path: str | Path) -> Path:
    """Check an EPContext model: one EPContext node, uint8 I/O; return its ``.bin`` path."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    if ops != ["EPContext"]:
        raise CompileError(f"{path}: the compiled graph is {ops}, not a single EPContext node: "
                           "part of the model would run outside the HTP")
    io = [*model.graph.input, *model.graph.output]
    bad = [v.name for v in io if v.type.tensor_type.elem_type != TensorProto.UINT8]
    if bad:
        raise CompileError(f"{path}: graph I/O {bad} is not uint8 (expected integer I/O: "
                           "quantise with `offroad quantize`, which fixes the input at 1/255)")
    names = [v.name for v in model.graph.input]
    outs = [v.name for v in model.graph.output]
    if names != [INPUT_NAME] or LABELS_OUTPUT not in outs or \
            not set(outs) <= {LABELS_OUTPUT, CONFIDENCE_OUTPUT}:
        raise CompileError(f"{path}: inputs {names}, outputs {outs}; expected {INPUT_NAME!r} -> "
                           f"{LABELS_OUTPUT!r} (+ {CONFIDENCE_OUTPUT!r})")
    attrs = {a.name: a for a in model.graph.node[0].attribute}
    if attrs["embed_mode"].i != 0:
        raise CompileError(f"{path}: context binary embedded (embed_mode=1); expected a .bin")
    binary = Path(path).parent / attrs["ep_cache_context"].s.decode()
    if not binary.is_file():
        raise CompileError(f"{path}: context binary {binary} missing")
    return binary


def compile_context(source: str | Path, out: str | Path, *, soc_model: int = DEFAULT_SOC_MODEL,
                    htp_arch: int = DEFAULT_HTP_ARCH, precision: str | None = None
                    ) -> CompileResult:
    """Compile ``source`` (QDQ ONNX, or FP32 with ``precision="fp16"``) to ``out`` + ``.bin``.

    Raises :class:`CompileError` when onnxruntime-qnn is missing, the HTP rejects an op or the
    result is not a single EPContext node with uint8 I/O.
    """
    import time

    import onnx
    import onnxruntime as ort

    from offroad_core.atomic import atomic_path, atomic_write_bytes
    from offroad_core.engine import (
        EngineError,
        _qnn_devices,
        installed_qnn_versions,
        sha256_file,
    )

    source, out = Path(source), Path(out)
    versions = installed_qnn_versions()
    if versions is None:
        raise CompileError("onnxruntime-qnn is not installed; it compiles the context binary "
                           "(pip install the version pinned in requirements/python.txt)")
    contract = read_contract(source)
    if contract.output_kind != "labels":
        raise CompileError(f"{source}: compile the deploy graph (output labels), not "
                           f"{contract.output_kind}")
    detected = _precision_of(onnx.load(str(source), load_external_data=False))
    if precision is None and detected == "fp16":
        raise CompileError(f"{source} is a float graph: quantise it (`offroad quantize`) to get a "
                           "QDQ model, or ask for an FP16 context binary explicitly (--fp16)")
    precision = precision or detected
    if precision not in COMPILE_PRECISIONS:
        raise CompileError(f"precision {precision!r} is not one of {COMPILE_PRECISIONS}")
    if (precision == "fp16") != (detected == "fp16"):
        raise CompileError(f"{source} is a {detected} graph; precision {precision} needs "
                           f"{'the FP32 export' if precision == 'fp16' else 'a QDQ model'}")
    import onnxruntime_qnn

    try:
        devices = _qnn_devices(ort, onnxruntime_qnn)
    except EngineError as exc:
        raise CompileError(str(exc)) from exc
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".offroad_compile_", dir=out.parent) as tmp:
        tmp_model = Path(tmp) / out.name
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        options.add_session_config_entry("ep.context_enable", "1")
        options.add_session_config_entry("ep.context_file_path", str(tmp_model))
        options.add_session_config_entry("ep.context_embed_mode", "0")
        options.add_provider_for_devices(
            devices, qnn_provider_options(soc_model, htp_arch, precision == "fp16"))
        try:
            ort.InferenceSession(str(source), options)
        except Exception as exc:
            raise CompileError(
                f"{source}: QNN HTP compilation failed (CPU fallback disabled, so any op the "
                f"HTP cannot run is an error): {exc}") from exc
        if not tmp_model.is_file():
            raise CompileError(f"{source}: onnxruntime-qnn wrote no context model")
        tmp_bin = check_context_model(tmp_model)
        seconds = time.perf_counter() - start
        qnn = QnnInfo(onnxruntime_qnn_version=versions[0], qairt_version=versions[1],
                      soc_model=soc_model, htp_arch=htp_arch, precision=precision,
                      binary_sha256=sha256_file(tmp_bin))
        model = onnx.load(str(tmp_model), load_external_data=False)
        binary_name = f"{out.stem}.bin"
        for attr in model.graph.node[0].attribute:
            if attr.name == "ep_cache_context":
                attr.s = binary_name.encode()
        producer = {**contract.producer, "compile": {
            "source": str(source), "seconds": round(seconds, 1),
            "provider_options": {k: v for k, v in qnn_provider_options(
                soc_model, htp_arch, precision == "fp16").items() if k != "backend_path"}}}
        write_contract(model, replace(contract, producer=producer).with_qnn(qnn))
        binary = out.parent / binary_name
        with atomic_path(binary) as tmp_dst:
            shutil.copyfile(tmp_bin, tmp_dst)
        atomic_write_bytes(out, model.SerializeToString())
    check_context_model(out)
    LOG.info("compiled %s -> %s + %s (%s, soc %d, htp v%d) in %.1f s", source, out, binary.name,
             precision, soc_model, htp_arch, seconds)
    return CompileResult(model=out, binary=binary, qnn=qnn, seconds=seconds)

