"""Fault matrix (issue 15), pure-core part: cases where a node adds nothing to what the core
decides (no DDS), plus the check that docs/robustness.md names every reason the code emits.
"""

import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fault_matrix"))
from matrix import Problems, new_tally

from offroad_core.camera import CameraIntrinsics
from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, InputError, ModelInfo, quaternion_yaw
from offroad_core.node_runtime import ReasonLog, params_file_problem
from offroad_core.ontology import CLASS_NAMES, CLASSES

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")
W, H = 160, 136


def pipeline(**params) -> CostmapPipeline:
    """A calibrated costmap pipeline with odometry in odom."""
    p = CostmapPipeline(validate({"resolution": 0.1, "use_odom": True, "output_frame": "odom",
                                  **params}))
    p.set_model_info(ModelInfo(tuple(range(len(CLASS_NAMES))), CLASS_NAMES,
                               tuple(c.category.value for c in CLASSES), 255, H, W))
    p.set_camera(CameraIntrinsics.from_fov(W, H, 90))
    return p


def test_one_log_line_per_reason_not_per_call_site():
    """Issue 15 item 7: 39 bad frames of 13 kinds gave 6 log lines; now every kind is logged."""
    lines: list[str] = []
    log = ReasonLog(lines.append, period=5.0)
    reasons = [f"reason_{i}" for i in range(13)]
    for _ in range(3):
        for reason in reasons:
            log(reason, f"{reason} happened")
    assert len(lines) == 13
    assert all(any(f"[{r}, 1 so far]" in line for line in lines) for r in reasons)
    assert log.total == 39 and set(log.counts.values()) == {3}


def test_a_nan_pose_never_reaches_the_watchdog():
    """Issue 15 item 1: the stale watchdog snapped its window to a stored NaN pose."""
    p = pipeline()
    for pose in ((NAN, 0.0, 0.0), (0.0, INF, 0.0), (0.0, 0.0, NAN)):
        with pytest.raises(InputError, match="not finite") as err:
            p.add_odometry(1.0, *pose)
        assert err.value.reason == "bad_odometry"
    frame = p.unknown_frame()
    assert math.isfinite(frame.geometry.origin_x) and (frame.values == -1).all()


CORE_CASES = [
    # (label, call, reason or None when it must be accepted)
    ("quaternion all zero", lambda: quaternion_yaw(0.0, 0.0, 0.0, 0.0), "bad_odometry"),
    ("quaternion NaN", lambda: quaternion_yaw(0.0, 0.0, NAN, 1.0), "bad_odometry"),
    ("quaternion of norm 2", lambda: quaternion_yaw(0.0, 0.0, 0.0, 2.0), "bad_odometry"),
    ("quaternion of norm 1.05", lambda: quaternion_yaw(0.0, 0.0, 0.0, 1.05), None),
    ("odometry 1 h ahead", lambda: pipeline().add_odometry(3600.0, 0, 0, 0, now=0.0),
     "bad_odometry"),
    ("odometry 0.4 s ahead", lambda: pipeline().add_odometry(0.4, 0, 0, 0, now=0.0), None),
    ("odometry stamp NaN", lambda: pipeline().add_odometry(NAN, 0, 0, 0), "bad_odometry"),
    ("labels 1 h ahead", lambda: pipeline().check_stamp(3700.0, 100.0), "future_stamp"),
    ("labels before the first /clock", lambda: pipeline().check_stamp(3600.0, 0.0), "no_clock"),
    ("labels 1 s old", lambda: pipeline().check_stamp(-1.0, 0.0), "stale"),
    ("no classes", lambda: pipeline().set_model_info(ModelInfo((), ())), "bad_info"),
    ("repeated ids", lambda: pipeline().set_model_info(ModelInfo((0, 0), ("a", "b"))),
     "bad_info"),
    ("ignore value as class", lambda: pipeline().set_model_info(ModelInfo((0, 1), ("a", "b"),
                                                                          (), 1)), "bad_info"),
    ("unknown class names", lambda: pipeline().set_model_info(ModelInfo((0, 1), ("a", "b"))),
     None),
]


@pytest.fixture(scope="module")
def core_tally(pytestconfig):
    tally = new_tally(pytestconfig, "core (no DDS)")
    yield tally
    tally.check(minimum=1)


def _record(tally, label: str, call, reason: str | None) -> None:
    problems = Problems()
    try:
        call()
        if reason is not None:
            problems.add("wrong", f"accepted, expected {reason}")
    except InputError as exc:
        if exc.reason != reason:
            problems.add("wrong", f"refused as {exc.reason} ({exc}), expected {reason}")
    except Exception as exc:  # anything else would be a node's internal_error: a crash
        problems.add("crash", f"{type(exc).__name__}: {exc}")
    tally.record(label, problems)
    assert not problems, problems


@pytest.mark.parametrize(("label", "call", "reason"), CORE_CASES, ids=[c[0] for c in CORE_CASES])
def test_core_refuses_with_the_reason(core_tally, label, call, reason):
    _record(core_tally, label, call, reason)


