"""Launch files and their parameter files (issue 8).

``launch``/``launch_ros`` are not installable here, so each launch file is parsed with ``ast``:
every package/executable it starts exists in install/, every file it references exists, every
launch argument has a description and every LaunchConfiguration it reads is declared. Then each
node is started with every shipped params file (``--ros-args --params-file F``) and its
parameter services are asked for every value in its section: a name the node did not declare
is reported (rclpy would silently ignore it), a value must equal the file's, and the node must
still run a few seconds later (a rejected value exits with status 2).
"""

import ast
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from offroad_core.costmap.params import PARAMETERS as COSTMAP_PARAMETERS
from offroad_core.segmentation.params import PARAMETERS as SEG_PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
INSTALL = ROOT / "install"
LAUNCH_FILES = sorted(LAUNCH.glob("*.launch.py"))
PARAMS_FILES = sorted(p for p in (LAUNCH / "config").glob("*.yaml")  # the nodes' files
                      if not p.name.startswith("nav2_"))
NODES = {  # node name -> (package, executable, declared parameter names)
    "offroad_segmentation": ("offroad_seg_node", "segmentation_node",
                             {s.name for s in SEG_PARAMETERS}),
    "offroad_costmap": ("offroad_costmap", "costmap_node", {s.name for s in COSTMAP_PARAMETERS}),
}
SHIPPED = {  # node -> every params file that configures it
    "offroad_segmentation": [*PARAMS_FILES, ROOT / "offroad_seg_node/config/segmentation.yaml"],
    "offroad_costmap": [*PARAMS_FILES, ROOT / "offroad_costmap/config/costmap.yaml"],
}
PERCEPTION_ARGS = {"model", "provider", "image_topic", "camera_info_topic", "use_sim_time",
                   "namespace", "params_file", "lifecycle"}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _kw(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _declared(tree: ast.AST) -> dict[str, str]:
    out = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        name = ast.literal_eval(call.args[0])
        desc = _kw(call, "description")
        out[name] = ast.literal_eval(desc) if desc is not None else ""
    return out


def _section(path: Path, node: str) -> dict:
    data = yaml.safe_load(path.read_text()) or {}
    for key in (node, f"/{node}", f"/**/{node}", "/**"):
        if key in data:
            return data[key]["ros__parameters"]
    return {}


# ----------------------------------------------------------------------------- static checks
def test_launch_and_params_files_exist():
    assert {p.name for p in LAUNCH_FILES} == {"offroad_perception.launch.py",
                                              "offroad_replay.launch.py"}
    assert {p.name for p in PARAMS_FILES} >= {"robot.yaml", "replay.yaml"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_only_what_exists(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = _calls(tree, "Node")
    assert nodes, "a launch file starts at least one node"
    for call in nodes:
        package = ast.literal_eval(_kw(call, "package"))
        executable = ast.literal_eval(_kw(call, "executable"))
        exe = INSTALL / package / "lib" / package / executable
        assert exe.is_file(), f"{path.name}: {package}/{executable} is not installed ({exe})"
        name = _kw(call, "name")
        if name is not None and ast.literal_eval(name) in NODES:
            assert NODES[ast.literal_eval(name)][:2] == (package, executable)
        params = _kw(call, "parameters")
        for item in getattr(params, "elts", []):
            if isinstance(item, ast.Dict):
                keys = {ast.literal_eval(k) for k in item.keys}
                declared = NODES[ast.literal_eval(name)][2] | {"use_sim_time"}
                assert keys <= declared, f"{path.name}: undeclared {keys - declared}"
    for const in (n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)):
        if isinstance(const, str) and const.endswith(".yaml"):
            assert (LAUNCH / "config" / const).is_file(), f"{path.name}: missing {const}"
        if isinstance(const, str) and const.endswith(".launch.py"):
            assert (LAUNCH / const).is_file(), f"{path.name}: missing {const}"
    # installed with offroad_costmap (ros2 launch offroad_bringup <file>)
    installed = INSTALL / "offroad_bringup/share/offroad_bringup/launch" / path.name
    assert installed.is_file() and installed.read_text() == path.read_text()


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_arguments_are_described_and_declared(path):
    tree = ast.parse(path.read_text())
    declared = _declared(tree)
    for name, description in declared.items():
        assert len(description) > 15, f"{path.name}: argument {name!r} needs a description"
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration")}
    assert used <= set(declared), f"{path.name}: undeclared {used - set(declared)}"
    if path.name == "offroad_perception.launch.py":
        assert set(declared) >= PERCEPTION_ARGS
    for include in _calls(tree, "IncludeLaunchDescription"):
        args = _kw(include, "launch_arguments")
        keys = {ast.literal_eval(k) for k in args.func.value.keys}
        target = ast.parse((LAUNCH / "offroad_perception.launch.py").read_text())
        assert keys <= set(_declared(target)), f"{path.name}: passes unknown {keys}"


def test_installed_params_files():
    share = INSTALL / "offroad_bringup/share/offroad_bringup/config"
    for path in PARAMS_FILES:
        assert (share / path.name).read_text() == path.read_text()


@pytest.mark.parametrize("node", sorted(NODES))
def test_params_files_name_only_declared_parameters(node):
    declared = NODES[node][2] | {"use_sim_time"}
    for path in SHIPPED[node]:
        section = _section(path, node)
        assert section, f"{path} has no section for {node}"
        assert set(section) <= declared, f"{path}: {node} does not declare " \
                                         f"{sorted(set(section) - declared)}"


# ----------------------------------------------------------------------------- nodes over DDS
def _value(pv):
    return {1: pv.bool_value, 2: pv.integer_value, 3: pv.double_value,
            4: pv.string_value}.get(pv.type)


def _probe(fqn: str, names: list[str], proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    """Ask a running node for ``names``; returns {name: value or missing}."""
    import rclpy
    from rcl_interfaces.srv import GetParameters, ListParameters
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    probe = rclpy.create_node("launch_test_probe", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(probe)
    try:
        lister = probe.create_client(ListParameters, f"{fqn}/list_parameters")
        getter = probe.create_client(GetParameters, f"{fqn}/get_parameters")
        deadline = time.monotonic() + timeout
        while not (lister.service_is_ready() and getter.service_is_ready()):
            assert proc.poll() is None, f"{fqn} exited with {proc.returncode}: " \
                                        f"{proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, f"{fqn}: no parameter services"
            time.sleep(0.1)

        def call(client, request):
            future = client.call_async(request)
            executor.spin_until_future_complete(future, timeout_sec=20.0)
            assert future.done(), f"{fqn}: parameter service did not answer"
            return future.result()

        listed = set(call(lister, ListParameters.Request()).result.names)
        known = [n for n in names if n in listed]
        values = call(getter, GetParameters.Request(names=known)).values
        got = dict.fromkeys(names, "<undeclared>")
        got.update({n: _value(v) for n, v in zip(known, values, strict=True)})
        return got
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=ctx)


def _start(node: str, params: Path, model: Path, namespace: str = "") -> subprocess.Popen:
    package, executable, _ = NODES[node]
    cmd = [str(INSTALL / package / "lib" / package / executable), "--ros-args",
           "--params-file", str(params)]
    if node == "offroad_segmentation":
        # model and provider are launch-argument overrides: a tiny CPU model stands in
        cmd += ["-p", f"model_path:={model}", "-p", "provider:=cpu"]
    if namespace:
        cmd += ["-r", f"__ns:={namespace}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_running_node(node, params, proc, fqn):
    section = _section(params, node)
    expected = {k: v for k, v in section.items()
                if not (node == "offroad_segmentation" and k in ("model_path", "provider"))}
    got = _probe(fqn, sorted(expected), proc)
    for name, value in expected.items():
        want = float(value) if isinstance(value, float) else value
        assert got[name] == want, f"{params.name}: {fqn} {name} = {got[name]!r}, file {value!r}"
    time.sleep(1.0)
    assert proc.poll() is None, f"{fqn} with {params} exited {proc.returncode}: " \
                                f"{proc.communicate()[1][-2000:]}"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from offroad_core.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", confidence=True)


def _wildcard(path: Path, node: str) -> bool:
    return f"/**/{node}" in (yaml.safe_load(path.read_text()) or {})


@pytest.mark.ros
@pytest.mark.parametrize("node", sorted(NODES))
def test_every_shipped_params_file_starts_the_node(node, tiny_model):
    # Started together to save start-up time: files with "/**/" keys run in a namespace of
    # their own (which also proves the wildcard), the others in the root namespace.
    runs = [(params, f"/run{i}" if _wildcard(params, node) else "")
            for i, params in enumerate(SHIPPED[node])]
    assert sum(ns == "" for _, ns in runs) <= 1
    procs = [(params, ns, _start(node, params, tiny_model, ns)) for params, ns in runs]
    try:
        for params, ns, proc in procs:
            _check_running_node(node, params, proc, f"{ns}/{node}")
    finally:
        for *_, proc in procs:
            proc.terminate()
        for *_, proc in procs:
            proc.wait(timeout=20)


@pytest.mark.ros
@pytest.mark.parametrize("node", sorted(NODES))
def test_a_misspelt_parameter_refuses_to_start(tmp_path, tiny_model, node):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"{node}:\n  ros__parameters:\n    resolutoin: 0.1\n")
    proc = _start(node, bad, tiny_model)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown parameter(s) resolutoin" in lines[0], err
