"""``offroad hub``: everything up to the qai-hub client calls, with a fake client injected."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from offroad_core.contract import read_contract
from offroad_core.engine import InferenceEngine, sha256_file
from offroad_core.testing import build_tiny_model
from offroad_training.cli import main
from offroad_training.deploy.compile import compile_context
from offroad_training.deploy.hub import COMPILE_OPTIONS, HubError, hub_compile
from offroad_training.deploy.quantize import quantize_model

H, W = 64, 80


class _FakeHub:
    """Stands in for the ``qai_hub`` module: compile jobs return a locally compiled model."""

    def __init__(self, compiled: Path, fail_compile: bool = False) -> None:
        self.compiled = compiled
        self.fail_compile = fail_compile
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def Device(self, name: str) -> SimpleNamespace:  # noqa: N802 (qai_hub's name)
        self.calls.append(("Device", {"name": name}))
        return SimpleNamespace(name=name)

    def submit_compile_job(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(("compile", kwargs))
        if self.fail_compile:
            raise ConnectionError("name resolution failed")
        compiled = self.compiled

        def download(dest: str) -> str:
            out = Path(dest)
            out.mkdir()
            shutil.copy(compiled, out / "model.onnx")
            shutil.copy(compiled.with_suffix(".bin"), out / compiled.with_suffix(".bin").name)
            return str(out)

        model = SimpleNamespace(download=download)
        return SimpleNamespace(job_id="jc1", get_target_model=lambda: model,
                               qairt_version="2.51.0")

    def submit_profile_job(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(("profile", kwargs))
        profile = {"execution_summary": {"estimated_inference_time": 4321, "other": 1}}
        return SimpleNamespace(job_id="jp1", download_profile=lambda: profile)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("hub")
    fp32 = build_tiny_model(tmp / "tiny.onnx", H, W)
    rng = np.random.default_rng(0)
    calib = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(8)]
    qdq = quantize_model(fp32, calib, tmp / "tiny.qdq.onnx")
    ctx = compile_context(qdq, tmp / "built" / "ctx.onnx")
    return {"fp32": fp32, "qdq": qdq, "ctx": ctx.model}


def test_fails_fast_without_token(tmp_path: Path, models: dict[str, Path],
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    with pytest.raises(HubError, match="no API token"):
        hub_compile(models["qdq"], tmp_path / "out.onnx")
    assert main(["hub", "--onnx", str(models["qdq"]), "--out", str(tmp_path / "o.onnx")]) == 2
    assert "qai-hub configure" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()


def test_fails_fast_without_client_package(tmp_path: Path, models: dict[str, Path]) -> None:
    ini = tmp_path / "client.ini"
    ini.write_text("[api]\napi_token = x\n")
    with pytest.raises(HubError, match="not installed"):
        hub_compile(models["qdq"], tmp_path / "out.onnx", config_file=ini)


def test_compile_and_profile_with_fake_client(tmp_path: Path, models: dict[str, Path]) -> None:
    fake = _FakeHub(models["ctx"])
    result = hub_compile(models["qdq"], tmp_path / "hub_ctx.onnx", client=fake)
    kinds = [c[0] for c in fake.calls]
    assert kinds == ["Device", "compile", "profile"]
    compile_args = fake.calls[1][1]
    assert compile_args["model"] == str(models["qdq"])
    assert compile_args["options"] == COMPILE_OPTIONS
    assert compile_args["device"].name == "Dragonwing IQ-9075 EVK"
    contract = read_contract(result.model)
    assert contract.qnn.binary_sha256 == sha256_file(tmp_path / "hub_ctx.bin")
    assert contract.qnn.qairt_version == "2.51.0" and contract.qnn.precision == "int8+int16"
    assert contract.producer["hub"]["jobs"] == {"compile": "jc1", "profile": "jp1"}
    assert contract.producer["hub"]["profile"] == {"estimated_inference_time": 4321}
    rgb = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert (InferenceEngine(result.model, provider="qnn").run(rgb).labels
            == InferenceEngine(models["ctx"], provider="qnn").run(rgb).labels).all()


def test_client_errors_name_the_step(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(HubError, match="compile submission failed: ConnectionError"):
        hub_compile(models["qdq"], tmp_path / "x.onnx", client=_FakeHub(models["ctx"], True))
    assert not (tmp_path / "x.onnx").exists()
    not_ctx = _FakeHub(models["qdq"])  # the "service" returns a non-EPContext model
    shutil.copy(models["qdq"], tmp_path / "q.onnx")
    (tmp_path / "q.bin").write_bytes(b"")
    not_ctx.compiled = tmp_path / "q.onnx"
    with pytest.raises(HubError, match="single-EPContext"):
        hub_compile(models["qdq"], tmp_path / "y.onnx", client=not_ctx, profile=False)
