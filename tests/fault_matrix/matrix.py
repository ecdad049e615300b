"""Machinery shared by the fault matrix tests (``tests/test_fault_matrix_*.py``).

A matrix is a list of cases run against one real component (a node process over DDS, the
``offroad`` command, a core function). :class:`Tally` records what went wrong with each case:

* crash   the node process died (or a command raised instead of exiting),
* hang    the node stopped answering (the next good input produced nothing in time),
* unclear no log line / error line naming the problem, a traceback, or more than one line
          where a command must print exactly one,
* wrong   anything else the case asserts (not counted by its reason, half-written output,
          wrong exit code, a parameter that reads back a value the node does not run).

Every tally is added to a session total printed at the end of the pytest run
(``fault matrix: N cases, 0 crashes, 0 hangs, 0 unclear messages``).
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from offroad_core.testing import spin_until

KINDS = ("crash", "hang", "unclear", "wrong")
_TALLIES: list[Tally] = []


class Problems(dict):
    """What went wrong with one case, by kind (:data:`KINDS`); several problems of a kind are
    joined."""

    def add(self, kind: str, text: str) -> None:
        """Note a problem of ``kind``."""
        assert kind in KINDS, kind
        self[kind] = f"{self[kind]}; {text}" if kind in self else text


@dataclass
class Tally:
    """Outcomes of the cases of one matrix."""

    name: str
    cases: int = 0
    failures: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def record(self, case: str, problems: dict[str, str] | None = None) -> None:
        """Count one case; ``problems`` maps a kind (:data:`KINDS`) to what went wrong."""
        self.cases += 1
        for kind, text in (problems or {}).items():
            if text:
                self.failures[kind].append(f"{case}: {text}")

    def line(self) -> str:
        """``<name>: N cases, C crashes, H hangs, U unclear messages, W wrong outcomes``."""
        n = {k: len(v) for k, v in self.failures.items()}
        return (f"{self.name}: {self.cases} cases, {n['crash']} crashes, {n['hang']} hangs, "
                f"{n['unclear']} unclear messages, {n['wrong']} wrong outcomes")

    def check(self, minimum: int) -> None:
        """Assert at least ``minimum`` cases ran and none failed (every failure listed)."""
        print(f"\nfault matrix {self.line()}")
        problems = [f"[{k}] {t}" for k in KINDS for t in self.failures[k]]
        assert not problems, self.line() + "\n" + "\n".join(problems)
        assert self.cases >= minimum, f"only {self.cases} cases ran, expected >= {minimum}"


class _Summary:
    """pytest plugin: prints every tally and the session total after the run."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not _TALLIES:
            return
        terminalreporter.section("fault matrix")
        for tally in _TALLIES:
            terminalreporter.write_line(tally.line())
        total = Tally("total")
        for tally in _TALLIES:
            total.cases += tally.cases
            for kind in KINDS:
                total.failures[kind] += tally.failures[kind]
        terminalreporter.write_line(total.line())


def new_tally(config: Any, name: str) -> Tally:
    """A tally included in the session summary (``config`` is pytest's config)."""
    if not config.pluginmanager.has_plugin("fault-matrix-summary"):
        config.pluginmanager.register(_Summary(), "fault-matrix-summary")
    tally = Tally(name)
    _TALLIES.append(tally)
    return tally


def one_clear_line(output: str, needle: str) -> str:
    """'' if ``output`` is exactly one line containing ``needle``, else what is wrong."""
    lines = [line for line in output.splitlines() if line.strip()]
    if any("Traceback" in line for line in lines):
        return f"traceback: {output[-600:]!r}"
    if len(lines) != 1:
        return f"{len(lines)} lines: {output[-600:]!r}"
    if needle.lower() not in lines[0].lower():
        return f"{needle!r} not in {lines[0]!r}"
    return ""


class NodeProcess:
    """A node (or any command) in its own process; its output is read as it comes."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``args`` with stdout and stderr merged."""
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        """Process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def mark(self) -> int:
        """Position in the output, for :meth:`output_since`."""
        return len(self.lines)

    def output_since(self, mark: int) -> list[str]:
        """Lines printed since ``mark``."""
        return self.lines[mark:]

    def wait_for_line(self, needle: str, mark: int, timeout: float) -> bool:
        """Wait until a line containing ``needle`` was printed after ``mark``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(needle in line for line in self.lines[mark:]):
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> int | None:
        """SIGINT, then kill after 15 s; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        return self.proc.returncode

    def text(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)


class RssSampler:
    """Samples a process's resident memory every ``period`` seconds on a thread (context
    manager); ``peak`` is the largest sample."""

    def __init__(self, pid: int, period: float = 0.002) -> None:
        """Sample process ``pid``."""
        import psutil

        self._process = psutil.Process(pid)
        self.period = period
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        """Resident memory now (bytes)."""
        return self._process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self.samples += 1
            time.sleep(self.period)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Peer:
    """rclpy peer in the test process: its own context, node and executor."""

    def __init__(self, name: str) -> None:
        """Create the peer node ``name``; diagnostics of every node are collected."""
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.diag: dict[str, str] = {}
        self.diag_level = -1
        self.diag_count = 0
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, self.qos)
        self._clients: dict[str, Any] = {}

    def _on_diag(self, msg: Any) -> None:
        if msg.status:
            self.diag = {kv.key: kv.value for kv in msg.status[0].values}
            self.diag_level = int.from_bytes(msg.status[0].level, "little") if isinstance(
                msg.status[0].level, bytes) else int(msg.status[0].level)
            self.diag_count += 1

    def spin(self, seconds: float, until: Any = None) -> bool:
        """Spin up to ``seconds``; True as soon as ``until()`` holds (True at the end if None)."""
        return spin_until(self.executor, seconds, until)

    def counter(self, key: str) -> int:
        """A counter of the latest diagnostics (0 when absent)."""
        return int(self.diag.get(key, "0"))

    def fresh_diagnostics(self, timeout: float = 5.0) -> bool:
        """Wait for the next /diagnostics message."""
        seen = self.diag_count
        return self.spin(timeout, lambda: self.diag_count > seen)

    def wait_counter(self, key: str, value: int, timeout: float = 5.0) -> bool:
        """Wait until diagnostics show ``key`` >= ``value``."""
        return self.spin(timeout, lambda: self.counter(key) >= value)

    # ------------------------------------------------------------------ parameters
    def _client(self, node: str, service: str, kind: Any) -> Any:
        key = f"/{node}/{service}"
        if key not in self._clients:
            self._clients[key] = self.node.create_client(kind, key)
        client = self._clients[key]
        assert self.spin(20, client.service_is_ready), f"{key} not available"
        return client

    def _call(self, client: Any, request: Any, timeout: float = 10.0) -> Any:
        future = client.call_async(request)
        self.spin(timeout, future.done)
        return future.result() if future.done() else None

    def set_parameter(self, node: str, name: str, value: Any) -> Any:
        """``SetParameters`` of one value; the ``SetParametersResult`` (None on timeout)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self._client(node, "set_parameters", SetParameters)
        response = self._call(client, SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()]))
        return None if response is None else response.results[0]

    def get_parameter(self, node: str, name: str) -> Any:
        """The value of ``name`` read back through ``GetParameters`` (None if unknown)."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        client = self._client(node, "get_parameters", GetParameters)
        response = self._call(client, GetParameters.Request(names=[name]))
        if response is None or not response.values:
            return None
        return parameter_value_to_python(response.values[0])

    def close(self) -> None:
        """Shut the peer down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)
