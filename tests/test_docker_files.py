"""Docker files (issue 8): what they copy exists, they pin the project's versions, they run as a
non-root user, the robot image is arm64 and the training image CUDA 12.8. (No Docker daemon
here: the images themselves are not built by the tests.)"""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
ROBOT = DOCKER / "robot.Dockerfile"
TRAINING = DOCKER / "training.Dockerfile"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _args(path: Path) -> dict[str, str]:
    return dict(a.split("=", 1) for i, a in _instructions(path) if i == "ARG" and "=" in a)


def _pins(path: Path) -> dict[str, str]:
    """name -> version of every ``name==version`` line in a requirements/constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", line.strip())
        if m:
            pins[re.sub(r"\[.*\]", "", m.group(1)).lower().replace("_", "-")] = m.group(2)
    return pins


CONSTRAINTS = _pins(ROOT / "requirements/constraints.txt")
PYTHON_TXT = _pins(ROOT / "requirements/python.txt")


@pytest.mark.parametrize("path", [ROBOT, TRAINING], ids=lambda p: p.name)
def test_every_copy_source_exists(path):
    copies = [a for i, a in _instructions(path) if i in ("COPY", "ADD")]
    assert copies
    for args in copies:
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"{path.name}: COPY source {source} does not exist"


@pytest.mark.parametrize("path", [ROBOT, TRAINING], ids=lambda p: p.name)
def test_runs_as_non_root(path):
    users = [a for i, a in _instructions(path) if i == "USER"]
    assert users, f"{path.name} has no USER"
    final = users[-1]
    resolved = _args(path).get(final.strip("${}"), final)
    assert resolved not in ("root", "0"), f"{path.name} runs as {resolved}"


@pytest.mark.parametrize("path", [ROBOT, TRAINING], ids=lambda p: p.name)
def test_pinned_versions_equal_the_projects(path):
    text = re.sub(r"\\\n", " ", path.read_text())
    args = _args(path)
    for name, value in args.items():
        if name.endswith("_VERSION"):
            package = name.removesuffix("_VERSION").lower().replace("_", "-")
            assert CONSTRAINTS.get(package) == value, \
                f"{path.name}: ARG {name}={value}, constraints.txt has {CONSTRAINTS.get(package)}"
            if package in PYTHON_TXT:
                assert PYTHON_TXT[package] == value
    for package, version in re.findall(r'"?([A-Za-z0-9_\-]+)==([0-9][^"\s]*)"?', text):
        key = package.lower().replace("_", "-")
        if key in CONSTRAINTS and "$" not in version:
            assert CONSTRAINTS[key] == version, f"{path.name}: {package}=={version}"
    # every pip install honours the project's constraints (or installs pinned torch alone)
    for _instruction, rest in _instructions(path):
        for command in rest.split("&&"):
            if "pip install" in command and "--index-url" not in command:
                assert "-c requirements/constraints.txt" in command, command


def test_robot_image_is_arm64_jazzy_with_the_qnn_runtime_of_the_project():
    instructions = _instructions(ROBOT)
    base = next(a for i, a in instructions if i == "FROM")
    assert "--platform=linux/arm64" in base and "jazzy" in base
    args = _args(ROBOT)
    assert args["ONNXRUNTIME_QNN_VERSION"] == CONSTRAINTS["onnxruntime-qnn"] == "2.7.0"
    assert args["ONNXRUNTIME_VERSION"] == CONSTRAINTS["onnxruntime"]
    text = ROBOT.read_text()
    assert "onnxruntime-qnn==${ONNXRUNTIME_QNN_VERSION}" in text
    env = " ".join(a for i, a in instructions if i == "ENV")
    profile = re.search(r"FASTRTPS_DEFAULT_PROFILES_FILE=(\S+)", env).group(1)
    assert profile.endswith("share/offroad_bringup/config/fastdds_large_images.xml")
    assert (ROOT / "launch/config/fastdds_large_images.xml").is_file()
    assert "ADSP_LIBRARY_PATH" in text
    assert "colcon build" in text


def test_training_image_is_cuda_12_8_with_pinned_torch_and_hub_extra():
    base = next(a for i, a in _instructions(TRAINING) if i == "FROM")
    assert re.match(r"nvidia/cuda:12\.8(\.\d+)?-", base), base
    args = _args(TRAINING)
    assert args["TORCH_VERSION"] == CONSTRAINTS["torch"] == PYTHON_TXT["torch"]
    assert args["TORCH_INDEX_URL"].endswith("/cu128")
    assert "offroad_training[train,hub]" in TRAINING.read_text()


def test_readme_documents_build_and_device_access():
    readme = (DOCKER / "README.md").read_text()
    for needle in ("docker buildx build --platform linux/arm64", "--device /dev/fastrpc-cdsp",
                   "training.Dockerfile", "--gpus all", "ADSP_LIBRARY_PATH"):
        assert needle in readme, needle
