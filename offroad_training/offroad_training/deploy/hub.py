"""``offroad hub``: compile (quantise, profile) on Qualcomm AI Hub (the seed's ``--method hub``).

Uses the ``qai-hub`` client when installed and configured (``pip install qai-hub`` and
``qai-hub configure --api_token TOKEN``, which writes ``~/.qai_hub/client.ini``). It is not a
project dependency: without the package or the token the command fails at once with a message
saying which is missing; nothing is uploaded.

Flow (each step is a job on the service; their ids go into the metadata):

1. quantise (only with ``--calib`` and an FP32 deploy graph): the calibration-input graph of
   :func:`offroad_training.deploy.quantize.float_input_graph` and the same seeded calibration
   subset as ``offroad quantize``; the returned QDQ model gets the same uint8 graph I/O.
   Without ``--calib`` a QDQ model from ``offroad quantize`` is compiled as it is (recommended:
   identical to the local chain).
2. compile: ``--target_runtime precompiled_qnn_onnx`` for the device (default
   "Dragonwing IQ-9075 EVK"): an EPContext ONNX model and its context binary.
3. profile (unless ``--no-profile``): on-device latency, recorded in the metadata.

The downloaded model is checked like a local build (single EPContext node, uint8 I/O) and
written with the same contract and :class:`~offroad_core.contract.QnnInfo` as
``offroad compile`` (QAIRT version as reported by the job, or "hub").

Tested with an injected fake client up to the client calls; the real service was not reachable
from the development machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from offroad_core.contract import QnnInfo, read_contract, write_contract

DEFAULT_DEVICE = "Dragonwing IQ-9075 EVK"
COMPILE_OPTIONS = "--target_runtime precompiled_qnn_onnx"


class HubError(RuntimeError):
    """AI Hub is not usable (client, token, network) or a job failed; the message says which."""


@dataclass(frozen=True)
class HubResult:
    """What :func:`hub_compile` wrote."""

    model: Path
    binary: Path
    jobs: dict[str, str]
    profile: dict[str, Any] | None


def client_config_file() -> Path:
    """Where ``qai-hub configure`` stores the token (``QAIHUB_CLIENT_INI`` overrides it)."""
    return Path(os.environ.get("QAIHUB_CLIENT_INI", Path.home() / ".qai_hub" / "client.ini"))


def load_client(config_file: Path | None = None) -> Any:
    """Import ``qai_hub`` after checking it is configured; raise :class:`HubError` otherwise."""
    config = config_file or client_config_file()
    if not config.is_file():
        raise HubError(f"AI Hub is not configured: no API token ({config} missing). Get a token "
                       "at https://aihub.qualcomm.com (account settings) and run `qai-hub "
                       "configure --api_token TOKEN`; or build locally with `offroad compile`.")
    try:
        import qai_hub
    except ImportError as exc:
        raise HubError("the qai-hub client is not installed (`pip install qai-hub` in the "
                       "training environment; it is optional); or build locally with "
                       "`offroad compile`") from exc
    return qai_hub


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the client; network/auth errors become a :class:`HubError` naming the step."""
    try:
        return fn(*args, **kwargs)
    except HubError:
        raise
    except Exception as exc:
        raise HubError(f"AI Hub {what} failed: {type(exc).__name__}: {exc} (check the token, "
                       "the network and the device name)") from exc


def _target_model(job: Any, what: str) -> Any:
    model = _call(f"{what} job", job.get_target_model)
    if model is None:
        status = getattr(job, "get_status", lambda: None)()
        raise HubError(f"AI Hub {what} job {getattr(job, 'job_id', '?')} produced no model: "
                       f"{getattr(status, 'message', status)}")
    return model


def _unpack(downloaded: Path, into: Path) -> tuple[Path, Path]:
    """Find the EPContext .onnx and its .bin in a downloaded file, zip or directory."""
    if downloaded.is_file() and zipfile.is_zipfile(downloaded):
        with zipfile.ZipFile(downloaded) as archive:
            archive.extractall(into / "unzipped")
        downloaded = into / "unzipped"
    root = downloaded if downloaded.is_dir() else downloaded.parent
    onnx_files = sorted(root.rglob("*.onnx"))
    if len(onnx_files) != 1:
        raise HubError(f"AI Hub download {downloaded}: expected one .onnx, found "
                       f"{[p.name for p in onnx_files]}")
    from offroad_training.deploy.compile import CompileError, check_context_model

    try:
        binary = check_context_model(onnx_files[0])
    except CompileError as exc:
        raise HubError(f"AI Hub result is not a single-EPContext uint8 model: {exc}") from exc
    return onnx_files[0], binary


