"""Package boundaries (docs/architecture.md): the runtime core imports neither ROS nor torch nor
training code; no ROS package imports another ROS package's Python modules (messages
excepted); nothing the robot runs imports the training package."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROS_PACKAGES = ("offroad_seg_node", "offroad_costmap", "offroad_replay")
MESSAGES = "offroad_seg_msgs"


def _imported_modules(path: Path) -> set[str]:
    """Top-level module names a file imports (module level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(package_dir: Path) -> list[Path]:
    files = sorted(package_dir.rglob("*.py"))
    assert files, f"no sources under {package_dir}"
    return files


@pytest.mark.parametrize("package", ROS_PACKAGES)
def test_ros_packages_import_no_other_ros_package_and_no_training_code(package):
    forbidden = (set(ROS_PACKAGES) - {package}) | {"offroad_training", "torch"}
    for path in _sources(ROOT / package / package):
        bad = _imported_modules(path) & forbidden
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_core_sources_import_nothing_of_ours_but_the_core():
    forbidden = {*ROS_PACKAGES, MESSAGES, "offroad_training", "torch"}
    for path in _sources(ROOT / "offroad_core" / "offroad_core"):
        bad = _imported_modules(path) & forbidden
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_every_core_module_imports_without_ros_or_torch():
    """Each module of the core imports in a fresh interpreter where ROS and torch are
    unimportable, and afterwards no ROS or torch module is loaded."""
    modules = sorted(
        ".".join(p.relative_to(ROOT / "offroad_core").with_suffix("").parts)
        for p in _sources(ROOT / "offroad_core" / "offroad_core") if p.name != "__init__.py")
    code = (
        "import sys\n"
        "for blocked in ('rclpy', 'rcl_interfaces', 'rosidl_runtime_py', 'sensor_msgs', "
        "'torch', 'offroad_training'):\n"
        "    sys.modules[blocked] = None\n"
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'torch') "
        "and sys.modules[m] is not None]\n"
        "assert not loaded, loaded\n"
        "print(len(" + repr(modules) + "))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) == len(modules) >= 15
