"""Clean shutdown under traffic (issue 18, items 1 and 2): a node stopped by SIGINT (Ctrl-C) or
by launch (SIGINT, escalated to SIGTERM) exits 0 whatever it was doing, and so does the bag
replay.

All kinds run at once, ``PARALLEL`` processes of each node kind (a namespace per process),
while a publisher in this process floods their inputs: camera images and CameraInfo for the
segmentation node (tiny CPU model), labels, SegmentationInfo and CameraInfo for the costmap
node. A lifecycle segmentation node idles unconfigured (no timer, no traffic: only the stop
poll wakes it) and the replay plays a looping bag or waits for a subscriber that never comes.
Every process is interrupted at a random moment of its life (seeded, the seed is printed) and
started again: most signals land while it serves traffic, some during start-up (module
imports, model load, DDS discovery), some cycles get a second signal shortly after the first
(Ctrl-C pressed twice, launch's SIGINT -> SIGTERM escalation) and some start with SIGTERM.
Every non-zero exit is counted with its output; the count must be 0.

Not covered: a signal before the console script runs our code (interpreter start, entry-point
lookup; the summary prints how long that takes): no Python program can defer it sooner.
"""

from __future__ import annotations

import os
import random
import re
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install"
PARAMS = ROOT / "launch" / "config" / "replay.yaml"
PARALLEL = 3  # processes per node kind at a time (2 cores: start-up dominates)
EXIT_TIMEOUT_S = 60.0  # then a hang (not launch's 15 s: 9 starts on 2 loaded cores took 13.7 s)
H, W = 64, 80  # tiny model input = label size = flood image size
ROS_LOG_LINE = re.compile(r"\[(DEBUG|INFO|WARN|ERROR|FATAL)\] \[\d+\.\d+\] \[[\w./]+\]: ")


@dataclass(frozen=True)
class Kind:
    """One kind of process under test."""

    package: str
    executable: str
    ready_line: str | None  # logged once it serves; None: serving as soon as signals defer
    sigints: int  # the floor for the nodes: at least 50 SIGINT interrupts each
    sigterms: int
    parallel: int = PARALLEL

    def command(self, namespace: str, model: Path, bag: Path, variant: int) -> list[str]:
        exe = str(INSTALL / self.package / "lib" / self.package / self.executable)
        if self.executable == "replay":
            if variant % 2:  # waits for a subscriber that never comes
                return [exe, str(bag), "--remap", f"/camera/image_raw:={namespace}/image",
                        "--wait-for", f"{namespace}/image", "--wait-timeout", "60"]
            return [exe, str(bag), "--loop", "--delay", "0"]
        cmd = [exe, "--ros-args", "--params-file", str(PARAMS), "-p", "use_sim_time:=false",
               "-r", f"__ns:={namespace}"]
        if self.package == "offroad_seg_node":
            cmd += ["-p", f"model_path:={model}", "-p", "provider:=cpu"]
        if self.ready_line is None:
            cmd += ["-p", "lifecycle:=true"]
        return cmd


KINDS = {
    "segmentation": Kind("offroad_seg_node", "segmentation_node", " on CPUExecutionProvider",
                         50, 5),
    "costmap": Kind("offroad_costmap", "costmap_node", "grid ", 50, 5),
    "lifecycle": Kind("offroad_seg_node", "segmentation_node", None, 4, 1, parallel=1),
    "replay": Kind("offroad_replay", "replay", " messages", 12, 4, parallel=2),
}


@dataclass
class Plan:
    """When and how one process is stopped."""

    first: int  # signal number; after_ready False: during start-up (delay from _deferred)
    after_ready: bool
    delay: float
    second: int | None = None
    second_delay: float = 0.0

    @classmethod
    def draw(cls, rng: random.Random, first: int) -> Plan:
        after_ready = rng.random() >= 0.2
        second = rng.choice([signal.SIGINT, signal.SIGTERM]) if rng.random() < 0.25 else None
        return cls(first, after_ready, rng.uniform(0.0, 1.0), second, rng.uniform(0.0, 0.5))


@dataclass
class Outcome:
    kind: str
    plan: Plan
    returncode: int | None
    exit_s: float  # from the first signal to the exit
    deferred_s: float  # from the process start to its signals being deferred
    output: str
    after_signal: str  # the part of the output printed after the first signal
    ready: bool


