"""Pure logic of offroad_seg_node (no DDS): slot, counters, params, camera_info, overlay."""

import threading
import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from offroad_core.camera import rescale_k, scale_factors
from offroad_core.contract import ModelContract
from offroad_core.segmentation.overlay import blend_overlay, palette_lut
from offroad_core.segmentation.params import PARAMETERS, ConfigError, check_against_model, validate
from offroad_seg_node.conversions import (
    array_to_image,
    class_fractions,
    info_message,
    rescale_camera_info,
)
from offroad_seg_node.counters import FrameCounters
from offroad_seg_node.diagnostics import diagnostic_status
from offroad_seg_node.frame_slot import LatestFrameSlot


def test_slot_keeps_only_the_latest_frame_and_reports_drops():
    slot = LatestFrameSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 dropped
    assert slot.put(3) is True
    assert slot.take(0.01) == 3
    assert slot.take(0.01) is None


def test_slot_wakes_a_waiting_worker_and_close_releases_it():
    slot = LatestFrameSlot()
    got = []
    worker = threading.Thread(target=lambda: got.append(slot.take(5)))
    worker.start()
    time.sleep(0.05)
    slot.put("frame")
    worker.join(2)
    assert got == ["frame"]
    worker = threading.Thread(target=lambda: got.append(slot.take(5)))
    worker.start()
    slot.close()
    worker.join(2)
    assert not worker.is_alive() and got[-1] is None


def test_counters_and_diagnostics_count_rejects_by_reason():
    counters = FrameCounters()
    before = counters.snapshot()
    counters.received(dropped=False)
    counters.received(dropped=True)
    counters.rejected("truncated_data", "needs 10 bytes")
    counters.rejected("truncated_data", "needs 10 bytes")
    counters.rejected("unsupported_encoding", "bayer")
    counters.processed({"preprocess": 1.0, "inference": 10.0, "postprocess": 0.5, "age": 20.0})
    now = counters.snapshot()
    assert counters.totals == (2, 1, 1, 3)
    status = diagnostic_status("seg", "tiny", now, before, 1.0, {"provider": "cpu"})
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == status.WARN and "3 input(s) rejected" in status.message
    assert values["rejected_truncated_data"] == "2"
    assert values["rejected_unsupported_encoding"] == "1"
    assert values["frames_dropped"] == "1" and values["inference_mean_ms"] == "10.00"
    quiet = diagnostic_status("seg", "tiny", now, now, 1.0, {})
    assert quiet.level == quiet.OK


