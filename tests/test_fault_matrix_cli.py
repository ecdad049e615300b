"""Fault matrix (issue 15) of the ``offroad`` command: missing, corrupt, wrong-kind and
unwritable inputs and outputs of every command. Each must exit 2 with exactly one line naming
the problem, and leave nothing half-written (no output file, no temporary file). Real
processes, four at a time.

``test_output_paths_are_checked_before_the_work``: an ``--out`` that names a directory or lies
under a file is refused before any quantization or compilation runs.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fault_matrix"))
from matrix import Problems, new_tally, one_clear_line

from offroad_core.testing import build_tiny_model

OFFROAD = str(Path(sys.executable).with_name("offroad"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny unified dataset, a deploy-contract model, a corrupt file, a text file, an
    empty directory, a broken YAML file."""
    root = tmp_path_factory.mktemp("cli")
    subprocess.run([OFFROAD, "data", "synth", "--out", str(root / "ds"), "--frames", "2",
                    "--size", "80x64", "--val-fraction", "0.5", "--workers", "1",
                    "--no-progress"], check=True, capture_output=True, timeout=300)
    (root / "junk.bin").write_bytes(bytes(range(256)) * 2)
    (root / "note.txt").write_text("not a model\n")
    (root / "empty").mkdir()
    (root / "broken.yaml").write_text("lr: [1,\n")
    return {"root": root, "ds": root / "ds", "junk": root / "junk.bin",
            "text": root / "note.txt", "empty": root / "empty", "broken_yaml": root / "broken.yaml",
            "model": build_tiny_model(root / "tiny.onnx", 64, 80, seed=2)}


def cases(f: dict[str, Path]) -> list:
    """(label, arguments, text the one line must contain, output path that must not appear)."""
    r, ds, junk, text, empty, model = (str(f[k]) for k in ("root", "ds", "junk", "text",
                                                          "empty", "model"))
    out = f"{r}/out"
    missing = f"{r}/missing"
    return [
        ("eval: model missing", ["eval", "--onnx", f"{missing}.onnx", "--data", ds,
                                 "--out", f"{out}/e1.json"], "model file not found", "e1.json"),
        ("eval: model corrupt", ["eval", "--onnx", junk, "--data", ds, "--out",
                                 f"{out}/e2.json"], "not a readable ONNX file", "e2.json"),
        ("eval: a text file as model", ["eval", "--onnx", text, "--data", ds],
         "not a readable ONNX file", None),
        ("eval: a directory as model", ["eval", "--onnx", empty, "--data", ds],
         "model file not found", None),
        ("eval: dataset missing", ["eval", "--onnx", model, "--data", missing],
         "dataset root does not exist", None),
        ("eval: a file as dataset", ["eval", "--onnx", model, "--data", text],
         "not a directory", None),
        ("eval: empty directory as dataset", ["eval", "--onnx", model, "--data", empty],
         "split 'val' not found", None),
        ("eval: unknown split", ["eval", "--onnx", model, "--data", ds, "--split", "nosuch"],
         "split 'nosuch' not found (splits present: train, val)", None),
        ("eval: checkpoint missing", ["eval", "--checkpoint", f"{missing}.pth", "--data", ds],
         "does not exist", None),
        ("eval: corrupt checkpoint", ["eval", "--checkpoint", junk, "--data", ds],
         "never pickled code", None),
        ("quantize: model missing", ["quantize", "--onnx", f"{missing}.onnx", "--calib", ds,
                                     "--out", f"{out}/q1.onnx"], "model file not found",
         "q1.onnx"),
        ("quantize: model corrupt", ["quantize", "--onnx", junk, "--calib", ds, "--out",
                                     f"{out}/q2.onnx"], "not a readable ONNX file", "q2.onnx"),
        ("quantize: calibration set missing", ["quantize", "--onnx", model, "--calib", missing,
                                               "--out", f"{out}/q3.onnx"],
         "dataset root does not exist", "q3.onnx"),
        ("quantize: zero calibration images", ["quantize", "--onnx", model, "--calib", ds,
                                               "--num", "0", "--out", f"{out}/q4.onnx"],
         "no calibration images", "q4.onnx"),
        ("compile: model missing", ["compile", "--qdq", f"{missing}.onnx", "--out",
                                    f"{out}/c1.onnx"], "model file not found", "c1.onnx"),
        ("compile: model corrupt", ["compile", "--qdq", junk, "--out", f"{out}/c2.onnx"],
         "not a readable ONNX file", "c2.onnx"),
        ("compile: float graph without --fp16", ["compile", "--qdq", model, "--out",
                                                 f"{out}/c3.onnx"], "is a float graph",
         "c3.onnx"),
        ("quantize-report: nothing to compare", ["quantize-report", "--fp32", model, "--data",
                                                 ds, "--out", f"{out}/r1.json"],
         "give at least one quantised model", "r1.json"),
        ("train: config missing", ["train", "--config", f"{missing}.yaml"], "does not exist",
         None),
        ("train: config not YAML", ["train", "--config", str(f["broken_yaml"])],
         "not valid YAML", None),
        ("data convert: root missing", ["data", "convert", "--dataset", "rugd", "--root",
                                        missing, "--out", f"{out}/cv1"],
         "dataset root does not exist", "cv1"),
        ("data convert: root of another layout", ["data", "convert", "--dataset", "rugd",
                                                  "--root", empty, "--out", f"{out}/cv2"],
         "expected RUGD_frames-with-annotations", "cv2"),
        ("data merge: not a dataset", ["data", "merge", "--out", f"{out}/mg", empty],
         "not a unified dataset", "mg"),
        ("data synth: zero frames", ["data", "synth", "--out", f"{out}/sy", "--frames", "0"],
         "--frames must be > 0", "sy"),
        ("export onnx: checkpoint missing", ["export", "onnx", "--checkpoint",
                                             f"{missing}.pth", "--out", f"{out}/x1.onnx"],
         "does not exist", "x1.onnx"),
        ("export onnx: corrupt checkpoint", ["export", "onnx", "--checkpoint", junk, "--out",
                                             f"{out}/x2.onnx"], "never pickled code",
         "x2.onnx"),
        ("evaluate-bag: bag missing", ["evaluate-bag", "--model", model, missing],
         "bag not found", None),
        ("evaluate-bag: a directory that is no bag", ["evaluate-bag", "--model", model, empty],
         "without metadata.yaml", None),
        ("evaluate-bag: a file that is no bag", ["evaluate-bag", "--model", model, text],
         "cannot read bag", None),
        ("evaluate-bag: model missing", ["evaluate-bag", "--model", f"{missing}.onnx", ds],
         "file not found", None),
        ("replay: bag missing", ["replay", missing], "bag not found", None),
        ("replay: a file that is no bag", ["replay", text], "cannot read bag", None),
        ("train: data root missing", ["train", "--set", f"data_root={missing}", "--set",
                                      f"out_dir={out}/tr", "--no-progress"],
         "dataset root does not exist", "tr"),
        ("data synth: --out under a file", ["data", "synth", "--out", f"{text}/x", "--frames",
                                            "1", "--size", "80x64"], "not a directory", None),
        ("eval: --out under a file", ["eval", "--onnx", model, "--data", ds, "--out",
                                      f"{text}/r.json"], "not a directory", None),
        ("eval: --out a directory", ["eval", "--onnx", model, "--data", ds, "--out", empty],
         "is a directory", None),
        ("hub: model missing", ["hub", "--onnx", f"{missing}.onnx", "--out", f"{out}/h.onnx"],
         "model file not found", "h.onnx"),
    ]