K = [100.0, 0.0, 79.5, 0.0, 100.0, 67.5, 0.0, 0.0, 1.0]
CAMERAS = [
    # (label, K changes {index: value}, D, distortion model, accepted)
    ("fx NaN", {0: NAN}, [], "", False),
    ("fx inf", {0: INF}, [], "", False),
    ("fx 1e-9 (180 deg)", {0: 1e-9}, [], "", False),
    ("fx 1e12", {0: 1e12}, [], "", False),
    ("cx 1e9", {2: 1e9}, [], "", False),
    ("cy -1e9", {5: -1e9}, [], "", False),
    ("D inf", {}, [0.0, INF, 0.0, 0.0, 0.0], "plumb_bob", False),
    ("rational with 5 coefficients", {}, [0.1, 0, 0, 0, 0], "rational_polynomial", False),
    ("170 deg wide", {0: 7.0, 4: 6.0}, [], "", True),
    ("principal point just outside", {2: -100.0}, [], "", True),
]


@pytest.mark.parametrize(("label", "changes", "d", "model", "accepted"), CAMERAS,
                         ids=[c[0] for c in CAMERAS])
def test_camera_info_validator(core_tally, label, changes, d, model, accepted):
    k = [changes.get(i, v) for i, v in enumerate(K)]

    def call():
        try:
            CameraIntrinsics.from_camera_info(W, H, k, d, model)
        except ValueError as exc:
            raise InputError("bad_camera_info", str(exc)) from None
    _record(core_tally, f"camera_info: {label}", call, None if accepted else "bad_camera_info")


PARAMS_FILES = [
    ("missing", None, "not found"),
    ("empty", "", None),
    ("not YAML", "a: [1,\n", "not valid YAML (line 2"),
    ("top-level list", "- a\n", "found a list"),
    ("scalar section", "node: 5\n", "'node' in the top level is not under ros__parameters"),
    ("ros__parameters a list", "node:\n  ros__parameters: [1]\n", "must be a mapping"),
    ("mixed list", "node:\n  ros__parameters:\n    a: [1, x]\n", "a is a list mixing int, str"),
    ("nested names", "/**:\n  node:\n    ros__parameters:\n      a:\n        b: [x, y]\n", None),
    ("wildcard section", "/**:\n  ros__parameters:\n    use_sim_time: true\n", None),
]


@pytest.mark.parametrize(("label", "content", "needle"), PARAMS_FILES,
                         ids=[c[0] for c in PARAMS_FILES])
def test_params_file_problems(core_tally, tmp_path, label, content, needle):
    path = tmp_path / "params.yaml"
    if content is not None:
        path.write_text(content)
    problem = params_file_problem(str(path))
    problems = Problems()
    if needle is None and problem is not None:
        problems.add("wrong", f"refused: {problem}")
    elif needle is not None and (problem is None or needle not in problem):
        problems.add("unclear", f"{problem!r} does not say {needle!r}")
    core_tally.record(f"params file: {label}", problems)
    assert not problems, problems


def emitted_reasons() -> dict[str, set[str]]:
    """Reason keys the nodes can count, read from the code: ``rejected_<reason>`` keys from
    InputError / ImageDecodeError / the segmentation worker's reject, ``fault_<name>`` keys
    from the callback guard."""
    found = {"rejected": set(), "fault": set()}
    decode = re.compile(r'ImageDecodeError\((?:[^"()]|"(?:[^"\\]|\\.)*"|\((?:[^()"]|"[^"]*")*\))'
                        r'*?,\s*"([a-z_]+)"\s*\)', re.S)
    for folder in ("offroad_core/offroad_core", "offroad_costmap/offroad_costmap",
                   "offroad_seg_node/offroad_seg_node"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            found["rejected"] |= set(re.findall(r'InputError\(\s*"([a-z_]+)"', text))
            found["rejected"] |= set(decode.findall(text))
            found["rejected"] |= set(re.findall(r'_reject\(\s*"([a-z_]+)"', text))
            found["fault"] |= set(re.findall(r'guard\(\s*"([a-z_]+)"', text))
    return found


def test_robustness_doc_names_every_reason_the_code_emits():
    doc = (ROOT / "docs" / "robustness.md").read_text()
    found = emitted_reasons()
    assert {"too_large", "bad_odometry", "future_stamp", "bad_camera_info"} <= found["rejected"]
    assert {"labels", "watchdog", "image"} <= found["fault"]
    missing = sorted(r for r in found["rejected"] if f"`{r}`" not in doc)
    assert not missing, f"docs/robustness.md does not explain rejected_{missing}"
    documented = set(re.findall(r"`fault_([a-z_]+)`", doc))
    listed = set(re.findall(r"callbacks: ([a-z_,\s]+)\.", doc))
    names = {n.strip() for group in listed for n in group.split(",")} | documented
    assert found["fault"] <= names, f"undocumented fault_ keys: {found['fault'] - names}"