def _deferred(pid: int) -> bool:
    """True once the process catches SIGTERM: its console script deferred the stop signals."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


@dataclass
class Flood:
    """Publishes every node input as fast as the loop goes (about 100 Hz per topic)."""

    segmentation: list[str]  # namespaces of segmentation processes (outputs counted)
    costmap: list[str]  # namespaces of costmap processes (inputs published, grids counted)
    outputs: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Flood:
        return self._thread.start() or self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        import rclpy
        from nav_msgs.msg import OccupancyGrid
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from offroad_core import ontology
        from offroad_seg_msgs.msg import SegmentationInfo

        ctx = rclpy.Context()
        rclpy.init(context=ctx)
        node = rclpy.create_node("shutdown_flood", context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        rng = np.random.default_rng(0)
        rgb = Image(height=H, width=W, encoding="rgb8", step=W * 3,
                    data=rng.integers(0, 256, (H, W, 3), dtype=np.uint8).tobytes())
        labels = Image(height=H, width=W, encoding="mono8", step=W,
                       data=rng.integers(0, 7, (H, W), dtype=np.uint8).tobytes())
        cam = CameraInfo(height=H, width=W, distortion_model="plumb_bob", d=[0.0] * 5,
                         k=[W / 2, 0.0, W / 2, 0.0, W / 2, H / 2, 0.0, 0.0, 1.0])
        info = SegmentationInfo(
            class_ids=[c.id for c in ontology.CLASSES], class_names=list(ontology.CLASS_NAMES),
            class_categories=[c.category.value for c in ontology.CLASSES],
            palette_rgb=[v for c in ontology.CLASSES for v in c.rgb],
            ignore_value=ontology.IGNORE_INDEX, height=H, width=W, model_id="flood")
        for msg in (rgb, labels, cam, info):
            msg.header.frame_id = "camera"
        pubs = [(node.create_publisher(Image, "/camera/image_raw", qos), rgb),
                (node.create_publisher(CameraInfo, "/camera/camera_info", qos), cam)]
        for ns in self.costmap:
            pubs += [(node.create_publisher(Image, f"{ns}/segmentation/labels", qos), labels),
                     (node.create_publisher(CameraInfo, f"{ns}/segmentation/camera_info", qos),
                      cam)]
            node.create_publisher(SegmentationInfo, f"{ns}/segmentation/info",
                                  latched).publish(info)
            node.create_subscription(OccupancyGrid, f"{ns}/costmap/grid",
                                     lambda _m: self.outputs.update(["grid"]), latched)
        for ns in self.segmentation:
            node.create_subscription(Image, f"{ns}/segmentation/labels",
                                     lambda _m: self.outputs.update(["labels"]), qos)
        try:
            while not self._stop.is_set():
                stamp = node.get_clock().now().to_msg()
                for pub, msg in pubs:
                    msg.header.stamp = stamp
                    pub.publish(msg)
                executor.spin_once(timeout_sec=0.01)
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown(context=ctx)


def write_bag(path: Path, frames: int = 40, rate_hz: float = 20.0) -> Path:
    """A small rosbag2 (sqlite3): Image + CameraInfo at the flood's size, ``rate_hz``."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    t, k = ts.types, np.array([W / 2, 0, W / 2, 0, W / 2, H / 2, 0, 0, 1.0])
    with Writer(path, version=8) as writer:
        image = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        info = writer.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo",
                                     typestore=ts)
        for i in range(frames):
            ns = 1_700_000_000_000_000_000 + int(i * 1e9 / rate_hz)
            header = t["std_msgs/msg/Header"](
                stamp=t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                frame_id="camera")
            pixels = np.full((H, W, 3), i % 256, dtype=np.uint8).reshape(-1)
            writer.write(image, ns, ts.serialize_cdr(t["sensor_msgs/msg/Image"](
                header=header, height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3,
                data=pixels), "sensor_msgs/msg/Image"))
            roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                        width=0, do_rectify=False)
            writer.write(info, ns, ts.serialize_cdr(t["sensor_msgs/msg/CameraInfo"](
                header=header, height=H, width=W, distortion_model="plumb_bob", d=np.zeros(5),
                k=k, r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0, roi=roi),
                "sensor_msgs/msg/CameraInfo"))
    return path


