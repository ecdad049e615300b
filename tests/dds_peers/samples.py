"""Deterministic sample messages shared by the DDS exchange peers and the test."""

import hashlib

import numpy as np
from sensor_msgs.msg import Image

from offroad_core import ontology
from offroad_seg_msgs.msg import SegmentationInfo, SegmentationStats

IMAGE_WIDTH, IMAGE_HEIGHT = 1280, 1080


def sample_image_array() -> np.ndarray:
    rng = np.random.default_rng(1234)
    return rng.integers(0, 256, size=(IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)


def sample_info() -> SegmentationInfo:
    msg = SegmentationInfo()
    msg.header.frame_id = "camera_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 17, 500
    msg.class_ids = [c.id for c in ontology.CLASSES]
    msg.class_names = list(ontology.CLASS_NAMES)
    msg.class_categories = [c.category.value for c in ontology.CLASSES]
    msg.palette_rgb = [v for c in ontology.CLASSES for v in c.rgb]
    msg.ignore_value = ontology.IGNORE_INDEX
    msg.confidence_threshold = 0.25
    msg.height, msg.width = 544, 640
    msg.model_id, msg.model_version = "ddrnet23_slim", "1.2.3"
    msg.model_sha256 = hashlib.sha256(b"model").hexdigest()
    msg.execution_provider = "QNNExecutionProvider"
    return msg


def sample_stats() -> SegmentationStats:
    msg = SegmentationStats()
    msg.header.frame_id = "camera_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 18, 250
    msg.preprocess_ms, msg.inference_ms, msg.postprocess_ms, msg.age_ms = 1.5, 8.25, 0.75, 21.0
    msg.class_fractions = [0.5, 0.125, 0.125, 0.0625, 0.0625, 0.0625, 0.0625]
    msg.frames_received, msg.frames_processed = 100, 90
    msg.frames_dropped, msg.frames_rejected = 8, 2
    return msg


def sample_image() -> Image:
    arr = sample_image_array()
    msg = Image()
    msg.header.frame_id = "camera_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 19, 42
    msg.height, msg.width = arr.shape[:2]
    msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, arr.shape[1] * 3
    msg.data = arr.tobytes()
    return msg


def fields_of(msg) -> dict:
    """Every field of a message as plain Python data (image bytes as a sha256)."""
    out = {}
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if name == "header":
            value = [value.stamp.sec, value.stamp.nanosec, value.frame_id]
        elif name == "data":
            value = hashlib.sha256(bytes(value)).hexdigest()
        elif hasattr(value, "tolist"):
            value = value.tolist()
        elif isinstance(value, (list, tuple)):
            value = list(value)
        out[name] = value
    return out
