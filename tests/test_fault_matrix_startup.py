"""Fault matrix (issue 15) of how both nodes start: broken, missing and wrong-kind params
files, misspelt and invalid parameters, unusable models. Each must exit 2 with exactly one
clear line naming the problem (no rcl parser trace, no traceback). Four processes at a time.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fault_matrix"))
from costmap_peer import costmap_args
from matrix import Problems, new_tally, one_clear_line
from seg_peer import node_env, seg_args

from offroad_core.contract import ModelContract
from offroad_core.testing import build_tiny_model

pytestmark = pytest.mark.ros


def write(path: Path, content: str | bytes) -> Path:
    """Write ``content`` to ``path``; return the path."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def section(node: str, body: str) -> str:
    """A params file with ``body`` (indented lines) under ``node: ros__parameters:``."""
    return f"{node}:\n  ros__parameters:\n" + "".join(f"    {line}\n" for line in body.split(";"))


def cases(tmp: Path) -> list:
    """(label, command line, text the one line must contain)."""
    model = build_tiny_model(tmp / "tiny.onnx", 64, 80, seed=1)
    cut = write(tmp / "cut.onnx", model.read_bytes()[:300])
    png = write(tmp / "picture.onnx", b"\x89PNG\r\n\x1a\n" + bytes(64))
    mismatch = build_tiny_model(tmp / "mismatch.onnx", 32, 40,
                                contract=ModelContract(height=48, width=40))
    c = "offroad_costmap"

    def costmap_file(name: str, content: str | bytes) -> list[str]:
        return [*costmap_args(), "--params-file", str(write(tmp / name, content))]

    def seg_file(name: str, content: str) -> list[str]:
        return seg_args(model, ros_args=("--params-file", str(write(tmp / name, content))))
    return [
        ("costmap: params file missing",
         [*costmap_args(), "--params-file", str(tmp / "missing.yaml")], "not found"),
        ("costmap: params file is a directory", [*costmap_args(), "--params-file", str(tmp)],
         "is a directory"),
        ("costmap: params file not YAML", costmap_file("broken.yaml", f"{c}:\n  a: [1,\n"),
         "not valid YAML"),
        ("costmap: params file binary", costmap_file("binary.yaml", b"\x00\xff\xfe\x01"),
         "not UTF-8"),
        ("costmap: params file a list", costmap_file("list.yaml", "- a\n- b\n"),
         "found a list"),
        ("costmap: value outside ros__parameters",
         costmap_file("flat.yaml", f"{c}:\n  resolution: 0.1\n"), "not under ros__parameters"),
        ("costmap: ros__parameters a number", costmap_file("scalar.yaml",
                                                           f"{c}:\n  ros__parameters: 5\n"),
         "must be a mapping"),
        ("costmap: list mixing types",
         costmap_file("mixed.yaml", section(c, 'vertical_classes: [1, "a"]')), "mixing"),
        ("costmap: misspelt stale_timout",
         costmap_file("typo.yaml", section(c, "stale_timout: 1.0")),
         "unknown parameter(s) stale_timout"),
        # alone: after costmap.yaml, rcl keeps the first file's double over a later string
        ("costmap: max_range a word", [*costmap_args()[:4], "--params-file",
                                       str(write(tmp / "type.yaml",
                                                 section(c, "max_range: far")))], "max_range"),
        ("costmap: resolution out of range", [*costmap_args(resolution=5.0)], "resolution"),
        ("costmap: two problems at once", [*costmap_args(occlusion="cone",
                                                         caution_value="high")],
         "occlusion: 'cone' is not one of column, ray"),
        ("costmap: output_frame odom without use_odom", [*costmap_args(output_frame="odom")],
         "needs use_odom"),
        ("costmap: --params-file without a path", [*costmap_args(), "--params-file"],
         "needs a path"),
        ("segmentation: params file missing",
         seg_args(model, ros_args=("--params-file", str(tmp / "none.yaml"))), "not found"),
        ("segmentation: misspelt confidence_treshold",
         seg_file("seg_typo.yaml", section("offroad_segmentation", "confidence_treshold: 0.5")),
         "unknown parameter(s) confidence_treshold"),
        ("segmentation: provider gpu", seg_args(model, "provider:=gpu"), "provider: 'gpu'"),
        ("segmentation: qos_depth 0", seg_args(model, "qos_depth:=0"), "qos_depth"),
        ("segmentation: model missing", seg_args(tmp / "nothing.onnx"), "file not found"),
        ("segmentation: model truncated", seg_args(cut), "corrupt or truncated"),
        ("segmentation: a PNG named .onnx", seg_args(png), "not a readable ONNX"),
        ("segmentation: model path a directory", seg_args(tmp), "file not found"),
        ("segmentation: model of another contract", seg_args(mismatch), "contract mismatch"),
        ("segmentation: confidence asked of a model without it",
         seg_args(model, "publish_confidence:=true"), "no confidence output"),
    ]


def run(args: list[str]) -> subprocess.CompletedProcess | None:
    """Run a node command line; None if it did not exit within 60 s."""
    try:
        return subprocess.run(args, env=node_env(), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None


def test_nodes_refuse_bad_configuration_with_one_line_and_exit_2(tmp_path, pytestconfig):
    tally = new_tally(pytestconfig, "node start-up")
    matrix = cases(tmp_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, [args for _, args, _ in matrix]))
    for (label, _, needle), result in zip(matrix, results, strict=True):
        problems = Problems()
        if result is None:
            problems.add("hang", "did not exit within 60 s")
        else:
            output = result.stdout + result.stderr
            if result.returncode != 2:
                problems.add("crash" if result.returncode == 1 else "wrong",
                             f"exit status {result.returncode}: {output[-800:]!r}")
            if one_clear_line(output, needle):
                problems.add("unclear", one_clear_line(output, needle))
        tally.record(label, problems)
    tally.check(minimum=24)
