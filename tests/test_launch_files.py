"""Launch files and their parameter files (issues 8 and 18), tested without ``launch``.

``launch``/``launch_ros`` are not installable here, so each launch file is evaluated by
``tests/launch_standin.py`` (the real file and ament index, stand-ins for the launch classes;
its docstring says what is real): ``--show-args`` lists only arguments whose shown default is
the value the nodes get (the replay forces ``use_sim_time``/``lifecycle`` and does not offer
them), every argument reaches the node it configures, bad values are refused, the replay ends
the launch when it exits. Then the rendered command lines are started: the replay launch runs
a bag to its end and stops cleanly, and every message of the nodes is one ROS log line (the
provider ``auto`` fallback warning and the projection-tables line once each). Each node is
also started with every shipped params file and asked for every value in its section: a name
the node did not declare is reported (rclpy would silently ignore it), a value must equal the
file's, and the node must still run a few seconds later (a rejected value exits 2).
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from offroad_core.costmap.params import PARAMETERS as COSTMAP_PARAMETERS
from offroad_core.segmentation.params import PARAMETERS as SEG_PARAMETERS

sys.path.insert(0, str(Path(__file__).parent))
import launch_standin as standin

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
INSTALL = ROOT / "install"
SHARE = INSTALL / "offroad_bringup/share/offroad_bringup"
PERCEPTION, REPLAY = LAUNCH / "offroad_perception.launch.py", LAUNCH / "offroad_replay.launch.py"
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
PERCEPTION_ARGS = ["model", "provider", "image_topic", "camera_info_topic", "use_sim_time",
                   "namespace", "params_file", "lifecycle", "log_level"]
REPLAY_ARGS = ["bag", "model", "provider", "image_topic", "camera_info_topic", "params_file",
               "namespace", "log_level", "rate", "loop", "start_offset", "exit_on_end"]
ROS_LOG_LINE = re.compile(r"\[(DEBUG|INFO|WARN|ERROR|FATAL)\] \[\d+\.\d+\] \[[\w./]+\]: ")


def _section(path: Path, node: str) -> dict:
    data = yaml.safe_load(path.read_text()) or {}
    for key in (node, f"/{node}", f"/**/{node}", "/**"):
        if key in data:
            return data[key]["ros__parameters"]
    return {}


def _nodes(evaluation: dict) -> dict:
    assert "error" not in evaluation, evaluation["error"]
    return {n["name"]: n for n in evaluation["nodes"]}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from offroad_core.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", confidence=True)


# ----------------------------------------------------------------------------- files
def test_launch_and_params_files_exist_and_are_installed():
    assert {p.name for p in LAUNCH.glob("*.launch.py")} == {PERCEPTION.name, REPLAY.name}
    assert {p.name for p in PARAMS_FILES} >= {"robot.yaml", "replay.yaml"}
    for path in (PERCEPTION, REPLAY):  # ros2 launch offroad_bringup <file>
        assert (SHARE / "launch" / path.name).read_text() == path.read_text()
    for path in PARAMS_FILES:
        assert (SHARE / "config" / path.name).read_text() == path.read_text()


@pytest.mark.parametrize("node", sorted(NODES))
def test_params_files_name_only_declared_parameters(node):
    declared = NODES[node][2] | {"use_sim_time"}
    for path in SHIPPED[node]:
        section = _section(path, node)
        assert section, f"{path} has no section for {node}"
        assert set(section) <= declared, f"{path}: {node} does not declare " \
                                         f"{sorted(set(section) - declared)}"


# ----------------------------------------------------------------------------- evaluated
def test_show_args_offers_exactly_what_can_be_changed():
    perception = standin.evaluate_file(PERCEPTION, {"model": "m.onnx"})["arguments"]
    replay = standin.evaluate_file(REPLAY, {"model": "m.onnx", "bag": "b"})["arguments"]
    assert list(perception) == PERCEPTION_ARGS
    assert list(replay) == REPLAY_ARGS  # no use_sim_time, no lifecycle: the replay forces them
    for shown in (perception, replay):
        for name, arg in shown.items():
            assert len(arg["description"]) > 15, f"argument {name!r} needs a description"
            if arg["choices"]:
                assert arg["default"] in arg["choices"], name
    assert perception["model"]["default"] is None and replay["bag"]["default"] is None
    assert replay["exit_on_end"]["default"] == "true"
    # default configuration paths: the installed share directory, found by the ament index
    assert perception["params_file"]["default"] == str(SHARE / "config/robot.yaml")
    assert replay["params_file"]["default"] == str(SHARE / "config/replay.yaml")


@pytest.mark.parametrize("path", [PERCEPTION, REPLAY], ids=lambda p: p.name)
def test_shown_defaults_are_the_values_the_nodes_get(path):
    required = {"model": "/models/m.onnx", "bag": "/bags/b"}
    evaluation = standin.evaluate_file(path, required)
    shown = evaluation["arguments"]
    nodes = _nodes(evaluation)
    seg, costmap = nodes["offroad_segmentation"], nodes["offroad_costmap"]
    replay = path == REPLAY
    for node in (seg, costmap):
        assert Path(node["cmd"][0]).is_file(), node["cmd"][0]  # installed executable
        assert node["params_files"] == [shown["params_file"]["default"]]
        assert node["overrides"]["use_sim_time"] is replay  # forced true by the replay
        assert node["cmd"][node["cmd"].index("--log-level") + 1] == shown["log_level"]["default"]
        assert not node["warnings"]
    assert seg["overrides"] == {
        "model_path": "/models/m.onnx", "provider": shown["provider"]["default"],
        "image_topic": shown["image_topic"]["default"],
        "camera_info_topic": shown["camera_info_topic"]["default"],
        "lifecycle": False, "use_sim_time": replay}
    assert seg["namespace"] == costmap["namespace"] == "/"
    if replay:  # and the params file agrees with what the replay forces
        section = _section(Path(shown["params_file"]["default"]), "offroad_segmentation")
        assert section["use_sim_time"] is True and section["lifecycle"] is False
        bag = nodes["offroad_bag_replay"]
        assert bag["cmd"][1:8] == ["/bags/b", "--rate", "1.0", "--start-offset", "0.0",
                                   "--wait-for", "/camera/image_raw"]
        assert "--loop" not in bag["cmd"]
        assert evaluation["on_exit"] == [{"target": "/offroad_bag_replay", "actions": [
            {"type": "Shutdown", "reason": "the bag replay ended (exit_on_end)"}]}]
    else:
        assert evaluation["on_exit"] == []


def test_every_argument_reaches_its_node(tmp_path):
    other = str(SHARE / "config/replay.yaml")
    given = {"model": "/m.onnx", "provider": "cpu", "image_topic": "/cam/img",
             "camera_info_topic": "/cam/info", "use_sim_time": "true", "namespace": "robot",
             "params_file": other, "lifecycle": "true", "log_level": "warn"}
    nodes = _nodes(standin.evaluate_file(PERCEPTION, given))
    seg, costmap = nodes["offroad_segmentation"], nodes["offroad_costmap"]
    assert seg["overrides"] == {"model_path": "/m.onnx", "provider": "cpu",
                                "image_topic": "/cam/img", "camera_info_topic": "/cam/info",
                                "lifecycle": True, "use_sim_time": True}
    for node in (seg, costmap):
        assert node["fqn"] == f"/robot/{node['name']}" and node["params_files"] == [other]
        assert node["cmd"][node["cmd"].index("--log-level") + 1] == "warn"
    replay = standin.evaluate_file(REPLAY, {"model": "/m.onnx", "bag": "/b", "rate": "2.5",
                                            "loop": "true", "start_offset": "1.5",
                                            "image_topic": "/cam/img", "exit_on_end": "false"})
    bag = _nodes(replay)["offroad_bag_replay"]["cmd"]
    assert bag[1:8] == ["/b", "--rate", "2.5", "--start-offset", "1.5", "--wait-for",
                        "/cam/img"] and "--loop" in bag
    assert replay["on_exit"] == []  # exit_on_end:=false: the nodes outlive the bag


@pytest.mark.parametrize(("path", "given", "needle"), [
    (PERCEPTION, {}, 'Required launch argument "model" was not provided'),
    (PERCEPTION, {"model": "m", "provider": "gpu"}, 'Argument "provider" provided value "gpu"'),
    (REPLAY, {"model": "m"}, 'Required launch argument "bag" was not provided'),
    (REPLAY, {"model": "m", "bag": "b", "exit_on_end": "yes"}, 'Argument "exit_on_end"'),
])
def test_bad_arguments_are_refused(path, given, needle):
    assert needle in standin.evaluate_file(path, given).get("error", ""), given


# ----------------------------------------------------------------------------- nodes over DDS
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
    got = standin.probe_parameters(fqn, sorted(expected), proc)
    for name, value in expected.items():
        want = float(value) if isinstance(value, float) else value
        assert got[name] == want, f"{params.name}: {fqn} {name} = {got[name]!r}, file {value!r}"
    time.sleep(1.0)
    assert proc.poll() is None, f"{fqn} with {params} exited {proc.returncode}: " \
                                f"{proc.communicate()[1][-2000:]}"


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
    assert lines[0].startswith("[FATAL] ") and ROS_LOG_LINE.match(lines[0]), err


@pytest.mark.ros
def test_replay_launch_runs_a_bag_to_its_end_and_every_line_is_logged_once(tmp_path,
                                                                            tiny_model):
    from test_shutdown import write_bag

    # 5 s: the costmap refuses labels until its /clock subscription has matched (the replay
    # waits for the segmentation node only), on a loaded machine up to a few seconds
    bag = write_bag(tmp_path / "bag", frames=100, rate_hz=20.0)
    evaluation = standin.evaluate_file(REPLAY, {"bag": str(bag), "model": str(tiny_model),
                                                "namespace": "replay_launch_test"})
    nodes = _nodes(evaluation)
    assert evaluation["configurations"]["provider"] == "auto"  # the replay's default
    names = ["offroad_segmentation", "offroad_costmap", "offroad_bag_replay"]
    procs = [standin.start(nodes[name]) for name in names]
    try:
        # the bag ends by itself: the replay waits for the model, plays 5 s, lingers 2 s
        assert procs[2].wait(timeout=120) == 0, procs[2].communicate()[0]
        assert evaluation["on_exit"][0]["target"] == nodes["offroad_bag_replay"]["fqn"]
        assert all(p.poll() is None for p in procs[:2]), "a perception node died early"
    finally:
        outputs = dict(zip(names, standin.shut_down(procs), strict=True))  # launch's Shutdown
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert "replay finished" in outputs["offroad_bag_replay"]
    assert "/camera/image_raw: 100" in outputs["offroad_bag_replay"]
    for name in names[:2]:
        stray = [line for line in outputs[name].splitlines() if not ROS_LOG_LINE.match(line)]
        assert not stray, f"{name} printed outside the ROS logger:\n{outputs[name]}"
    seg = outputs["offroad_segmentation"].splitlines()
    auto = [line for line in seg if "provider 'auto'" in line]
    assert len(auto) == 1 and auto[0].startswith("[WARN] "), seg  # once, through the logger
    tables = [line for line in outputs["offroad_costmap"].splitlines()
              if "projection tables for" in line]
    assert len(tables) == 1, outputs["offroad_costmap"]
    assert "projection tables for 80x64 labels" in tables[0]  # the tiny model's labels


@pytest.mark.ros
def test_log_level_applies_to_every_line(tiny_model):
    # provider auto on a machine without an HTP: the fallback warning is the only line at
    # log_level warn, and nothing at all is printed at log_level error
    for level, expected in (("warn", 1), ("error", 0)):
        evaluation = standin.evaluate_file(PERCEPTION, {
            "model": str(tiny_model), "provider": "auto", "log_level": level,
            "namespace": f"log_level_{level}"})
        proc = standin.start(_nodes(evaluation)["offroad_segmentation"])
        try:
            standin.probe_parameters(f"/log_level_{level}/offroad_segmentation", ["provider"],
                                     proc)
        finally:
            (output,) = standin.shut_down([proc])
        assert proc.returncode == 0, output
        lines = output.splitlines()
        assert len(lines) == expected, (level, output)
        assert all(line.startswith("[WARN] ") and "provider 'auto'" in line for line in lines)
