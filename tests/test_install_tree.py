"""The launch descriptions from an install tree whose sources are absent (issue 18, item 4).

``launch/`` (the ``offroad_bringup`` package) is copied to a temporary source directory and
built with colcon *without* ``--symlink-install`` into a temporary install base; then the
copied sources and the build directory are deleted. With ``AMENT_PREFIX_PATH`` naming that
install (and not the workspace's own offroad_bringup), both installed launch files are
evaluated by ``tests/launch_standin.py``: real are colcon, CMake's install rules, the
installed files, ``ament_index_python`` and the node executables of the workspace; stood in
are only the ``launch``/``launch_ros`` classes (not installable here). Every path the
descriptions resolve (default params files, the perception launch file the replay loads, the
file each node and argument is defined in) must lie in the temporary install tree and exist
there. Then the perception nodes are started with the rendered command lines: they read the
installed robot.yaml.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import launch_standin as standin

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE_BRINGUP = ROOT / "install" / "offroad_bringup"


@pytest.fixture(scope="module")
def install_tree(tmp_path_factory) -> Path:
    """A non-symlink install of offroad_bringup whose sources and build are gone."""
    base = tmp_path_factory.mktemp("bringup")
    src = base / "src" / "offroad_bringup"
    shutil.copytree(ROOT / "launch", src, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        ["colcon", "--log-base", str(base / "log"), "build", "--base-paths", str(base / "src"),
         "--build-base", str(base / "build"), "--install-base", str(base / "install"),
         "--event-handlers", "console_cohesion-"],
        capture_output=True, text=True, timeout=300, cwd=base)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    shutil.rmtree(base / "src")
    shutil.rmtree(base / "build")
    return base / "install" / "offroad_bringup"


def _env(prefix: Path, params_dir: Path) -> dict[str, str]:
    """AMENT_PREFIX_PATH with ``prefix`` instead of the workspace's offroad_bringup."""
    others = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
              if p and Path(p) != WORKSPACE_BRINGUP]
    return {**os.environ, "AMENT_PREFIX_PATH": os.pathsep.join([str(prefix), *others]),
            "LAUNCH_STANDIN_PARAMS_DIR": str(params_dir)}


def _paths(value: object) -> list[str]:
    """Every string in a JSON document that names a file or directory."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _paths(v)]
    return [value] if isinstance(value, str) and value.startswith("/") and "." in value else []


@pytest.mark.parametrize("name", ["offroad_perception.launch.py", "offroad_replay.launch.py"])
def test_installed_launch_file_resolves_into_the_install_tree(install_tree, tmp_path, name):
    share = install_tree / "share" / "offroad_bringup"
    launch_file = share / "launch" / name
    assert launch_file.is_file() and not launch_file.is_symlink()
    evaluation = standin.evaluate_file(
        launch_file, {"model": "/models/m.onnx", "bag": "/bags/b"},
        env=_env(install_tree, tmp_path), cwd=tmp_path)
    assert "error" not in evaluation, evaluation
    shown = evaluation["arguments"]
    default = Path(shown["params_file"]["default"])
    expected = "replay.yaml" if "replay" in name else "robot.yaml"
    assert default == share / "config" / expected and default.is_file()
    assert not default.is_symlink()
    for node in evaluation["nodes"]:
        if node["name"] != "offroad_bag_replay":
            assert node["params_files"] == [str(default)] and not node["warnings"]
            # defined by the installed perception launch file (the replay loads it too)
            assert Path(node["defined_in"]) == share / "launch" / "offroad_perception.launch.py"
    for arg in shown.values():
        assert Path(arg["defined_in"]).parent == share / "launch"
    # nothing the description resolved points into the (deleted) sources or the workspace's
    # own offroad_bringup: only this install tree, the node executables, the given arguments
    for path in _paths(evaluation):
        assert not path.startswith((str(ROOT / "launch"), str(WORKSPACE_BRINGUP))), path
        if path.startswith(str(install_tree)):
            assert Path(path).exists(), path


@pytest.mark.ros
def test_nodes_started_from_the_installed_description_read_the_installed_robot_yaml(
        install_tree, tmp_path):
    from offroad_core.testing import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny.onnx", confidence=True)
    share = install_tree / "share" / "offroad_bringup"
    evaluation = standin.evaluate_file(
        share / "launch" / "offroad_perception.launch.py",
        {"model": str(model), "provider": "cpu", "namespace": "install_tree_test"},
        env=_env(install_tree, tmp_path), cwd=tmp_path)
    robot = yaml.safe_load((share / "config" / "robot.yaml").read_text())
    procs, checks = [], []
    for node in evaluation["nodes"]:
        # the installed file's values, then the launch arguments' overrides (model, cpu, ...)
        expected = {**robot[f"/**/{node['name']}"]["ros__parameters"], **node["overrides"]}
        procs.append(standin.start(node))
        checks.append((node["fqn"], expected))
    try:
        for proc, (fqn, expected) in zip(procs, checks, strict=True):
            got = standin.probe_parameters(fqn, sorted(expected), proc)
            assert got == {k: float(v) if isinstance(v, float) else v
                           for k, v in expected.items()}, fqn
    finally:
        outputs = standin.shut_down(procs)
    assert [p.returncode for p in procs] == [0, 0], outputs