def test_params_validation_lists_every_problem(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    defaults = {s.name: s.default for s in PARAMETERS}
    config = validate({**defaults, "model_path": str(model), "overlay_alpha": 1})
    assert config.overlay_alpha == 1.0 and config.topic("labels") == "segmentation/labels"
    with pytest.raises(ConfigError) as err:
        validate({**defaults, "provider": "gpu", "qos_depth": 0, "overlay_alpha": 2.0,
                  "qos_reliability": "sometimes", "image_topic": ""})
    text = str(err.value)
    for needle in ("provider: 'gpu'", "qos_depth: 0 is outside", "overlay_alpha: 2.0",
                   "qos_reliability", "image_topic: must not be empty", "model_path: not set"):
        assert needle in text
    with pytest.raises(ConfigError, match="file not found"):
        validate({**defaults, "model_path": str(tmp_path / "missing.onnx")})
    with pytest.raises(ConfigError, match="no confidence output"):
        check_against_model(validate({**defaults, "model_path": str(model),
                                      "publish_confidence": True}), has_confidence=False)


def test_camera_info_rescale_follows_the_resize_pixel_mapping():
    k = np.array([[800.0, 0, 639.5], [0, 790.0, 539.5], [0, 0, 1]])
    sx, sy = scale_factors(1280, 1080, 640, 544)
    scaled = rescale_k(k, sx, sy)
    # a 3-D point projects to pixel u in the source and (u + 0.5) sx - 0.5 in the labels
    point = np.array([0.7, -0.3, 4.0])
    u_src = k @ point / point[2]
    u_dst = scaled @ point / point[2]
    np.testing.assert_allclose(u_dst[0], (u_src[0] + 0.5) * sx - 0.5)
    np.testing.assert_allclose(u_dst[1], (u_src[1] + 0.5) * sy - 0.5)
    # and cv2.resize puts a bright source pixel where the mapping says
    img = np.zeros((1080, 1280), np.float32)
    img[400, 600] = 1.0
    small = cv2.resize(img, (640, 544), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(small)
    assert abs(np.average(xs, weights=small[ys, xs]) - ((600 + 0.5) * sx - 0.5)) < 0.5
    info = CameraInfo(width=1280, height=1080, k=k.reshape(-1).tolist(), d=[0.1, 0, 0, 0, 0],
                      distortion_model="plumb_bob",
                      p=np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist())
    header = Header(frame_id="cam")
    out = rescale_camera_info(info, 640, 544, header)
    assert (out.width, out.height, out.header.frame_id) == (640, 544, "cam")
    np.testing.assert_allclose(np.reshape(out.k, (3, 3)), scaled)
    np.testing.assert_allclose(np.reshape(out.p, (3, 4))[:, :3], scaled)
    assert list(out.d) == [0.1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="camera size 0x0"):
        rescale_camera_info(CameraInfo(), 640, 544, header)


@pytest.mark.parametrize(("change", "needle"), [
    ({"k": [float("nan"), 0, 320, 0, 500, 240, 0, 0, 1]}, "non-finite"),
    ({"k": [0.0, 0, 320, 0, 500, 240, 0, 0, 1]}, "must be positive"),
    ({"k": [500.0, 0, 320, 0, float("inf"), 240, 0, 0, 1]}, "non-finite"),
    ({"d": [0.1, float("nan"), 0, 0, 0]}, "non-finite"),
    ({"distortion_model": "fisheye", "d": [0.1, 0, 0, 0]}, "not one of"),
    ({"p": [float("nan")] + [0.0] * 11}, "R or P has a non-finite value"),
    ({"width": 100000}, "not within"),
])
def test_camera_info_the_costmap_could_not_use_is_not_republished(change, needle):
    good = {"width": 640, "height": 480, "k": [500.0, 0, 320, 0, 500, 240, 0, 0, 1],
            "d": [0.0] * 5, "distortion_model": "plumb_bob"}
    rescale_camera_info(CameraInfo(**good), 320, 240, Header())
    with pytest.raises(ValueError, match=needle):
        rescale_camera_info(CameraInfo(**{**good, **change}), 320, 240, Header())


def test_overlay_blends_palette_colours():
    contract = ModelContract()
    lut = palette_lut(contract.palette, contract.ignore_index)
    rgb = np.full((4, 4, 3), 100, np.uint8)
    labels = np.array([[0, 3, 6, 255]] * 4, np.uint8)
    np.testing.assert_array_equal(blend_overlay(rgb, labels, lut, 0.0), rgb)
    full = blend_overlay(rgb, labels, lut, 1.0)
    assert tuple(full[0, 1]) == contract.palette[3] and tuple(full[0, 3]) == (0, 0, 0)
    half = blend_overlay(rgb, labels, lut, 0.5)
    assert abs(int(half[0, 0, 0]) - (100 + contract.palette[0][0]) // 2) <= 1


def test_messages_from_arrays_and_contract():
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4) % 7
    msg = array_to_image(labels, "mono8", Header(frame_id="cam"))
    assert (msg.height, msg.width, msg.step, msg.encoding) == (3, 4, 4, "mono8")
    assert bytes(msg.data) == labels.tobytes()
    fractions = class_fractions(labels, 7)
    np.testing.assert_allclose(fractions, np.bincount(labels.ravel(), minlength=7) / 12)
    contract = ModelContract(height=3, width=4)
    info = info_message(contract, "CPUExecutionProvider", "ab" * 32, 0.4, Header())
    assert list(info.class_names) == list(contract.class_names)
    assert list(info.palette_rgb[:3]) == list(contract.palette[0])
    assert (info.height, info.width, info.ignore_value) == (3, 4, 255)
    assert info.execution_provider == "CPUExecutionProvider"
    assert info.confidence_threshold == pytest.approx(0.4)
