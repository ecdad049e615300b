"""The segmentation node on a real QNN HTP context binary over DDS (HTP emulated on x86_64).

The context binary is compiled here by the deployment chain (tiny contract model -> QDQ W8A8
-> ``offroad_training.deploy.compile``); the node runs it with ``provider:=qnn`` (CPU fallback
disabled inside the engine) and its labels must equal the offline engine's on the same binary.
Helpers (node process, rclpy peer, scenes) are shared with test_node_ros.py.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from offroad_core import imaging
from offroad_core.engine import InferenceEngine
from offroad_core.testing import build_tiny_model

pytestmark = pytest.mark.ros

_spec = importlib.util.spec_from_file_location("_seg_node_ros_helpers",
                                               Path(__file__).with_name("test_node_ros.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
Peer, scene, start_node, stop_node = (_helpers.Peer, _helpers.scene, _helpers.start_node,
                                      _helpers.stop_node)

MODEL_H, MODEL_W = 64, 80


@pytest.fixture(scope="module")
def context_binary(tmp_path_factory) -> Path:
    from offroad_training.deploy.compile import compile_context
    from offroad_training.deploy.quantize import quantize_model

    tmp = tmp_path_factory.mktemp("qnn")
    fp32 = build_tiny_model(tmp / "tiny.onnx", MODEL_H, MODEL_W, confidence=True, seed=7)
    calib = [imaging.resize_to_model(scene(100 + i), MODEL_W, MODEL_H) for i in range(16)]
    qdq = quantize_model(fp32, calib, tmp / "tiny.qdq.onnx")
    return compile_context(qdq, tmp / "tiny_ctx.onnx").model


def test_node_runs_context_binary_on_qnn_with_offline_labels(context_binary):
    engine = InferenceEngine(context_binary, "qnn")
    assert engine.is_context_binary
    proc = start_node(context_binary, "provider:=qnn", "publish_confidence:=true")
    peer = Peer()
    try:
        peer.wait_for_node(proc)
        info = peer.infos[-1]
        assert info.execution_provider == "QNNExecutionProvider"
        assert info.model_sha256 == engine.model_sha256  # sha256 of the .bin
        for i in range(4):
            rgb = scene(i)
            msg = peer.raw(rgb, "rgb8", i)
            labels = peer.send(msg, wait=30.0)
            assert labels is not None, f"no labels for frame {i}: {stop_node(proc)}"
            assert labels.header.stamp == msg.header.stamp
            got = np.frombuffer(bytes(labels.data), np.uint8).reshape(MODEL_H, MODEL_W)
            want = engine.run(imaging.resize_to_model(rgb, MODEL_W, MODEL_H))
            np.testing.assert_array_equal(got, want.labels)
            assert len(np.unique(got)) >= 2
        key = peer._key(msg)
        peer.spin(5, lambda: key in peer.confidence)
        conf = peer.confidence[key]
        np.testing.assert_array_equal(
            np.frombuffer(bytes(conf.data), np.uint8).reshape(MODEL_H, MODEL_W), want.confidence)
    finally:
        peer.close()
        out = stop_node(proc)
    assert proc.returncode == 0, out
