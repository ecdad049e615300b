"""Depth images: decoding (REP-118), alignment to the label image, back-projection to points.

Encodings: ``16UC1`` (and its alias ``mono16``) in millimetres, 0 = no return; ``32FC1`` in
metres, NaN = no return (+/-Inf too: too far / too near). Zero and negative values of a
``32FC1`` image are not valid depths either. Every invalid pixel becomes NaN and gives no point;
the counts of invalid and of negative pixels are returned (negative depth means a broken
driver: the node reports it). Depth is along the optical axis (z of the optical frame), not the
range along the ray.

Alignment (decision, see docs/depth.md): the depth image is registered to the camera that
produced the labels (same optical frame), at its own resolution (the camera's, e.g. 1280x1080)
while the labels are at the model's (e.g. 640x544). Every label pixel reads the depth pixel
that its centre's ray falls into in the depth camera (nearest, never interpolated: interpolating
across an object's silhouette invents points between the object and the background). The ray is
computed with the label camera (the camera model rescaled to the label size, as the
segmentation node publishes it) and projected with the depth image's own CameraInfo, so any
pair of resolutions (and distortion) maps exactly; equal intrinsics are an identity. A depth
image whose size differs from its CameraInfo is refused (``depth_size_mismatch``).

Back-projection (:class:`DepthProjector`): the base_link direction of every used label pixel,
scaled so that its optical z is 1, is computed once per (label camera, pose); per frame a point
is ``camera origin + depth x direction`` and its grid cell comes from two multiply-adds.
Thinning (``depth_thinning``, :func:`thinned_pixels`): near the robot a 5 cm cell holds tens
to hundreds of pixels of a 640x544 image; pixels are skipped there (a stride chosen once from
the flat-ground footprint), never where a pixel covers more than an eighth of a cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offroad_core.camera import MAX_IMAGE_SIDE, Camera, CameraIntrinsics
from offroad_core.costmap.grid import GridGeometry

DEPTH_ENCODINGS = {"16uc1": (2, "<u2"), "mono16": (2, "<u2"), "32fc1": (4, "<f4")}


class DepthError(ValueError):
    """A depth image that cannot be used; ``reason`` is a short stable key for counters."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason key next to the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class DepthImage:
    """A decoded depth image: (H, W) float32 metres, NaN where there is no return."""

    depth: np.ndarray
    invalid: int
    negative: int


def decode_depth(encoding: str, height: int, width: int, step: int,
                 data: bytes | memoryview | np.ndarray, is_bigendian: bool = False) -> DepthImage:
    """Decode a ``16UC1``/``32FC1`` depth image; :class:`DepthError` for anything else."""
    key = str(encoding).lower()
    if key not in DEPTH_ENCODINGS:
        raise DepthError("depth_bad_encoding", f"depth encoding {encoding!r} is not 16UC1 "
                         "(mm) or 32FC1 (m)")
    height, width, step = int(height), int(width), int(step)
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise DepthError("depth_bad_size", f"depth image size {width}x{height} is not within "
                         f"1..{MAX_IMAGE_SIDE} pixels")
    bpp, fmt = DEPTH_ENCODINGS[key]
    if step < width * bpp:
        raise DepthError("depth_bad_size", f"depth step {step} < width {width} x {bpp} bytes")
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else \
        data.view(np.uint8).ravel()
    if buf.size < step * height:
        raise DepthError("depth_bad_size", f"depth data has {buf.size} bytes, {height} rows of "
                         f"step {step} need {step * height}")
    dtype = np.dtype(fmt).newbyteorder(">" if is_bigendian else "<")
    rows = buf[: step * height].reshape(height, step)[:, : width * bpp]
    raw = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    if bpp == 2:
        depth = raw.astype(np.float32)
        invalid = depth == 0
        depth *= np.float32(0.001)
        negative = 0
    else:
        depth = raw.astype(np.float32)
        with np.errstate(invalid="ignore"):
            valid = depth > 0
            negative = int(np.count_nonzero(depth < 0))
        invalid = ~(valid & np.isfinite(depth))
    depth[invalid] = np.nan
    return DepthImage(depth, int(np.count_nonzero(invalid)), negative)


class DepthAlignment:
    """Which depth pixel every label pixel reads (module docstring): one gather per frame."""

    def __init__(self, labels: CameraIntrinsics, depth: CameraIntrinsics) -> None:
        """Map label pixel centres to depth pixels (nearest) through the rays."""
        self.labels, self.depth = labels, depth
        self.identity = labels == depth
        if self.identity:
            return
        rays = labels.pixel_rays_optical(labels.pixel_grid())
        uv, front = depth.project_optical(rays)
        u = np.floor(uv[:, 0] + 0.5)
        v = np.floor(uv[:, 1] + 0.5)
        inside = front & (u >= 0) & (u < depth.width) & (v >= 0) & (v < depth.height)
        self.index = np.where(inside, v * depth.width + u, 0).astype(np.intp)
        self.outside = np.flatnonzero(~inside)

    def sample(self, depth: np.ndarray) -> np.ndarray:
        """Depth (H_labels * W_labels,) float32 at the label pixels; NaN where none."""
        if depth.shape != (self.depth.height, self.depth.width):
            raise DepthError("depth_size_mismatch", f"depth image is {depth.shape[1]}x"
                             f"{depth.shape[0]} but its camera_info is {self.depth.width}x"
                             f"{self.depth.height}")
        if self.identity:
            return depth.reshape(-1)
        out = np.take(depth.reshape(-1), self.index)
        out[self.outside] = np.nan
        return out


