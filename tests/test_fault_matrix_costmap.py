"""Fault matrix of the costmap node (issue 15), robot-centric grid: one real node process over
DDS (started with the shipped costmap.yaml) fed malformed labels, stamps from the past and the
future, broken CameraInfo and SegmentationInfo, and runtime parameter changes, in sequence.
Machinery: ``tests/fault_matrix``.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fault_matrix"))
from costmap_peer import (
    BASE,
    INTR,
    NODE,
    CostmapPeer,
    costmap_args,
    costmap_case,
    scene_labels,
)
from matrix import NodeProcess, Problems, new_tally
from seg_peer import node_env

from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, ModelInfo
from offroad_core.ontology import CLASS_NAMES, CLASSES

pytestmark = pytest.mark.ros
NAN, INF = float("nan"), float("inf")


def labels_cases(peer: CostmapPeer) -> list:
    """(label, labels message, reason or None for accepted, text diagnostics must show)."""
    from builtin_interfaces.msg import Time

    scene = scene_labels()
    padded = np.zeros((scene.shape[0], scene.shape[1] + 10), np.uint8)
    padded[:, : scene.shape[1]] = scene

    def padded_msg():
        msg = peer.labels(padded)
        msg.width = scene.shape[1]
        return msg
    return [
        ("labels: encoding rgb8", lambda: peer.labels(encoding="rgb8"), "bad_encoding", "rgb8"),
        ("labels: empty encoding", lambda: peer.labels(encoding=""), "bad_encoding", "''"),
        ("labels: encoding 16UC1", lambda: peer.labels(encoding="16UC1"), "bad_encoding",
         "16UC1"),
        ("labels: height 0", lambda: peer.labels(height=0), "zero_size", "zero size"),
        ("labels: declare 12000x12000", lambda: peer.labels(height=12000, width=12000,
                                                           step=12000), "too_large", "12000"),
        ("labels: step shorter than a row", lambda: peer.labels(step=100), "bad_step", "step"),
        ("labels: 10 bytes short", lambda: peer.labels(data=bytes(160 * 136 - 10)),
         "truncated_data", "need"),
        ("labels: no data", lambda: peer.labels(data=b""), "truncated_data", "has 0"),
        ("labels: 156x136 (not the camera's size)",
         lambda: peer.labels(scene[:, :156].copy()), "size_mismatch", "156x136"),
        ("labels: stamped 1 h in the future", lambda: peer.labels(stamp=peer.stamp(3600.0)),
         "future_stamp", "ahead of the clock"),
        ("labels: stamped 2 s in the future", lambda: peer.labels(stamp=peer.stamp(2.0)),
         "future_stamp", "future_tolerance 0.5"),
        ("labels: 1 s old", lambda: peer.labels(stamp=peer.stamp(-1.0)), "stale", "old"),
        ("labels: stamp zero", lambda: peer.labels(stamp=Time()), "stale", "stale_timeout"),
        ("labels: stamp -5 s", lambda: peer.labels(stamp=Time(sec=-5)), "stale", "old"),
        ("labels: values no class has (200)",
         lambda: peer.labels(np.full_like(scene, 200)), None, ""),
        ("labels: all ignore value", lambda: peer.labels(np.full_like(scene, 255)), None, ""),
        ("labels: rows padded by 10 bytes", padded_msg, None, ""),
        ("labels: encoding 8UC1", lambda: peer.labels(encoding="8UC1"), None, ""),
    ]


def camera_cases(peer: CostmapPeer) -> list:
    """(label, CameraInfo, reason, text diagnostics must show); the last one is accepted
    but makes the next labels mismatch."""
    def k(index: int, value: float) -> list:
        values = list(peer.camera().k)
        values[index] = value
        return values
    return [
        ("camera_info: fx NaN", peer.camera(k=k(0, NAN)), "bad_camera_info", "non-finite"),
        ("camera_info: fx inf", peer.camera(k=k(0, INF)), "bad_camera_info", "non-finite"),
        ("camera_info: fy 0", peer.camera(k=k(4, 0.0)), "bad_camera_info", "positive"),
        ("camera_info: cx NaN", peer.camera(k=k(2, NAN)), "bad_camera_info", "non-finite"),
        ("camera_info: fx 1e12", peer.camera(k=k(0, 1e12)), "bad_camera_info", "field of view"),
        ("camera_info: cy -1e9", peer.camera(k=k(5, -1e9)), "bad_camera_info",
         "principal point"),
        ("camera_info: D NaN", peer.camera(d=[0.0, NAN, 0.0, 0.0, 0.0]), "bad_camera_info",
         "non-finite"),
        ("camera_info: distortion fisheye", peer.camera(distortion_model="fisheye",
                                                        d=[0.1, 0.0, 0.0, 0.0]),
         "bad_camera_info", "fisheye"),
        ("camera_info: plumb_bob with 3 coefficients", peer.camera(d=[0.1, 0.01, 0.0]),
         "bad_camera_info", "takes 5"),
        ("camera_info: width 0", peer.camera(width=0), "bad_camera_info", "camera size"),
        ("camera_info: width 100000", peer.camera(width=100000), "bad_camera_info",
         "not within"),
    ]


def info_cases(peer: CostmapPeer) -> list:
    """(label, SegmentationInfo, reason, text diagnostics must show)."""
    n = len(CLASS_NAMES)
    return [
        ("info: 7 ids, 6 names", peer.info(class_names=list(CLASS_NAMES[:-1]),
                                           class_categories=["FREE"] * (n - 1)), "bad_info",
         "6 names"),
        ("info: repeated label value", peer.info(class_ids=[0] * n), "bad_info", "several"),
        ("info: no classes", peer.info(class_ids=[], class_names=[], class_categories=[]),
         "bad_info", "no classes"),
        ("info: ignore value is a class id", peer.info(ignore_value=0), "bad_info",
         "ignore_value"),
        ("info: category PURPLE", peer.info(class_categories=["PURPLE"] * n), "bad_info",
         "PURPLE"),
        ("info: 1 category for 7 classes", peer.info(class_categories=["FREE"]), "bad_info",
         "categories"),
        ("info: label value 300", peer.info(class_ids=[*range(n - 1), 300]), "bad_info",
         "outside 0..255"),
        ("info: repeated class name", peer.info(class_names=["sky"] * n), "bad_info",
         "several"),
    ]


def expected(labels: np.ndarray, **overrides) -> np.ndarray:
    """The core's grid for ``labels`` with the node's parameters plus ``overrides``."""
    pipeline = CostmapPipeline(validate({**BASE, **overrides}))
    pipeline.set_model_info(ModelInfo(tuple(range(len(CLASS_NAMES))), CLASS_NAMES,
                                      tuple(c.category.value for c in CLASSES)))
    pipeline.set_camera(INTR)
    return pipeline.process(labels, 0.0, 0.0).values


PARAMETER_CASES = [
    # (name, value, accepted, text the refusal must contain, overrides the grid must follow)
    ("occlusion", "none", False, "not one of column, ray", None),
    ("occlusion", "ray", True, "", {"occlusion": "ray"}),
    ("occlusion", "column", True, "", {}),
    ("camera_pitch", 2.0, False, "out of range", None),
    ("camera_pitch", NAN, False, "out of range", None),
    ("camera_pitch", 0.4, True, "", {"camera_pitch": 0.4}),
    ("camera_pitch", 0.26, True, "", {}),
    ("stale_timeout", 0.0, False, "out of range", None),
    ("future_tolerance", NAN, False, "out of range", None),
    ("free_value", 200, False, "out of range", None),
    ("category_overrides", "sky=PURPLE", False, "category must be one of", None),
    ("max_range", "far", False, "type", None),
    ("resolution", 0.2, False, "read-only", None),
    ("use_odom", True, False, "read-only", None),
    ("output_frame", "odom", False, "read-only", None),
    ("labels_topic", "other", False, "read-only", None),
    ("stale_timout", 1.0, False, "undeclared parameter", None),  # rclpy omits the name
]


def parameter_case(peer, node, tally, name, value, accepted, needle, grid_follows) -> None:
    """Applied (reads back, the next grid is the core's with the new value) or refused with
    the reason (reads back the old value)."""
    problems = Problems()
    old = peer.get_parameter(NODE, name)
    result = peer.set_parameter(NODE, name, value)
    now = peer.get_parameter(NODE, name)
    if result is None:
        problems.add("hang", "no answer from set_parameters")
    elif result.successful != accepted:
        problems.add("wrong", f"successful={result.successful} ({result.reason!r})")
    elif not accepted and needle not in result.reason:
        problems.add("unclear", f"reason {result.reason!r} does not say {needle!r}")
    elif accepted and now != value:
        problems.add("wrong", f"reads back {now!r}")
    elif not accepted and now != old:
        problems.add("wrong", f"refused but reads back {now!r} (was {old!r})")
    grid = peer.good_grid(scene_labels())
    if not node.alive():
        problems.add("crash", node.text()[-1500:])
    elif grid is None:
        problems.add("hang", "no grid after the change")
    elif grid_follows is not None:
        got = np.frombuffer(bytes(grid.data), np.int8).reshape(grid.info.height,
                                                               grid.info.width)
        if not np.array_equal(got, expected(scene_labels(), **grid_follows)):
            problems.add("wrong", f"the grid does not follow {name}={value!r}")
    tally.record(f"parameter: {name} := {value!r}", problems)


def stale_timeout_case(peer, node, tally, timeout: float, accepted: bool) -> None:
    """``stale_timeout`` takes effect: labels 1 s old are accepted with 5 s, refused with 0.5."""
    problems = Problems()
    result = peer.set_parameter(NODE, "stale_timeout", timeout)
    if result is None or not result.successful:
        problems.add("wrong", f"stale_timeout {timeout} refused: {result}")
    msg = peer.labels(stamp=peer.stamp(-1.0))
    peer.publish(msg)
    got = peer.grid_for(msg.header.stamp, 2.0 if accepted else 1.0) is not None
    if got != accepted:
        problems.add("wrong", f"1 s old labels {'refused' if accepted else 'accepted'} with "
                              f"stale_timeout {timeout}")
    if peer.good_grid() is None:
        problems.add("hang", "no grid afterwards")
    tally.record(f"parameter: stale_timeout := {timeout} takes effect", problems)


def test_costmap_node_fault_matrix(pytestconfig):
    tally = new_tally(pytestconfig, "costmap node, base_link grid")
    node = NodeProcess(costmap_args(), node_env())
    peer = CostmapPeer()
    seen: set[str] = set()
    try:
        peer.wait_for_node(node)
        peer.calibrate()
        assert peer.good_grid() is not None, node.text()[-2000:]

        def sending(make):
            def send():
                msg = make()
                peer.publish(msg)
                return [msg.header.stamp]
            return send
        for label, make, reason, needle in labels_cases(peer):
            costmap_case(peer, node, tally, seen, label, sending(make), reason, needle)
        for label, info, reason, needle in camera_cases(peer):
            costmap_case(peer, node, tally, seen, label, lambda m=info: peer.publish(m), reason,
                         needle)
        costmap_case(peer, node, tally, seen, "camera_info: 320x272 for 160x136 labels",
                     lambda: (peer.publish(peer.camera(width=320, height=272)), peer.spin(0.3),
                              sending(peer.labels)())[-1], "size_mismatch",
                     "camera_info is 320x272", after=peer.calibrate)
        for label, info, reason, needle in info_cases(peer):
            costmap_case(peer, node, tally, seen, label, lambda m=info: peer.publish(m), reason,
                         needle, after=peer.calibrate)
        costmap_case(peer, node, tally, seen, "info: SegmentationInfo says 640x544",
                     lambda: (peer.publish(peer.info(height=544, width=640)), peer.spin(0.3),
                              sending(peer.labels)())[-1], "size_mismatch", "640x544",
                     after=peer.calibrate)
        costmap_case(peer, node, tally, seen, "info: confidence_threshold NaN (unused)",
                     lambda: (peer.publish(peer.info(confidence_threshold=NAN)), peer.spin(0.3),
                              sending(peer.labels)())[-1], None, after=peer.calibrate)
        for case in PARAMETER_CASES:
            parameter_case(peer, node, tally, *case)
        stale_timeout_case(peer, node, tally, 5.0, accepted=True)
        stale_timeout_case(peer, node, tally, 0.5, accepted=False)
        assert not any(k.startswith("fault_") for k in peer.diag), peer.diag
    finally:
        peer.close()
        status = node.stop()
    assert status == 0, node.text()[-3000:]
    tally.check(minimum=55)
