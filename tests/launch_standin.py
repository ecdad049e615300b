"""Evaluate a launch file without ``launch``/``launch_ros`` (not installable from PyPI).

    python tests/launch_standin.py FILE [name:=value ...]     # prints one JSON document

Real: the launch file, loaded the way launch loads Python launch files (``SourceFileLoader``
and ``generate_launch_description()``), everything it imports besides ``launch``/
``launch_ros`` (``ament_index_python`` is the installed ros-jazzy wheel and reads
``AMENT_PREFIX_PATH``), the package prefixes and executables it names.

Stood in (the classes the project's launch files use, recording their arguments):
``LaunchDescription``, ``DeclareLaunchArgument``, ``LaunchConfiguration``, ``OpaqueFunction``,
``RegisterEventHandler``, ``OnProcessExit``, ``Shutdown`` (launch) and ``Node``,
``ParameterValue`` (launch_ros). :func:`evaluate` visits a description as ``ros2 launch``
does for these classes (read in launch 3.4.3 / launch_ros 0.26.6, jazzy): ``--show-args`` lists
every declaration in visiting order, the first of a name wins; an argument keeps a value given
on the command line, else takes its default (none: "Required launch argument ... was not
provided"), then must be one of its choices; an opaque function's entities are visited where
it stands; a node's command line is ``<prefix>/lib/<package>/<executable>``, its arguments,
``--ros-args`` + its ROS arguments, then ``--ros-args -r __node:=NAME -r __ns:=/NS`` and one
``--params-file`` per parameters entry (a path that is not a file is skipped with launch_ros'
warning; a dict becomes a YAML file keyed by the node's full name); a ``ParameterValue`` with
a plain value must already have its ``value_type`` (TypeError otherwise), a substitution is
converted by YAML rules.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
import types
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from typing import Any

import yaml


def _caller_file() -> str:
    """The launch file line that created a stand-in object (proves where a node is defined)."""
    here = Path(__file__).resolve()
    for frame in inspect.stack()[2:]:
        if Path(frame.filename).resolve() != here:
            return frame.filename
    return ""


class Recorded:
    """Base of the stand-ins: keeps the constructor's arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.defined_in = args, kwargs, _caller_file()


class LaunchDescription(Recorded):
    def __init__(self, entities: list | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entities = list(entities or [])


class DeclareLaunchArgument(Recorded):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.name = name
        self.default = kwargs.get("default_value")
        self.choices = kwargs.get("choices")
        if self.choices is not None and isinstance(self.default, str) \
                and self.default not in self.choices:
            raise RuntimeError(f'Provided default_value "{self.default}" is not in provided '
                               f'choices "{self.choices}".')


class LaunchConfiguration(Recorded):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.name = name

    def perform(self, context: Context) -> str:
        if self.name not in context.launch_configurations:
            raise RuntimeError(f"launch configuration '{self.name}' does not exist")
        return context.launch_configurations[self.name]


class OpaqueFunction(Recorded): ...


class RegisterEventHandler(Recorded): ...


class OnProcessExit(Recorded): ...


class Shutdown(Recorded): ...


class Node(Recorded): ...


class ParameterValue(Recorded):
    def __init__(self, value: Any, value_type: type | None = None) -> None:
        super().__init__(value, value_type=value_type)
        if isinstance(value, (str, int, float, bool)) and value_type is not None \
                and not isinstance(value, value_type):
            raise TypeError(f"value='{value}' is not an instance of {value_type}")
        self.value, self.value_type = value, value_type


class Context:
    """What the stand-ins' ``perform`` needs: the launch configurations."""

    def __init__(self, configurations: dict[str, str]) -> None:
        self.launch_configurations = dict(configurations)


def install() -> None:
    """Put the stand-in modules ``launch``, ``launch.actions``, ... into ``sys.modules``."""
    layout = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {c.__name__: c for c in (DeclareLaunchArgument, OpaqueFunction,
                                                    RegisterEventHandler, Shutdown)},
        "launch.event_handlers": {"OnProcessExit": OnProcessExit},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "launch_ros.parameter_descriptions": {"ParameterValue": ParameterValue},
    }
    for name, members in layout.items():
        module = types.ModuleType(name)
        module.__dict__.update(members)
        sys.modules[name] = module


