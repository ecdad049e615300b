"""Message <-> array conversions of the segmentation node (message packages only, no rclpy).

All pixel work goes through :mod:`offroad_core.imaging`. Outgoing images are filled with
``bytes`` (``array.tobytes()``): assigning a numpy array to ``msg.data`` costs ~185 ms per
1280x1080 frame in rclpy, ``tobytes()`` under 1 ms (measured; docs/architecture.md).
"""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from offroad_core.camera import CameraIntrinsics, rescale_k, rescale_p, scale_factors
from offroad_core.contract import ModelContract
from offroad_core.imaging import decode_compressed, decode_image
from offroad_seg_msgs.msg import SegmentationInfo, SegmentationStats


def message_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """Decode an Image or CompressedImage to RGB uint8 (H, W, 3); raises ImageDecodeError."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.format, msg.data)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def array_to_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    """Wrap a uint8 array (H, W) mono8 or (H, W, 3) rgb8 in an Image with ``header``."""
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * (array.shape[2] if array.ndim == 3 else 1)
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def class_fractions(labels: np.ndarray, num_classes: int) -> list[float]:
    """Fraction of pixels per class id 0..num_classes-1 (ignore values not counted)."""
    counts = cv2.calcHist([labels], [0], None, [256], [0, 256]).reshape(-1)[:num_classes]
    return (counts / labels.size).astype(np.float32).tolist()


def info_message(contract: ModelContract, provider: str, sha256: str,
                 confidence_threshold: float, header: Header) -> SegmentationInfo:
    """Build the latched SegmentationInfo from the model contract and the provider in use."""
    msg = SegmentationInfo()
    msg.header = header
    msg.class_ids = list(range(contract.num_classes))
    msg.class_names = list(contract.class_names)
    msg.class_categories = list(contract.class_categories)
    msg.palette_rgb = [int(v) for rgb in contract.palette for v in rgb]
    msg.ignore_value = int(contract.ignore_index)
    msg.confidence_threshold = float(confidence_threshold)
    msg.height, msg.width = int(contract.height), int(contract.width)
    msg.model_id = contract.model_id
    msg.model_version = contract.model_version
    msg.model_sha256 = sha256
    msg.execution_provider = provider
    return msg


def rescale_camera_info(info: CameraInfo, width: int, height: int, header: Header) -> CameraInfo:
    """Return ``info`` rescaled to ``width`` x ``height`` (the label image) with ``header``.

    K and P follow the resize (see :mod:`offroad_core.camera`); D, R and the
    distortion model are unchanged; binning and ROI are reset (the labels cover the full image).
    Raises ValueError (the reason) for a CameraInfo the costmap could not use: the project's one
    validator (:meth:`CameraIntrinsics.from_camera_info`: size, finite K and D, positive focal
    lengths, distortion model) plus finite R and P, which are republished too.
    """
    CameraIntrinsics.from_camera_info(info.width, info.height, info.k, info.d,
                                      info.distortion_model)
    if not (np.isfinite(info.r).all() and np.isfinite(info.p).all()):
        raise ValueError(f"R or P has a non-finite value: r={list(info.r)}, p={list(info.p)}")
    sx, sy = scale_factors(info.width, info.height, width, height)
    out = CameraInfo()
    out.header = header
    out.width, out.height = width, height
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.k = rescale_k(np.asarray(info.k), sx, sy).reshape(-1).tolist()
    out.r = list(info.r)
    out.p = rescale_p(np.asarray(info.p), sx, sy).reshape(-1).tolist()
    return out


def stats_message(header: Header, stage_ms: dict[str, float], labels: np.ndarray,
                  num_classes: int, totals: tuple[int, int, int, int]) -> SegmentationStats:
    """SegmentationStats of one processed frame (``totals``: received, processed, dropped,
    rejected)."""
    stats = SegmentationStats()
    stats.header = header
    stats.preprocess_ms = stage_ms["preprocess"]
    stats.inference_ms = stage_ms["inference"]
    stats.postprocess_ms = stage_ms["postprocess"]
    stats.age_ms = stage_ms["age"]
    stats.class_fractions = class_fractions(labels, num_classes)
    (stats.frames_received, stats.frames_processed, stats.frames_dropped,
     stats.frames_rejected) = totals
    return stats
