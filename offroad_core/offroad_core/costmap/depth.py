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
Which pixels give a point (a return within ``max_range`` whose cell is inside the grid) is one
comparison per pixel with a depth interval found once by bisection over the float32 depths
with the very operations of the cell computation, so it selects exactly the same points as
computing every cell and testing it.
Thinning (``depth_thinning``, :func:`thinned_pixels`): near the robot a 5 cm cell holds tens
to hundreds of pixels of a 640x544 image; pixels are skipped there (a stride chosen once from
the flat-ground footprint), never where a pixel covers more than an eighth of a cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from offroad_core.camera import MAX_IMAGE_SIDE, Camera, CameraIntrinsics
from offroad_core.costmap.grid import GridGeometry

DEPTH_ENCODINGS = {"16uc1": (2, "<u2"), "mono16": (2, "<u2"), "32fc1": (4, "<f4")}
_NAN_BITS = np.float32(np.nan).view(np.uint32)


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
        depth *= np.float32(0.001)
        invalid = raw == 0
        negative = 0
    else:
        depth = raw.astype(np.float32)
        with np.errstate(invalid="ignore"):
            valid = depth > 0
            negative = int(np.count_nonzero(depth < 0))
        invalid = ~(valid & np.isfinite(depth))
    bits = depth.view(np.uint32)                  # NaN where invalid: its bits, or-ed in
    np.bitwise_or(bits, _NAN_BITS, out=bits, where=invalid)
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


