"""What both ROS nodes share around their pipelines: parameter declaration and runtime changes
from one :class:`~offroad_core.params.ParamSpec` table, per-reason throttled logging, a guard
that keeps a faulting callback from taking the node down, and ``main()`` with clean shutdown.

rclpy is imported inside the functions that need it (the core itself never imports ROS), so
the node packages stay thin and behave identically.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from offroad_core.exit_codes import EXIT_BAD_INPUT, EXIT_BUG, EXIT_OK
from offroad_core.node_signals import defer_stop_signals, ignore_stop_signals, stop_requested
from offroad_core.params import (
    BUILTIN_PARAMETERS,
    ConfigError,
    ParamSpec,
    check_values,
    descriptor,
)

LOG_THROTTLE_S = 5.0
STOP_POLL_S = 0.1  # longest wait of the executor before it looks at a stop request
T = TypeVar("T")


def declare_parameters(node: Any, specs: tuple[ParamSpec, ...],
                       validate: Callable[[dict[str, Any]], T] | None = None) -> T:
    """Declare every parameter of ``specs`` on ``node`` and validate the values.

    Raises :class:`ConfigError` listing every problem at once: values rclpy refuses (type,
    range), names in the params file or command line that the node does not have (rclpy would
    silently ignore a misspelt name) and what ``validate`` (the node's checks; default: the
    table's types, choices and ranges) finds in the rest. Returns ``validate``'s result (by
    default the dict of values).
    """
    from rclpy.exceptions import ParameterException

    problems = []
    values: dict[str, Any] = {}
    for spec in specs:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default,
                                                       descriptor(spec)).value
        except (ParameterException, TypeError, ValueError) as exc:
            problems.append(f"{spec.name}: {_one_line(exc)}")
    known = {s.name for s in specs} | BUILTIN_PARAMETERS
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    unknown = sorted(n for n in overrides if n not in known and not n.startswith("qos_overrides."))
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)} (misspelt? the node's README "
                        "lists its parameters)")
    refused = {p.split(":", 1)[0] for p in problems}
    try:
        result = validate(values) if validate is not None else _checked(specs, values)
    except ConfigError as exc:
        problems += [p for p in exc.problems if p.split(":", 1)[0] not in refused]
    if problems:
        raise ConfigError(problems)
    return result


def _checked(specs: tuple[ParamSpec, ...], values: dict[str, Any]) -> dict[str, Any]:
    checked, problems = check_values(specs, values)
    if problems:
        raise ConfigError(problems)
    return checked


def accept_runtime_changes(node: Any, specs: tuple[ParamSpec, ...],
                           apply: Callable[[dict[str, Any]], None]) -> None:
    """Validate runtime parameter changes like at start, then apply them.

    Read-only parameters are refused by rclpy itself (their descriptor says so). For dynamic
    ones, ``apply`` receives every parameter's value after the change; it raises
    :class:`ConfigError` to refuse (the caller of ``set_parameters`` gets the reason and the
    parameter keeps its value) or applies the new configuration.
    """
    from rcl_interfaces.msg import SetParametersResult

    names = {s.name for s in specs}

    def on_set(parameters: list[Any]) -> Any:
        changes = {p.name: p.value for p in parameters if p.name in names}
        if not changes:
            return SetParametersResult(successful=True)
        values = {n: node.get_parameter(n).value for n in names}
        values.update(changes)
        try:
            apply(values)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


class ReasonLog:
    """Counts problems by reason and logs each reason at most once per ``period`` seconds.

    One throttle per reason: a frequent problem never hides a different one.
    """

    def __init__(self, log: Callable[[str], None], period: float = LOG_THROTTLE_S) -> None:
        """``log`` writes one line (e.g. a ROS logger's ``error``)."""
        self._log = log
        self.period = period
        self.counts: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self.last = ""
        self._lock = threading.Lock()

    def __call__(self, reason: str, message: str) -> None:
        """Count one problem; log it unless this reason was logged within ``period``."""
        now = time.monotonic()
        with self._lock:
            self.counts[reason] += 1
            self.last = f"{reason}: {message}"
            due = now - self._logged_at.get(reason, -math.inf) >= self.period
            if due:
                self._logged_at[reason] = now
            count = self.counts[reason]
        if due:
            self._log(f"{message} [{reason}, {count} so far]")

    @property
    def total(self) -> int:
        """Problems counted so far, all reasons."""
        return sum(self.counts.values())


class CallbackGuard:
    """Wraps callbacks and timers: an exception is counted by callback, logged (with its
    traceback the first time) and swallowed, so the node keeps serving."""

    def __init__(self, logger: Any) -> None:
        """``logger`` is the node's ROS logger."""
        self._logger = logger
        self.faults: Counter[str] = Counter()
        self._reasons = ReasonLog(logger.error)

    def __call__(self, name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback`` wrapped; ``name`` keys the fault counter (``fault_<name>``)."""
        def guarded(*args: Any) -> Any:
            try:
                return callback(*args)
            except Exception as exc:  # the guard's whole point: the node must survive
                self.faults[name] += 1
                if self.faults[name] == 1:
                    self._logger.error(f"{name} raised (counted as fault_{name}; the node keeps "
                                       f"running):\n{traceback.format_exc()}")
                else:
                    self._reasons(name, f"{name} raised {type(exc).__name__}: {exc}")
                return None
        return guarded


def params_files_usable(name: str, args: list[str] | None = None) -> bool:
    """Check every ``--params-file`` of the ROS command line before rcl reads it.

    rcl refuses a missing, unreadable or malformed file with a log line of its own plus a
    parser trace; this logs one clear FATAL line instead (``params file ...``) and returns
    False (the caller exits 2). ``args`` defaults to ``sys.argv``.
    """
    tokens = list(sys.argv if args is None else args)
    in_ros = False
    for i, token in enumerate(tokens):
        if token in ("--ros-args", "--"):
            in_ros = token == "--ros-args"
        elif in_ros and token == "--params-file":
            path = tokens[i + 1] if i + 1 < len(tokens) else ""
            problem = params_file_problem(path) if path else "--params-file needs a path"
            if problem:
                from rclpy.logging import get_logger

                get_logger(name).fatal(problem)
                return False
    return True


def params_file_problem(path: str) -> str | None:
    """What makes ``path`` unusable as a ROS params file (one line), or None."""
    import yaml

    where = f"params file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{where}: not found"
    except IsADirectoryError:
        return f"{where}: is a directory, not a YAML file"
    except PermissionError:
        return f"{where}: permission denied"
    except UnicodeDecodeError:
        return f"{where}: not UTF-8 text (a YAML file is expected)"
    except OSError as exc:
        return f"{where}: cannot be read ({exc.strerror})"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        return f"{where}: not valid YAML ({line}{getattr(exc, 'problem', None) or exc})"
    if data is None:
        return None  # empty: rcl accepts it and it sets nothing
    if not isinstance(data, dict):
        return (f"{where}: expected '<node>: ros__parameters: {{name: value}}' sections, found "
                f"a {type(data).__name__}")
    return _section_problem(data, where, "the top level")


def _section_problem(data: dict, where: str, at: str) -> str | None:
    """Namespace/node levels down to ``ros__parameters`` (what rcl's parser accepts)."""
    if "ros__parameters" in data:
        params = data["ros__parameters"]
        if not isinstance(params, dict):
            return f"{where}: ros__parameters of {at} must be a mapping of name: value"
        return _values_problem(params, where, "")
    for key, value in data.items():
        if not isinstance(value, dict):
            return (f"{where}: {key!r} in {at} is not under ros__parameters (expected "
                    "'<node>: ros__parameters: {name: value}')")
        problem = _section_problem(value, where, f"section {key!r}")
        if problem:
            return problem
    return None


def _values_problem(params: dict, where: str, prefix: str) -> str | None:
    """Parameter values rcl cannot read: lists mixing types (nested mappings are dotted names)."""
    for key, value in params.items():
        if isinstance(value, dict):
            problem = _values_problem(value, where, f"{prefix}{key}.")
            if problem:
                return problem
        elif isinstance(value, list) and len({type(v) for v in value}) > 1:
            return (f"{where}: {prefix}{key} is a list mixing "
                    f"{', '.join(sorted({type(v).__name__ for v in value}))} (ROS parameter "
                    "lists hold one type)")
    return None


def run_node(factory: Callable[[], Any], name: str, args: list[str] | None = None,
             start: Callable[[Any], bool] | None = None,
             stop: Callable[[Any], None] | None = None) -> int:
    """``main()`` of a node process: init, create, spin, clean shutdown; returns the exit status.

    0 on a normal stop (SIGINT, SIGTERM from launch, external shutdown), whatever the node was
    doing when the signal landed; 2 for invalid parameters or an unusable params file (one
    FATAL log line) or when ``start(node)`` returns False; 1 only for a bug (its traceback in
    one FATAL log message).

    A signal is a request, never an exception (:mod:`offroad_core.node_signals`): rclpy's own
    handlers, which shut the context down from another thread under running callbacks, are
    not installed. The executor looks at the request at least every ``STOP_POLL_S``; then the
    node's ``stop``, its destruction and the context shutdown run in order on the main thread,
    and later signals are ignored.
    """
    defer_stop_signals()
    try:
        return _run(factory, name, args, start, stop)
    finally:
        ignore_stop_signals()


def _run(factory: Callable[[], Any], name: str, args: list[str] | None,
         start: Callable[[Any], bool] | None, stop: Callable[[Any], None] | None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.logging import get_logger
    from rclpy.signals import SignalHandlerOptions

    log = get_logger(name)
    if stop_requested() is not None:  # stopped while the node's modules were imported
        return EXIT_OK
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # rcl refuses the command line
        log.fatal(f"cannot start: {_one_line(exc)}")
        return EXIT_BAD_INPUT
    node = executor = None
    status = EXIT_OK
    try:
        try:
            node = factory()
        except ConfigError as exc:
            log.fatal(str(exc))
            return EXIT_BAD_INPUT
        except Exception as exc:
            if type(exc).__name__ in ("RCLError", "ParameterException",
                                      "InvalidParameterTypeException"):
                log.fatal(f"cannot start: {_one_line(exc)}")
                return EXIT_BAD_INPUT
            raise
        if start is not None and not start(node):
            return EXIT_OK if stop_requested() is not None else EXIT_BAD_INPUT
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while stop_requested() is None and executor.context.ok():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except ExternalShutdownException:
        pass
    except Exception:
        if stop_requested() is None:
            log.fatal(f"stopped by a bug (exit status {EXIT_BUG}):\n{traceback.format_exc()}")
            status = EXIT_BUG
    finally:
        _quietly(lambda: stop(node) if stop is not None and node is not None else None)
        _quietly(lambda: executor.shutdown() if executor is not None else None)
        _quietly(lambda: node.destroy_node() if node is not None else None)
        _quietly(rclpy.try_shutdown)
    return status


def _quietly(action: Callable[[], Any]) -> None:
    """Run a cleanup step; an error while shutting down changes nothing."""
    try:
        action()
    except Exception:
        pass


def _one_line(exc: BaseException) -> str:
    """The first meaningful line of an exception message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