def load(path: str | Path) -> LaunchDescription:
    """``generate_launch_description()`` of a Python launch file, loaded as launch does."""
    loader = SourceFileLoader("python_launch_file", str(path))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module.generate_launch_description()


def _perform(value: Any, context: Context) -> Any:
    if isinstance(value, LaunchConfiguration):
        return value.perform(context)
    if isinstance(value, ParameterValue):
        raw = _perform(value.value, context)
        if isinstance(value.value, (str, int, float, bool)) or value.value_type is str:
            return raw
        converted = yaml.safe_load(raw)
        if value.value_type is not None and not isinstance(converted, value.value_type):
            raise ValueError(f"Failed to convert '{raw}' using yaml rules")
        return converted
    if isinstance(value, list):
        return "".join(str(_perform(v, context)) for v in value)
    return value


def _node(node: Node, context: Context, params_dir: Path) -> dict:
    from ament_index_python.packages import get_package_prefix

    kw = node.kwargs
    package, executable = kw["package"], kw["executable"]
    name = _perform(kw["name"], context)
    ns = _perform(kw.get("namespace", ""), context) or ""
    ns = ns if ns.startswith("/") else "/" + ns
    fqn = ns.rstrip("/") + "/" + name
    cmd = [str(Path(get_package_prefix(package)) / "lib" / package / executable)]
    cmd += [_perform(a, context) for a in kw.get("arguments", [])]
    if kw.get("ros_arguments"):
        cmd += ["--ros-args", *[_perform(a, context) for a in kw["ros_arguments"]]]
    cmd += ["--ros-args", "-r", f"__node:={name}", "-r", f"__ns:={ns}"]
    files, overrides, warnings = [], {}, []
    for i, entry in enumerate(kw.get("parameters", [])):
        if isinstance(entry, dict):
            values = {k: _perform(v, context) for k, v in entry.items()}
            overrides.update(values)
            path = params_dir / f"{fqn.strip('/').replace('/', '_')}_{i}.yaml"
            path.write_text(yaml.dump({fqn: {"ros__parameters": values}}))
        else:
            path = Path(_perform(entry, context))
            if not path.is_file():
                warnings.append(f"Parameter file path is not a file: {path}")
                continue
            files.append(str(path))
        cmd += ["--params-file", str(path)]
    return {"package": package, "executable": executable, "name": name, "namespace": ns,
            "fqn": fqn, "cmd": cmd, "params_files": files, "overrides": overrides,
            "warnings": warnings, "defined_in": node.defined_in}


def evaluate(description: LaunchDescription, given: dict[str, str], params_dir: Path) -> dict:
    """``--show-args`` (``arguments``, in order) and the launch of ``description`` with the
    arguments ``given``: final launch configurations, rendered nodes, exit handlers."""
    shown: dict[str, dict] = {}
    context = Context(given)
    nodes, on_exit = [], []

    def visit(entities: list) -> None:
        for entity in entities:
            if isinstance(entity, LaunchDescription):
                visit(entity.entities)
            elif isinstance(entity, DeclareLaunchArgument):
                if entity.name not in context.launch_configurations:
                    if entity.default is None:
                        raise RuntimeError(
                            f'Required launch argument "{entity.name}" was not provided.')
                    context.launch_configurations[entity.name] = _perform(entity.default,
                                                                          context)
                value = context.launch_configurations[entity.name]
                if entity.choices is not None and value not in entity.choices:
                    raise RuntimeError(f'Argument "{entity.name}" provided value "{value}" is '
                                       f"not valid. Valid options are: {entity.choices}")
            elif isinstance(entity, OpaqueFunction):
                visit(entity.kwargs["function"](context) or [])
            elif isinstance(entity, Node):
                nodes.append((entity, _node(entity, context, params_dir)))
            elif isinstance(entity, RegisterEventHandler):
                handler = entity.args[0]
                target = next(n for e, n in nodes if e is handler.kwargs["target_action"])
                on_exit.append({"target": target["fqn"], "actions": [
                    {"type": type(a).__name__, **a.kwargs} for a in handler.kwargs["on_exit"]]})
            else:
                raise TypeError(f"the stand-in does not know {type(entity).__name__}")

    def describe(entities: list) -> None:  # without context: opaque functions stay opaque
        for entity in entities:
            if isinstance(entity, LaunchDescription):
                describe(entity.entities)
            elif isinstance(entity, DeclareLaunchArgument):
                shown.setdefault(entity.name, {
                    "default": entity.default, "choices": entity.choices,
                    "description": entity.kwargs.get("description", ""),
                    "defined_in": entity.defined_in})

    describe(description.entities)
    visit(description.entities)
    return {"arguments": shown, "configurations": context.launch_configurations,
            "nodes": [n for _, n in nodes], "on_exit": on_exit}