MAX_THINNING = 4
"""Largest pixel stride of the thinning (a 3 cm pole 1.5 m away is still 3 samples wide)."""


def thinned_pixels(camera: Camera, resolution: float) -> np.ndarray:
    """Label pixels kept by the thinning: where one pixel's footprint on flat ground is small
    against a cell, only every s-th pixel along both image axes (s a power of two up to
    :data:`MAX_THINNING`) so that s pixels still cover at most half a cell: two samples per
    cell side on flat ground, one where the ground is 40 % farther than flat. Pixels that do not
    see the flat ground (the horizon and above) are all kept."""
    intr, pose = camera.intrinsics, camera.pose
    rays = intr.pixel_rays_optical(intr.pixel_grid()) @ pose.rotation_optical.T    # unit
    down = rays[:, 2] < -1e-6
    length = np.where(down, pose.z / np.where(down, -rays[:, 2], 1.0), np.inf)
    # one pixel spans length / f across the ray; on the ground, radially, length / f / sin
    # (grazing angle) = length^2 / (f z)
    foot = length / max(intr.fx, intr.fy) * np.maximum(1.0, length / pose.z)
    with np.errstate(divide="ignore"):
        ratio = resolution / (2.0 * foot)
    stride = np.ones(len(rays), np.int64)
    for s in (2, 4, 8):
        if s <= MAX_THINNING:
            stride[down & (ratio >= s)] = s
    grid = intr.pixel_grid().astype(np.int64)
    keep = (grid[:, 0] % stride == 0) & (grid[:, 1] % stride == 0)
    return np.flatnonzero(keep)


class DepthProjector:
    """Label-pixel depths -> base_link points and grid coordinates (module docstring)."""

    def __init__(self, camera: Camera, geometry: GridGeometry, max_range: float,
                 thinning: bool = True) -> None:
        """Directions of the used label pixels of ``camera`` (intrinsics at the label size):
        all of them, or those :func:`thinned_pixels` keeps."""
        self.camera = camera
        intr = camera.intrinsics
        self.kept = thinned_pixels(camera, geometry.resolution) if thinning else \
            np.arange(intr.width * intr.height)
        rays = intr.pixel_rays_optical(intr.pixel_grid()[self.kept])
        base = (rays / rays[:, 2:3]) @ camera.pose.rotation_optical.T     # optical z = 1
        self.direction = np.ascontiguousarray(base.T, dtype=np.float32)   # (3, kept)
        self.origin = camera.pose.translation.astype(np.float32)
        res = geometry.resolution
        o = camera.pose.translation
        self.col_gain = (base[:, 0] / res).astype(np.float32)
        self.row_gain = (base[:, 1] / res).astype(np.float32)
        self.col_offset = np.float32((o[0] - geometry.origin_x) / res + 1.0)
        self.row_offset = np.float32((o[1] - geometry.origin_y) / res + 1.0)
        with np.errstate(divide="ignore"):
            self.limit = (max_range / np.hypot(base[:, 0], base[:, 1])).astype(np.float32)

    def grid_coords(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray]:
        """(col + 1, row + 1, z, index) of the kept pixels whose depth is a return within
        ``max_range``, from the (H * W,) depth at the label pixels; ``index``: their positions
        in :attr:`kept`."""
        d = depth if len(self.kept) == len(depth) else np.take(depth, self.kept)
        index = np.flatnonzero(d <= self.limit)         # NaN (no return) compares false
        d = d[index]
        col = np.multiply(d, self.col_gain[index])
        col += self.col_offset
        row = np.multiply(d, self.row_gain[index])
        row += self.row_offset
        z = np.multiply(d, self.direction[2, index])
        z += self.origin[2]
        return col, row, z, index

    def aligned(self, depth: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 optical-frame points of every label pixel (NaN: no return), the
        pixel-aligned cloud of the labels (built on first use)."""
        intr = self.camera.intrinsics
        if not hasattr(self, "_optical"):
            rays = intr.pixel_rays_optical(intr.pixel_grid())
            self._optical = (rays / rays[:, 2:3]).astype(np.float32)
        out = self._optical * depth.reshape(-1, 1)
        return out.reshape(intr.height, intr.width, 3)

    def points(self, depth: np.ndarray, index: np.ndarray) -> np.ndarray:
        """(len(index), 3) float32 base_link points of the kept pixels ``index`` (positions
        in :attr:`kept`)."""
        d = depth[self.kept[index]]
        out = np.empty((len(index), 3), np.float32)
        for axis in range(3):
            np.multiply(self.direction[axis, index], d, out=out[:, axis])
            out[:, axis] += self.origin[axis]
        return out