_NO_FLOAT = 0x7F800000
"""Bit pattern of +inf: above every positive finite float32 (their bit patterns are ordered)."""
_MAX_FLOAT = 0x7F7FFFFF
Holds = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _first_bits(holds: Holds, guess: np.ndarray) -> np.ndarray:
    """Per element the bit pattern of the smallest positive float32 ``d`` for which
    ``holds(d, elements)`` is true, for predicates monotone in ``d`` (false, then true);
    :data:`_NO_FLOAT` where it never holds. Bisection over the bit patterns, bracketed around
    ``guess`` (float64, the analytic threshold) where the predicate confirms the bracket."""
    n = len(guess)
    every = np.arange(n)
    lo = np.zeros(n, np.uint32)                          # holds(lo) taken as false
    hi = np.full(n, _NO_FLOAT, np.uint32)                # holds(hi) taken as true

    def at(bits: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return holds(bits.view(np.float32), idx)

    first = at(np.full(n, 1, np.uint32), every)          # already at the smallest depth
    never = ~first & ~at(np.full(n, _MAX_FLOAT, np.uint32), every)
    hi[first] = 1
    lo[never] = _MAX_FLOAT
    with np.errstate(invalid="ignore", over="ignore"):
        g0 = np.float32(guess * (1 - 2.0 ** -12)).view(np.uint32)
        g1 = np.float32(guess * (1 + 2.0 ** -12)).view(np.uint32)
    idx = np.flatnonzero(~first & ~never & (guess > 0) & (g0 >= 1) & (g1 < _NO_FLOAT))
    good = ~at(g0[idx], idx) & at(g1[idx], idx)
    lo[idx[good]], hi[idx[good]] = g0[idx[good]], g1[idx[good]]
    idx = np.flatnonzero(hi - lo > 1)
    while len(idx):
        mid = lo[idx] + (hi[idx] - lo[idx]) // 2
        ok = at(mid, idx)
        hi[idx[ok]] = mid[ok]
        lo[idx[~ok]] = mid[~ok]
        idx = idx[hi[idx] - lo[idx] > 1]
    return hi


def _inside_bits(gain: np.ndarray, offset: np.float32, cells: int) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """(first, stop) bit patterns of the depths ``d`` whose grid coordinate plus one,
    ``float32(float32(d * gain) + offset)``, truncates into 1..cells: exactly the depths
    ``first <= bits(d) < stop`` (the coordinate is monotone in ``d``: an interval)."""
    top = np.float32(cells + 1)
    up, down = gain > 0, gain < 0

    def coord(d: np.ndarray, idx: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            c = np.multiply(d, gain[idx])
            c += offset
        return c

    def reached(d: np.ndarray, idx: np.ndarray) -> np.ndarray:   # at or past the start
        c = coord(d, idx)
        return np.where(up[idx], c >= 1, np.where(down[idx], c < top, True))

    def passed(d: np.ndarray, idx: np.ndarray) -> np.ndarray:    # past the end
        c = coord(d, idx)
        inside = (c >= 1) & (c < top)
        return np.where(up[idx], c >= top, np.where(down[idx], c < 1, ~inside))

    g = gain.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        near, far = (1.0 - float(offset)) / g, (float(top) - float(offset)) / g
    return (_first_bits(reached, np.where(up, near, far)),
            _first_bits(passed, np.where(up, far, near)))


class DepthProjector:
    """Label-pixel depths -> base_link points and grid cells (module docstring)."""

    def __init__(self, camera: Camera, geometry: GridGeometry, max_range: float,
                 thinning: bool = True) -> None:
        """Directions of the used label pixels of ``camera`` (intrinsics at the label size):
        all of them, or those :func:`thinned_pixels` keeps; per pixel the interval of depths
        that give a point inside the grid and within ``max_range``."""
        self.camera, self.geometry = camera, geometry
        intr = camera.intrinsics
        n = intr.width * intr.height
        self.kept = thinned_pixels(camera, geometry.resolution) if thinning else np.arange(n)
        rays = intr.pixel_rays_optical(intr.pixel_grid()[self.kept])
        base = (rays / rays[:, 2:3]) @ camera.pose.rotation_optical.T     # optical z = 1
        self.direction = np.zeros((3, n), np.float32)                     # per label pixel
        self.direction[:, self.kept] = base.T
        self.z_gain = self.direction[2].copy()
        self.origin = camera.pose.translation.astype(np.float32)
        res = geometry.resolution
        o = camera.pose.translation
        self.col_gain = np.zeros(n, np.float32)
        self.row_gain = np.zeros(n, np.float32)
        self.col_gain[self.kept] = base[:, 0] / res
        self.row_gain[self.kept] = base[:, 1] / res
        self.col_offset = np.float32((o[0] - geometry.origin_x) / res + 1.0)
        self.row_offset = np.float32((o[1] - geometry.origin_y) / res + 1.0)
        with np.errstate(divide="ignore"):
            limit = (max_range / np.hypot(base[:, 0], base[:, 1])).astype(np.float32)
        # d is used when lo <= d <= hi: a return (NaN compares false) within max_range whose
        # cell is inside the grid (the same float32 operations as :meth:`cells`, so exact)
        c0, c1 = _inside_bits(self.col_gain[self.kept], self.col_offset, geometry.nx)
        r0, r1 = _inside_bits(self.row_gain[self.kept], self.row_offset, geometry.ny)
        first = np.maximum(np.maximum(c0, r0), np.uint32(1))
        last = np.minimum(np.minimum(c1, r1) - np.uint32(1), limit.view(np.uint32))
        self.lo = np.full(n, np.inf, np.float32)      # pixels not kept: never used
        self.hi = np.zeros(n, np.float32)
        self.lo[self.kept] = first.view(np.float32)
        self.hi[self.kept] = last.view(np.float32)
        self._mask = np.empty(n, np.uint8)
        self._used = np.empty(n, bool)

    def cells(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pixels, cell, z) of the used pixels whose depth is a return within ``max_range``
        and inside the grid, from the (H * W,) float32 depth at the label pixels: their label
        pixel indices (ascending), flat output cells and base_link heights."""
        g = self.geometry
        mask = cv2.inRange(depth, self.lo, self.hi, dst=self._mask)    # NaN is outside
        pixels = np.flatnonzero(np.greater(mask, 0, out=self._used))
        d = depth[pixels]
        col = self.col_gain[pixels]
        col *= d
        col += self.col_offset
        row = self.row_gain[pixels]
        row *= d
        row += self.row_offset
        z = self.z_gain[pixels]
        z *= d
        z += self.origin[2]
        cell = row.astype(np.int32)
        cell *= np.int32(g.nx)
        cell += col.astype(np.int32)
        cell -= np.int32(g.nx + 1)                   # (row + 1, col + 1) -> row * nx + col
        return pixels, cell, z

    def aligned(self, depth: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 optical-frame points of every label pixel (NaN: no return), the
        pixel-aligned cloud of the labels (built on first use)."""
        intr = self.camera.intrinsics
        if not hasattr(self, "_optical"):
            rays = intr.pixel_rays_optical(intr.pixel_grid())
            self._optical = (rays / rays[:, 2:3]).astype(np.float32)
        out = self._optical * depth.reshape(-1, 1)
        return out.reshape(intr.height, intr.width, 3)

    def points(self, depth: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """(len(pixels), 3) float32 base_link points of the used label pixels ``pixels``."""
        d = depth[pixels]
        out = np.empty((len(pixels), 3), np.float32)
        for axis in range(3):
            np.multiply(self.direction[axis, pixels], d, out=out[:, axis])
            out[:, axis] += self.origin[axis]
        return out
