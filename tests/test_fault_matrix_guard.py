"""A callback or timer that raises never takes a node down (issue 15, CallbackGuard): both real
nodes run over DDS with dependencies broken on purpose (``tests/fault_matrix/faulty_node.py``);
the fault is counted as ``fault_<callback>`` in /diagnostics, its traceback logged once, and
the node keeps serving.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fault_matrix"))
from costmap_peer import CostmapPeer, costmap_args
from matrix import NodeProcess, Problems, new_tally
from seg_peer import SegPeer, frame, node_env, seg_args

from offroad_core.testing import build_tiny_model

pytestmark = pytest.mark.ros
FAULTY = Path(__file__).parent / "fault_matrix" / "faulty_node.py"


def faulty(kind: str, node_args: list[str]) -> NodeProcess:
    """The node of ``node_args`` (``python -m <module> --ros-args ...``) with faults injected."""
    return NodeProcess([sys.executable, str(FAULTY), kind, *node_args[3:]], node_env())


def fault_case(tally, node, peer, label, inject, key, count, serve, traceback) -> None:
    """``inject()``; diagnostics reach ``key`` >= ``count``; the node is alive and ``serve()``
    gives output; the log holds a traceback for this fault only if ``traceback``."""
    problems = Problems()
    mark = node.mark()
    inject()
    if not peer.wait_counter(key, count, 5.0):
        problems.add("wrong", f"{key} is {peer.diag.get(key)!r}, expected >= {count}")
    if not node.alive():
        problems.add("crash", node.text()[-2000:])
    elif not serve():
        problems.add("hang", "no output after the fault")
    name = key.removeprefix("fault_")
    logged = node.output_since(mark)
    has_traceback = any("Traceback" in line for line in logged)
    if traceback and not (has_traceback and any(f"counted as {key}" in line
                                                for line in logged)):
        problems.add("unclear", f"no traceback naming {key}: {logged[-5:]}")
    if not traceback and has_traceback:
        problems.add("unclear", f"a second traceback for {name}")
    tally.record(label, problems)


def test_costmap_node_survives_raising_callbacks_and_timers(pytestconfig):
    tally = new_tally(pytestconfig, "callback guard, costmap node")
    node = faulty("costmap", costmap_args())
    peer = CostmapPeer()
    try:
        peer.wait_for_node(node)
        peer.calibrate()
        assert peer.good_grid() is not None, node.text()[-2000:]

        def serve():
            return peer.good_grid() is not None
        fault_case(tally, node, peer, "SegmentationInfo callback raises",
                   lambda: peer.publish(peer.info(model_id="raise")), "fault_info", 1, serve,
                   traceback=True)
        fault_case(tally, node, peer, "SegmentationInfo callback raises again",
                   lambda: peer.publish(peer.info(model_id="raise")), "fault_info", 2, serve,
                   traceback=False)

        def break_watchdog():
            peer.publish(peer.info(model_id="break_watchdog"))
            peer.spin(1.5)  # stale after 0.5 s; the watchdog (0.1 s) raises from then on
        fault_case(tally, node, peer, "stale watchdog timer raises", break_watchdog,
                   "fault_watchdog", 5, serve, traceback=True)
        # still broken: three more diagnostics (0.2 s period) come while it goes on raising;
        # waited for, not counted in a fixed time (a loaded machine runs timers late)
        diagnostics, faults = peer.diag_count, peer.counter("fault_watchdog")
        assert peer.spin(10, lambda: peer.diag_count >= diagnostics + 3
                         and peer.counter("fault_watchdog") > faults), \
            "diagnostics stopped while the watchdog failed"
        peer.publish(peer.info(model_id="heal_watchdog"))
        first = len(peer.grids)
        assert peer.spin(3, lambda: any(all(v == -1 for v in g.data)
                                        for g in peer.grids[first:])), "watchdog not back"
    finally:
        peer.close()
        status = node.stop()
    assert status == 0, node.text()[-3000:]
    tally.check(minimum=3)


def test_segmentation_node_survives_raising_callbacks_and_timers(pytestconfig, tmp_path):
    tally = new_tally(pytestconfig, "callback guard, segmentation node")
    model = build_tiny_model(tmp_path / "tiny.onnx", 64, 80, seed=9)
    node = faulty("segmentation", seg_args(model))
    peer = SegPeer()
    try:
        peer.wait_for_node(node)  # the first diagnostics ticks raised: it waits for the third

        def serve():
            return peer.labels_for(peer.raw(frame(40))) is not None
        fault_case(tally, node, peer, "diagnostics timer raised twice", lambda: None,
                   "fault_diagnostics", 2, serve, traceback=False)
        assert any("counted as fault_diagnostics" in line for line in node.lines), node.text()

        def bad_frame():
            msg = peer.raw(frame(41))
            msg.header.frame_id = "raise"
            peer.publish(msg)
        fault_case(tally, node, peer, "image callback raises", bad_frame, "fault_image", 1,
                   serve, traceback=True)
        fault_case(tally, node, peer, "image callback raises again", bad_frame, "fault_image",
                   2, serve, traceback=False)
    finally:
        peer.close()
        status = node.stop()
    assert status == 0, node.text()[-3000:]
    tally.check(minimum=3)