def _run_once(cmd: list[str], kind: Kind, name: str, plan: Plan) -> Outcome:
    """Start one process, signal it as ``plan`` says, return how it ended."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if kind.ready_line is not None and kind.ready_line in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not _deferred(proc.pid) and proc.poll() is None and time.monotonic() - start < 30:
        time.sleep(0.002)
    deferred_s = time.monotonic() - start
    if kind.ready_line is None:
        ready.set()
    if plan.after_ready:
        ready.wait(timeout=60)
    time.sleep(plan.delay)
    signalled, printed = time.monotonic(), len(lines)
    if proc.poll() is None:
        proc.send_signal(plan.first)
        if plan.second is not None:
            time.sleep(plan.second_delay)
            if proc.poll() is None:
                proc.send_signal(plan.second)
    try:
        proc.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(timeout=5)
    return Outcome(name, plan, proc.returncode, time.monotonic() - signalled, deferred_s,
                   "".join(lines), "".join(lines[printed:]), ready.is_set())


def run_interrupts(model: Path, bag: Path, seed: int,
                   kinds: dict[str, Kind] = KINDS) -> tuple[list[Outcome], Counter]:
    """Interrupt every kind as often as it says under traffic; returns the outcomes and the
    outputs the flood received."""
    rng = random.Random(seed)
    jobs = []
    for name, kind in kinds.items():
        plans = [Plan.draw(rng, signal.SIGINT) for _ in range(kind.sigints)]
        plans += [Plan.draw(rng, signal.SIGTERM) for _ in range(kind.sigterms)]
        rng.shuffle(plans)
        for slot in range(kind.parallel):
            jobs.append((name, f"/shutdown_{name}{slot}", plans[slot::kind.parallel]))
    outcomes: list[Outcome] = []

    def work(name: str, namespace: str, plans: list[Plan]) -> None:
        kind = kinds[name]
        for i, plan in enumerate(plans):
            cmd = kind.command(namespace, model, bag, i)
            outcomes.append(_run_once(cmd, kind, name, plan))

    with Flood([ns for name, ns, _ in jobs if name == "segmentation"],
               [ns for name, ns, _ in jobs if name == "costmap"]) as flood:
        threads = [threading.Thread(target=work, args=job) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return outcomes, flood.outputs


NOT_LOGGED = re.compile(r"Traceback|Exception ignored|Failed to publish|KeyboardInterrupt|"
                        r"Fatal Python error|\w+Warning: ")


def _stray_lines(kind: str, output: str) -> list[str]:
    """Lines printed outside the ROS logger: for the nodes (single-line messages) every line
    that is not a log line, for the replay (multi-line summaries) what Python or rcl print
    by themselves (tracebacks, warnings, rosout failures)."""
    lines = output.splitlines()
    if kind == "replay":
        return [line for line in lines if NOT_LOGGED.search(line)]
    return [line for line in lines if not ROS_LOG_LINE.match(line)]


def test_sigint_and_sigterm_under_traffic_always_exit_0(tmp_path: Path) -> None:
    from offroad_core.testing import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny.onnx", height=H, width=W, confidence=True)
    bag = write_bag(tmp_path / "bag")
    seed = int(os.environ.get("OFFROAD_SHUTDOWN_SEED", random.SystemRandom().randrange(10**6)))
    print(f"shutdown test seed {seed} (OFFROAD_SHUTDOWN_SEED={seed} repeats the draw)")
    t0 = time.monotonic()
    outcomes, outputs = run_interrupts(model, bag, seed)
    elapsed = time.monotonic() - t0
    bad = [o for o in outcomes if o.returncode != 0]
    by_kind = Counter(f"{o.kind} {signal.Signals(o.plan.first).name}" for o in outcomes)
    print(f"{len(outcomes)} interrupts in {elapsed:.0f} s: {dict(sorted(by_kind.items()))}; "
          f"{sum(o.plan.second is not None for o in outcomes)} with a second signal, "
          f"{sum(not o.ready for o in outcomes)} before the process served; exit after the "
          f"signal median {statistics.median(o.exit_s for o in outcomes):.2f} s, max "
          f"{max(o.exit_s for o in outcomes):.2f} s; signals deferred "
          f"{statistics.median(o.deferred_s for o in outcomes):.2f} s after the start "
          f"(median); outputs seen {dict(outputs)}; non-zero exits {len(bad)}")
    assert len(outcomes) == sum(k.sigints + k.sigterms for k in KINDS.values())
    assert not bad, "\n\n".join(
        f"{o.kind} exit {o.returncode} after {o.plan}:\n{o.output[-3000:]}" for o in bad[:5])
    # stopping is quiet: every line is a ROS log line (no traceback, no rcl "Failed to publish
    # log message to rosout" after the context went away), and after the signal no error but
    # the nodes' answers to the flood's inputs ("rejected: ...")
    for o in outcomes:
        assert not _stray_lines(o.kind, o.output), f"{o.kind} printed outside the logger:\n" \
                                                   f"{o.output}"
        late = [line for line in o.after_signal.splitlines()
                if line.startswith(("[ERROR]", "[FATAL]")) and "]: rejected: " not in line]
        assert not late, f"{o.kind} logged errors while stopping ({o.plan}):\n{late}"
    stopped = [o for o in outcomes if o.kind == "replay" and o.ready]
    assert all("replay stopped by a signal" in o.output for o in stopped), [
        o.output for o in stopped if "replay stopped by a signal" not in o.output][:1]
    # the nodes were serving: the flood got labels from segmentation nodes and grids from
    # costmap nodes (measured 874 / 636 at load ~10, 1465 / 1212 in another run)
    assert outputs["labels"] > 50 and outputs["grid"] > 50, outputs
