"""The inference engine: one onnxruntime session over a model that follows the deploy contract.

Shared by the segmentation node, ``offroad eval``, the quantisation report and the bag tools,
so a frame gives the same labels offline and on the robot.

Providers:

``qnn``
    The onnxruntime-qnn plugin execution provider (docs/deployment.md): registered with
    ``ort.register_execution_provider_library``, devices from ``ort.get_ep_devices()``, added with
    ``SessionOptions.add_provider_for_devices``; HTP backend, ``htp_performance_mode`` from the
    ``performance_mode`` argument, ``session.disable_cpu_ep_fallback=1`` (an op the HTP cannot run
    is an error, never a silent CPU slowdown). Runs QNN context-binary models (an ``EPContext``
    node) and QDQ models (compiled by the EP at load time).
``cpu``
    ``CPUExecutionProvider`` for FP32 or QDQ ONNX graphs. Cannot run a context binary.
``auto``
    ``qnn`` when a real HTP is usable, otherwise ``cpu`` with a loud warning, once, through the
    ``warn`` callable (default: ``logging`` at WARNING; the node passes its ROS logger).
    Decision: on x86_64 the QNN wheel only *emulates* the HTP (correct numerics, far too slow
    for a camera), so ``auto`` counts the HTP as usable only on aarch64 with a FastRPC device
    node; a context-binary model has no CPU alternative, so ``auto`` runs it on the QNN EP
    (emulated if need be) and warns.

Input size, layout, classes and palette come from the model's contract
(:mod:`offroad_core.contract`); the graph's declared input/outputs are checked against it and
any mismatch raises :class:`EngineError` before the first frame.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offroad_core.contract import (
    CONFIDENCE_OUTPUT,
    INPUT_NAME,
    LABELS_OUTPUT,
    LOGITS_OUTPUT,
    ContractError,
    ModelContract,
)

LOG = logging.getLogger(__name__)

PROVIDERS = ("auto", "qnn", "cpu")
PERFORMANCE_MODES = (
    "burst", "sustained_high_performance", "high_performance", "balanced", "low_balanced",
    "low_power_saver", "power_saver", "high_power_saver", "extreme_power_saver", "default",
)
QNN_EP = "QNNExecutionProvider"
CPU_EP = "CPUExecutionProvider"
FASTRPC_DEVICES = ("/dev/fastrpc-cdsp", "/dev/fastrpc-cdsp-secure", "/dev/adsprpc-smd")
"""Device nodes through which the application processor reaches the Hexagon CDSP (HTP)."""

_ORT_DTYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32"}


class EngineError(RuntimeError):
    """The model cannot be loaded or run; the message names the cause and what to do."""


@dataclass(frozen=True)
class EngineOutput:
    """Result of one inference at model resolution."""

    labels: np.ndarray  # (H, W) uint8 class ids
    confidence: np.ndarray | None  # (H, W) uint8, max softmax x 255, or None
    logits: np.ndarray | None  # (C, H, W) float32 for logits graphs, else None


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def installed_qnn_versions() -> tuple[str, str] | None:
    """Return ``(onnxruntime_qnn version, bundled QAIRT version)`` or None if not installed."""
    try:
        from onnxruntime_qnn import build_and_package_info as info
    except ImportError:
        return None
    return str(info.__version__), str(getattr(info, "qnn_version", "unknown"))


def htp_device_present() -> bool:
    """True on aarch64 with a FastRPC device node, i.e. a real Hexagon HTP is reachable."""
    return platform.machine() in ("aarch64", "arm64") and any(
        os.path.exists(p) for p in FASTRPC_DEVICES)


def _load_graph(path: Path) -> Any:
    """Load the ONNX graph (without external data) or raise :class:`EngineError`."""
    import onnx

    if not path.is_file():
        raise EngineError(f"model file not found: {path} (check the model_path parameter)")
    if path.stat().st_size == 0:
        raise EngineError(f"model file is empty: {path}; re-copy or re-export it")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for corrupt files
        raise EngineError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc}); "
                          "the file is corrupt or truncated, re-copy or re-export it") from exc


def _context_binary_file(graph: Any, model_dir: Path) -> Path | None:
    """Return the external context binary of an EPContext model (embed_mode=0), else None."""
    for node in graph.graph.node:
        if node.op_type != "EPContext":
            continue
        attrs = {a.name: a for a in node.attribute}
        embed = attrs["embed_mode"].i if "embed_mode" in attrs else 1
        if embed == 0 and "ep_cache_context" in attrs:
            return model_dir / attrs["ep_cache_context"].s.decode()
    return None


def _is_context_model(graph: Any) -> bool:
    """True when the graph holds a compiled EPContext node (a QNN context binary)."""
    return any(node.op_type == "EPContext" for node in graph.graph.node)


def check_qnn_version(contract: ModelContract, source: str) -> None:
    """Raise :class:`EngineError` if a context binary was built by another onnxruntime-qnn/QAIRT.

    A QNN context binary only loads with the QAIRT version that compiled it (docs/deployment.md).
    """
    installed = installed_qnn_versions()
    if installed is None:
        raise EngineError(f"{source}: provider 'qnn' needs the onnxruntime-qnn package, which is "
                          "not installed (pip install the version in requirements/python.txt)")
    if contract.qnn is None:
        return
    ort_qnn, qairt = installed
    want = contract.qnn
    if want.onnxruntime_qnn_version != ort_qnn:
        raise EngineError(
            f"{source}: QAIRT version mismatch: the context binary was compiled with "
            f"onnxruntime-qnn {want.onnxruntime_qnn_version} (QAIRT {want.qairt_version}), this "
            f"machine has onnxruntime-qnn {ort_qnn} (QAIRT {qairt}). Install onnxruntime-qnn=="
            f"{want.onnxruntime_qnn_version} here or recompile the model with {ort_qnn}.")
    if want.qairt_version not in ("", "unknown") and qairt != "unknown" and \
            want.qairt_version != qairt:
        raise EngineError(
            f"{source}: QAIRT version mismatch: context binary built with QAIRT "
            f"{want.qairt_version}, installed onnxruntime-qnn bundles QAIRT {qairt}; recompile.")


def _missing_skel(htp_arch: int | None) -> str | None:
    """On a real device, return the name of the HTP skel library if it cannot be found."""
    if not htp_device_present():
        return None
    import onnxruntime_qnn

    names = [f"libQnnHtpV{htp_arch}Skel.so"] if htp_arch else []
    dirs = [onnxruntime_qnn.LIB_DIR_FULL_PATH,
            *filter(None, os.environ.get("ADSP_LIBRARY_PATH", "").split(";"))]
    for name in names:
        if not any((Path(d) / name).is_file() for d in dirs):
            return (f"{name} not found in the onnxruntime_qnn package directory or "
                    f"ADSP_LIBRARY_PATH={os.environ.get('ADSP_LIBRARY_PATH', '')!r}")
    return None


class InferenceEngine:
    """An onnxruntime session over a deploy-contract model (see the module docstring).

    Attributes: ``contract`` (the model's :class:`ModelContract`), ``provider`` (execution
    provider actually in use, e.g. ``"QNNExecutionProvider"``), ``model_path``,
    ``model_sha256`` (of the context binary for an EPContext model with an external binary,
    else of the ONNX file), ``is_context_binary``.
    """

    def __init__(self, model_path: str | Path, provider: str = "auto",
                 performance_mode: str = "burst", num_threads: int | None = None,
                 warn: Callable[[str], Any] | None = None) -> None:
        """Load the model, check it against its contract and create the session.

        Raises :class:`EngineError` with an actionable message on any failure. ``warn`` gets
        the provider-fallback warning (default: this module's logger).
        """
        self._warn = warn or LOG.warning
        if provider not in PROVIDERS:
            raise EngineError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
        if performance_mode not in PERFORMANCE_MODES:
            raise EngineError(f"performance_mode {performance_mode!r} is not one of "
                              f"{', '.join(PERFORMANCE_MODES)}")
        if num_threads is not None and num_threads < 1:
            raise EngineError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.model_path = Path(model_path)
        graph = _load_graph(self.model_path)
        meta = {p.key: p.value for p in graph.metadata_props}
        try:
            self.contract = ModelContract.from_metadata(meta, source=str(self.model_path))
        except ContractError as exc:
            raise EngineError(str(exc)) from exc
        self._check_graph_io(graph)
        self.is_context_binary = _is_context_model(graph)
        binary = _context_binary_file(graph, self.model_path.parent)
        if binary is not None and not binary.is_file():
            raise EngineError(f"{self.model_path}: its context binary {binary} is missing; copy "
                              "the .bin next to the .onnx (they ship together)")
        self.model_sha256 = sha256_file(binary or self.model_path)
        self._performance_mode = performance_mode
        self._num_threads = num_threads
        self.provider, self._session = self._create(provider)
        self._output_names = [o.name for o in self._session.get_outputs()]

    def _check_graph_io(self, graph: Any) -> None:
        """Raise :class:`EngineError` when the graph's inputs/outputs differ from the contract."""
        c = self.contract
        src = str(self.model_path)
        initializers = {i.name for i in graph.graph.initializer}
        inputs = [i for i in graph.graph.input if i.name not in initializers]
        if [i.name for i in inputs] != [INPUT_NAME]:
            raise EngineError(f"{src}: contract mismatch: graph inputs are "
                              f"{[i.name for i in inputs]}, the contract needs one input "
                              f"{INPUT_NAME!r}")
        want_in = (1, c.height, c.width, 3) if c.layout == "NHWC" else (1, 3, c.height, c.width)
        self._check_value(inputs[0], np.dtype(c.input_dtype), want_in, src)
        outputs = {o.name: o for o in graph.graph.output}
        if c.output_kind == "labels":
            required = {LABELS_OUTPUT: (np.dtype(np.uint8), (1, c.height, c.width))}
            if c.has_confidence:
                required[CONFIDENCE_OUTPUT] = (np.dtype(np.uint8), (1, c.height, c.width))
        else:
            required = {LOGITS_OUTPUT: (np.dtype(np.float32),
                                        (1, c.num_classes, c.height, c.width))}
        for name, (dtype, shape) in required.items():
            if name not in outputs:
                raise EngineError(f"{src}: contract mismatch: output {name!r} missing (graph "
                                  f"outputs: {sorted(outputs)}; contract output_kind "
                                  f"{c.output_kind!r}, has_confidence {c.has_confidence})")
            self._check_value(outputs[name], dtype, shape, src)

    @staticmethod
    def _check_value(value: Any, dtype: np.dtype, shape: tuple[int, ...], src: str) -> None:
        """Compare one graph value's element type and static shape with the contract."""
        from onnx import helper

        tensor = value.type.tensor_type
        got_dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        shape_ok = len(dims) == len(shape) and all(
            d is None or d == s for d, s in zip(dims, shape, strict=True))
        if got_dtype != dtype or not shape_ok:
            raise EngineError(
                f"{src}: contract mismatch: graph {value.name!r} is {got_dtype} "
                f"{tuple('?' if d is None else d for d in dims)}, the contract says {dtype} "
                f"{shape}; the metadata does not describe this graph (re-export the model)")

    def _create(self, provider: str) -> tuple[str, Any]:
        """Create the session for the requested provider; returns (provider in use, session)."""
        src = str(self.model_path)
        if provider == "cpu":
            if self.is_context_binary:
                raise EngineError(f"{src} is a QNN context binary (EPContext node): it only runs "
                                  "with provider 'qnn'; use the FP32 or QDQ .onnx for 'cpu'")
            return CPU_EP, self._cpu_session()
        if provider == "qnn":
            return QNN_EP, self._qnn_session()
        if self.is_context_binary:
            if not htp_device_present():
                self._warn(f"provider 'auto': no Hexagon HTP on this machine; running the context "
                           f"binary {src} in QNN HTP EMULATION (slow; for accuracy checks only)")
            return QNN_EP, self._qnn_session()
        if htp_device_present():
            try:
                return QNN_EP, self._qnn_session()
            except EngineError as exc:
                self._warn(f"provider 'auto': QNN HTP not usable ({exc}); FALLING BACK TO THE "
                           "CPU, expect many times the latency")
                return CPU_EP, self._cpu_session()
        self._warn("provider 'auto': no Hexagon HTP on this machine (needs aarch64 and "
                   f"{' or '.join(FASTRPC_DEVICES)}); RUNNING ON THE CPU")
        return CPU_EP, self._cpu_session()

    def _options(self) -> Any:
        """Session options shared by both providers."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; warnings of the QNN EP are noise
        if self._num_threads is not None:
            options.intra_op_num_threads = self._num_threads
            options.inter_op_num_threads = 1
        return options

    def _cpu_session(self) -> Any:
        """Create a CPUExecutionProvider session."""
        import onnxruntime as ort

        try:
            return ort.InferenceSession(str(self.model_path), self._options(),
                                        providers=[CPU_EP])
        except Exception as exc:
            raise EngineError(f"{self.model_path}: onnxruntime (CPU) cannot load the model: "
                              f"{exc}") from exc

    def _qnn_session(self) -> Any:
        """Create a session on the QNN plugin EP, HTP backend, CPU fallback disabled."""
        import onnxruntime as ort

        src = str(self.model_path)
        check_qnn_version(self.contract, src)
        import onnxruntime_qnn

        devices = _qnn_devices(ort, onnxruntime_qnn)
        if not Path(onnxruntime_qnn.get_qnn_htp_path()).is_file():
            raise EngineError(f"{src}: QNN HTP backend library missing: "
                              f"{onnxruntime_qnn.get_qnn_htp_path()} (reinstall onnxruntime-qnn)")
        if platform.machine() in ("aarch64", "arm64") and not htp_device_present():
            raise EngineError(f"{src}: no HTP device: none of {', '.join(FASTRPC_DEVICES)} "
                              "exists (FastRPC driver not loaded, or the container lacks the "
                              "device; pass it with --device)")
        skel = _missing_skel(self.contract.qnn.htp_arch if self.contract.qnn else None)
        if skel:
            raise EngineError(f"{src}: QNN HTP skel library missing: {skel}")
        options = self._options()
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        options.add_provider_for_devices(devices, {
            "backend_path": onnxruntime_qnn.get_qnn_htp_path(),
            "htp_performance_mode": self._performance_mode,
        })
        try:
            return ort.InferenceSession(src, options)
        except Exception as exc:
            raise EngineError(
                f"{src}: the QNN HTP session failed: {exc}. Likely causes: an op the HTP cannot "
                "run (CPU fallback is disabled; quantise the model to QDQ), a context binary "
                "compiled for another SoC/htp_arch or QAIRT version, or the HTP skel library "
                "(libQnnHtpV73Skel.so) not on ADSP_LIBRARY_PATH") from exc

    def run(self, rgb: np.ndarray) -> EngineOutput:
        """Run the model on an RGB uint8 image (contract.height, contract.width, 3)."""
        c = self.contract
        if rgb.dtype != np.uint8 or rgb.shape != (c.height, c.width, 3):
            raise EngineError(f"engine input must be uint8 ({c.height}, {c.width}, 3) (the model "
                              f"size; use imaging.resize_to_model), got {rgb.dtype} {rgb.shape}")
        batch = rgb[None] if c.layout == "NHWC" else rgb.transpose(2, 0, 1)[None]
        values = dict(zip(self._output_names,
                          self._session.run(None, {INPUT_NAME: np.ascontiguousarray(batch)}),
                          strict=True))
        if c.output_kind == "logits":
            logits = values[LOGITS_OUTPUT][0]
            return EngineOutput(labels=logits.argmax(axis=0).astype(np.uint8), confidence=None,
                                logits=logits)
        confidence = values[CONFIDENCE_OUTPUT][0] if c.has_confidence else None
        return EngineOutput(labels=values[LABELS_OUTPUT][0], confidence=confidence, logits=None)


def _qnn_devices(ort: Any, onnxruntime_qnn: Any) -> list[Any]:
    """Register the QNN plugin EP library once per process and return its devices."""
    try:
        ort.register_execution_provider_library(QNN_EP, onnxruntime_qnn.get_library_path())
    except Exception as exc:
        if "already registered" not in str(exc):
            raise EngineError(f"cannot register the QNN execution provider library "
                              f"{onnxruntime_qnn.get_library_path()}: {exc}") from exc
    devices = [d for d in ort.get_ep_devices() if d.ep_name == QNN_EP]
    if not devices:
        raise EngineError("the QNN execution provider is registered but reports no device "
                          "(onnxruntime and onnxruntime-qnn versions incompatible?)")
    return devices
