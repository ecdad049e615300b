"""Fault matrix of the costmap node (issue 15) with odometry (``use_odom: true``,
``output_frame: odom``, fusion on): the configuration in which one NaN pose used to kill the
process through the stale watchdog. One real node process over DDS fed broken odometry in
sequence; after each case the node goes stale (the watchdog publishes its unknown grid at the
last pose), then serves good labels again. Machinery: ``tests/fault_matrix``.
"""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fault_matrix"))
from costmap_peer import CostmapPeer, costmap_args, costmap_case, grid_problem
from matrix import NodeProcess, new_tally
from seg_peer import node_env

pytestmark = pytest.mark.ros
NAN, INF = float("nan"), float("inf")


def odom_cases(peer: CostmapPeer) -> list:
    """(label, keyword arguments of :meth:`CostmapPeer.odom` besides the stamp, stamp offset,
    reason or None for accepted, text diagnostics must show)."""
    return [
        ("odometry: x NaN", {"x": NAN}, 0.0, "bad_odometry", "not finite"),
        ("odometry: y inf", {"x": 0.0, "y": INF}, 0.0, "bad_odometry", "not finite"),
        ("odometry: x -inf", {"x": -INF}, 0.0, "bad_odometry", "not finite"),
        ("odometry: x 1e7 m", {"x": 1e7}, 0.0, "bad_odometry", "beyond"),
        ("odometry: quaternion z NaN", {"x": 0.0, "z": NAN}, 0.0, "bad_odometry",
         "unit quaternion"),
        ("odometry: quaternion w inf", {"x": 0.0, "w": INF}, 0.0, "bad_odometry",
         "unit quaternion"),
        ("odometry: zero quaternion", {"x": 0.0, "z": 0.0, "w": 0.0}, 0.0, "bad_odometry",
         "unit quaternion"),
        ("odometry: quaternion of norm 2", {"x": 0.0, "w": 2.0}, 0.0, "bad_odometry",
         "unit quaternion"),
        ("odometry: stamped 1 h in the future", {"x": 0.0}, 3600.0, "bad_odometry",
         "ahead of the clock"),
        ("odometry: stamped 1 h in the past (older than the history)", {"x": 0.0}, -3600.0,
         None, ""),
    ]


def test_costmap_node_fault_matrix_with_odometry(pytestconfig):
    tally = new_tally(pytestconfig, "costmap node, odom grid with fusion")
    node = NodeProcess(costmap_args(use_odom=True, output_frame="odom"), node_env())
    peer = CostmapPeer()
    peer.use_odom = True
    seen: set[str] = set()
    try:
        peer.wait_for_node(node)
        peer.calibrate()
        assert peer.good_grid() is not None, node.text()[-2000:]
        for label, fields, offset, reason, needle in odom_cases(peer):
            def send(fields=fields, offset=offset):
                peer.publish(peer.odom(peer.stamp(offset), **{"x": peer.x, **fields}))
                peer.spin(0.9)  # past stale_timeout: the watchdog publishes at the last pose
            costmap_case(peer, node, tally, seen, label, send, reason, needle)

        def twist_nan():
            msg = peer.odom(peer.stamp(), peer.x + 0.05, -1.0, 0.2)
            msg.twist.twist.linear.x = NAN
            msg.pose.covariance = [NAN] * 36
            peer.publish(msg)
            peer.spin(0.05)
            labels = peer.labels(stamp=msg.header.stamp)
            peer.publish(labels)
            return [labels.header.stamp]
        costmap_case(peer, node, tally, seen, "odometry: NaN twist and covariance (unused)",
                     twist_nan, None)

        def uncovered():
            stamp = peer.stamp()
            peer.publish(peer.odom(stamp, peer.x, -1.0, 0.2))
            peer.spin(0.05)
            labels = peer.labels(stamp=peer.stamp(0.3))  # 0.3 s past the newest pose
            peer.publish(labels)
            return [labels.header.stamp]
        costmap_case(peer, node, tally, seen, "labels: no odometry covers their stamp",
                     uncovered, "no_pose", "no odometry covers")
        grids = [g for g in peer.grids if grid_problem(g)]
        assert not grids, grid_problem(grids[0])
        stale = [g for g in peer.grids if g.header.frame_id == "odom"
                 and all(v == -1 for v in g.data)]
        assert stale, "the watchdog published no unknown grid between the cases"
        assert all(math.isfinite(g.info.origin.position.x) for g in stale)
        assert int(peer.diag["unknown_grids_published_while_stale"]) > 0
        assert not any(k.startswith("fault_") for k in peer.diag), peer.diag
    finally:
        peer.close()
        status = node.stop()
    assert status == 0, node.text()[-3000:]
    tally.check(minimum=12)