# ----------------------------------------------------------------------------- for the tests
def evaluate_file(path: str | Path, arguments: dict[str, str] | None = None,
                  env: dict[str, str] | None = None, cwd: str | Path | None = None) -> dict:
    """Evaluate ``path`` in a fresh interpreter (the stand-in modules never reach the test
    process); ``env`` replaces the environment (e.g. another AMENT_PREFIX_PATH)."""
    import subprocess

    argv = [sys.executable, __file__, str(path),
            *(f"{k}:={v}" for k, v in (arguments or {}).items())]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    assert not done.stderr.strip(), done.stderr
    return json.loads(done.stdout)


def start(node: dict) -> Any:
    """Start a rendered node's command line as launch would (output piped, text)."""
    import subprocess

    return subprocess.Popen(node["cmd"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def shut_down(procs: list[Any], timeout: float = 20.0) -> list[str]:
    """Launch's ``Shutdown``: SIGINT to every process still running, then wait; returns each
    process's output (killed after ``timeout``: its return code shows it)."""
    import signal
    import subprocess

    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            proc.kill()
            outputs.append(proc.communicate()[0])
    return outputs


def probe_parameters(fqn: str, names: list[str], proc: Any, timeout: float = 60.0) -> dict:
    """Ask a running node for ``names`` over its parameter services; an undeclared name maps
    to ``"<undeclared>"``."""
    import time

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
                                        f"{proc.communicate()[0][-2000:]}"
            assert time.monotonic() < deadline, f"{fqn}: no parameter services"
            executor.spin_once(timeout_sec=0.1)

        def call(client: Any, request: Any) -> Any:
            future = client.call_async(request)
            executor.spin_until_future_complete(future, timeout_sec=20.0)
            assert future.done(), f"{fqn}: parameter service did not answer"
            return future.result()

        listed = set(call(lister, ListParameters.Request()).result.names)
        known = [n for n in names if n in listed]
        values = call(getter, GetParameters.Request(names=known)).values
        got: dict[str, Any] = dict.fromkeys(names, "<undeclared>")
        got.update({n: _value(v) for n, v in zip(known, values, strict=True)})
        return got
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=ctx)


def _value(pv: Any) -> Any:
    return {1: pv.bool_value, 2: pv.integer_value, 3: pv.double_value,
            4: pv.string_value}.get(pv.type)


def main(argv: list[str]) -> int:
    """Print the evaluation of ``argv[0]`` with the ``name:=value`` arguments that follow."""
    given = dict(a.split(":=", 1) for a in argv[1:])
    install()
    params_dir = Path(os.environ.get("LAUNCH_STANDIN_PARAMS_DIR") or tempfile.mkdtemp())
    try:
        result = evaluate(load(argv[0]), given, params_dir)
    except Exception as exc:  # reported to the test as data
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result, indent=1, default=str))
    return 0 if "error" not in result else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