def hub_compile(onnx_path: str | Path, out: str | Path, *, device: str = DEFAULT_DEVICE,
                calib: str | Path | None = None, num: int = 300, seed: int = 0,
                profile: bool = True, client: Any = None,
                config_file: Path | None = None) -> HubResult:
    """Run the AI Hub jobs for ``onnx_path`` and write ``out`` + ``.bin`` with metadata.

    ``client`` replaces the ``qai_hub`` module (tests inject a fake); when None the real client
    is loaded with :func:`load_client`, which fails fast without a token or the package.
    """
    import onnx

    from offroad_core.atomic import atomic_path, atomic_write_bytes
    from offroad_core.engine import sha256_file
    from offroad_training.deploy.compile import _precision_of

    onnx_path, out = Path(onnx_path), Path(out)
    contract = read_contract(onnx_path)
    if contract.output_kind != "labels":
        raise HubError(f"{onnx_path}: give the deploy graph (labels), not {contract.output_kind}")
    model = onnx.load(str(onnx_path))
    precision = _precision_of(model)
    hub = client if client is not None else load_client(config_file)
    target_device = _call("device lookup", hub.Device, device)
    jobs: dict[str, str] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".offroad_hub_", dir=out.parent) as tmp_dir:
        tmp = Path(tmp_dir)
        source: Any = str(onnx_path)
        if calib is not None and precision == "fp16":
            source, precision = _hub_quantize(hub, model, contract, Path(calib), num, seed, tmp,
                                              jobs)
        compile_job = _call("compile submission", hub.submit_compile_job, model=source,
                            device=target_device, name=f"offroad-{contract.model_id}",
                            options=COMPILE_OPTIONS)
        jobs["compile"] = str(getattr(compile_job, "job_id", "?"))
        target = _target_model(compile_job, "compile")
        downloaded = Path(_call("download", target.download, str(tmp / "hub_model")))
        model_file, binary_file = _unpack(downloaded, tmp)
        profile_data = None
        if profile:
            profile_job = _call("profile submission", hub.submit_profile_job, model=target,
                                device=target_device)
            jobs["profile"] = str(getattr(profile_job, "job_id", "?"))
            profile_data = _summarise_profile(_call("profile", profile_job.download_profile))
        qnn = QnnInfo(onnxruntime_qnn_version=_installed_ort_qnn(),
                      qairt_version=str(getattr(compile_job, "qairt_version", None) or "hub"),
                      soc_model=77, htp_arch=73,
                      precision=precision,
                      binary_sha256=sha256_file(binary_file))
        result = onnx.load(str(model_file), load_external_data=False)
        binary_name = f"{out.stem}.bin"
        for attr in result.graph.node[0].attribute:
            if attr.name == "ep_cache_context":
                attr.s = binary_name.encode()
        producer = {**contract.producer, "hub": {"device": device, "jobs": jobs,
                                                 "options": COMPILE_OPTIONS,
                                                 "profile": profile_data}}
        write_contract(result, replace(contract, producer=producer).with_qnn(qnn))
        binary = out.parent / binary_name
        with atomic_path(binary) as tmp_bin:
            shutil.copyfile(binary_file, tmp_bin)
        atomic_write_bytes(out, result.SerializeToString())
    return HubResult(model=out, binary=binary, jobs=jobs, profile=profile_data)


def _installed_ort_qnn() -> str:
    from offroad_core.engine import installed_qnn_versions

    versions = installed_qnn_versions()
    return versions[0] if versions else "unknown"


def _hub_quantize(hub: Any, model: Any, contract: Any, calib: Path, num: int, seed: int,
                  tmp: Path, jobs: dict[str, str]) -> tuple[str, str]:
    """Submit a quantise job with the local calibration subset; return (QDQ path, "int8")."""
    import numpy as np
    import onnx

    from offroad_training.data.unified import UnifiedDataset
    from offroad_training.deploy.quantize import (
        _FLOAT_INPUT,
        INPUT_SCALE,
        calibration_images,
        float_input_graph,
        integer_io_graph,
    )

    images = calibration_images(UnifiedDataset(calib, "train"), num, contract.height,
                                contract.width, seed)
    data = {_FLOAT_INPUT: [img[None].astype(np.float32) * np.float32(INPUT_SCALE)
                           for img in images]}
    float_path = tmp / "float_input.onnx"
    onnx.save(float_input_graph(model), str(float_path))
    job = _call("quantize submission", hub.submit_quantize_job, model=str(float_path),
                calibration_data=data, weights_dtype=hub.QuantizeDtype.INT8,
                activations_dtype=hub.QuantizeDtype.INT8)
    jobs["quantize"] = str(getattr(job, "job_id", "?"))
    qdq_model = _target_model(job, "quantize")
    downloaded = Path(_call("download", qdq_model.download, str(tmp / "hub_qdq.onnx")))
    qdq = integer_io_graph(onnx.load(str(downloaded)), contract.height, contract.width)
    path = tmp / "qdq.onnx"
    onnx.save(qdq, str(path))
    return str(path), "int8"


def _summarise_profile(profile: Any) -> dict[str, Any] | None:
    """Keep the headline figures of a profile (estimated inference time, memory)."""
    if not isinstance(profile, dict):
        return None
    summary = profile.get("execution_summary", {})
    keep = ("estimated_inference_time", "estimated_inference_peak_memory",
            "first_load_time", "warm_load_time")
    return {k: summary[k] for k in keep if k in summary}