def run(args: list[str]) -> subprocess.CompletedProcess | None:
    """Run ``offroad args``; None if it did not exit within 120 s."""
    try:
        return subprocess.run([OFFROAD, *args], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None


def outcome(result: subprocess.CompletedProcess | None, needle: str,
            out_dir: Path, output: str | None) -> Problems:
    """Exit 2, one clear line, nothing half-written."""
    problems = Problems()
    if result is None:
        problems.add("hang", "did not exit within 120 s")
        return problems
    text = result.stdout + result.stderr
    if result.returncode != 2:
        problems.add("crash" if result.returncode == 1 else "wrong",
                     f"exit status {result.returncode}: {text[-600:]!r}")
    if one_clear_line(text, needle):
        problems.add("unclear", one_clear_line(text, needle))
    if output is not None and (out_dir / output).exists():
        problems.add("wrong", f"{output} was written")
    leftovers = [p.name for p in out_dir.glob(".*tmp*")] if out_dir.exists() else []
    if leftovers:
        problems.add("wrong", f"temporary files left: {leftovers}")
    return problems


def test_offroad_command_fault_matrix(files, pytestconfig):
    tally = new_tally(pytestconfig, "offroad command")
    matrix = cases(files)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, [args for _, args, _, _ in matrix]))
    for (label, _, needle, output), result in zip(matrix, results, strict=True):
        tally.record(label, outcome(result, needle, files["root"] / "out", output))
    tally.check(minimum=30)


@pytest.mark.parametrize(("args", "needle"), [
    pytest.param(["quantize", "--onnx", "{model}", "--calib", "{ds}", "--out", "{empty}"],
                 "is a directory", id="quantize-out-a-directory"),
    pytest.param(["compile", "--qdq", "{model}", "--fp16", "--out", "{text}/c.onnx"],
                 "not a directory", id="compile-out-under-a-file"),
])
def test_output_paths_are_checked_before_the_work(files, args, needle):
    names = {k: str(v) for k, v in files.items()} | {"missing": str(files["root"] / "missing")}
    result = run([a.format(**names) for a in args])
    problems = outcome(result, needle, files["root"], None)
    assert not problems, problems
