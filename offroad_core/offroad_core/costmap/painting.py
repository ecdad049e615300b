"""Painting: cloud points take the label of the label-image pixel they project into, unless a
nearer surface seen by the camera hides them. No ROS import; vectorised numpy.

A point (``base_link``) is moved into the camera's optical frame, projected with the camera
model of the labels (``offroad_core.camera``, distortion included) and rounded to the nearest
label pixel. It is painted when it is in front of the camera, inside the image and visible:

* where the depth image has a return at that pixel (aligned to the labels, see
  :mod:`offroad_core.costmap.depth`), the point's optical depth must not exceed the image's by
  more than the tolerance ``max(occlusion_tolerance, occlusion_ratio x depth)``;
* elsewhere (no depth image, or no return there) the cloud is its own z-buffer: the image is
  cut into ``block`` x ``block`` pixel tiles, each tile keeps the nearest depth of the points
  that fall in it and its eight neighbour tiles (a LiDAR is sparse: its points behind an object
  rarely fall in the very pixels of the object's own points), and a point farther than that by
  more than ``max(tolerance, zbuffer_ratio x depth)`` is hidden. The relative tolerance is
  larger than the depth image's: ground seen at a grazing angle recedes quickly across a
  tile's neighbourhood and must not hide itself.

A hidden point takes no label (the ignore value): it still counts as geometry (see
:mod:`offroad_core.costmap.terrain`), never as the class of the surface in front of it. The
price of the tile z-buffer: points of a far surface next to a nearer one in the image (within a
tile and its neighbours) lose their label too; they are never given a wrong one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from offroad_core.camera import Camera
from offroad_core.costmap.extrinsics import combine

MIN_DEPTH = 0.05  # m: points closer to the optical centre than this are not projected


@dataclass(frozen=True)
class Painted:
    """Per point: label value (ignore where unpainted) and label pixel (-1 where none)."""

    labels: np.ndarray
    pixel: np.ndarray
    hidden: int


class Painter:
    """Projects points into the label image of one camera (module docstring)."""

    def __init__(self, camera: Camera, tolerance: float = 0.15, ratio: float = 0.03,
                 block: int = 4, zbuffer_ratio: float = 0.15) -> None:
        """``camera``: intrinsics at the label resolution and the optical frame's pose."""
        if block < 1:
            raise ValueError(f"z-buffer block must be >= 1 pixel, got {block}")
        self.camera = camera
        self.tolerance, self.ratio, self.block = float(tolerance), float(ratio), int(block)
        self.zbuffer_ratio = float(zbuffer_ratio)
        intr = camera.intrinsics
        self.width, self.height = intr.width, intr.height
        self.bw, self.bh = math.ceil(intr.width / block), math.ceil(intr.height / block)
        rows, cols = np.divmod(np.arange(intr.width * intr.height), intr.width)
        self._tile_of_pixel = (rows // block) * self.bw + cols // block
        self._rotation = camera.pose.rotation_optical.astype(np.float32)
        self._origin = camera.pose.translation.astype(np.float32)

    def paint(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, labels: np.ndarray,
              depth: np.ndarray | None, ignore_value: int) -> Painted:
        """Label values of ``base_link`` points (x, y, z arrays); ``labels`` and ``depth`` are
        flat (H * W,) arrays of the label image and of the depth at its pixels (or None)."""
        n = len(x)
        out = np.full(n, ignore_value, np.uint8)
        pixel = np.full(n, -1, np.intp)
        if n == 0:
            return Painted(out, pixel, 0)
        r, o = self._rotation, self._origin
        delta = (x - o[0], y - o[1], z - o[2])
        zo = combine(delta, r[:, 2])
        with np.errstate(invalid="ignore"):          # inf: a non-finite point, never painted
            front = np.flatnonzero((zo > MIN_DEPTH) & (zo < np.inf))
        delta, zo = tuple(c[front] for c in delta), zo[front]
        xo, yo = combine(delta, r[:, 0]), combine(delta, r[:, 1])
        intr = self.camera.intrinsics
        if intr.distortion_model == "none":
            u = xo / zo * np.float32(intr.fx) + np.float32(intr.cx + 1.5)
            v = yo / zo * np.float32(intr.fy) + np.float32(intr.cy + 1.5)
        else:
            uv, _ = intr.project_optical(np.stack([xo, yo, zo], axis=1))
            u, v = uv[:, 0] + 1.5, uv[:, 1] + 1.5
        with np.errstate(invalid="ignore"):
            ui = u.astype(np.int32)                    # floor(u + 0.5) + 1 where it can be inside
            vi = v.astype(np.int32)
        ui -= 1
        vi -= 1
        inside = np.flatnonzero((ui.view(np.uint32) < self.width)
                                & (vi.view(np.uint32) < self.height))
        sel = front[inside]
        zo = zo[inside]
        pix = vi[inside].astype(np.intp)
        pix *= self.width
        pix += ui[inside]
        visible = self._zbuffer_visible(zo, pix)
        if depth is not None:
            d = depth[pix]
            seen = np.isfinite(d)
            limit = np.multiply(d, np.float32(self.ratio))
            np.maximum(limit, np.float32(self.tolerance), out=limit)
            limit += d                                 # NaN (no return) where not seen
            with np.errstate(invalid="ignore"):
                by_depth = zo <= limit
            np.copyto(visible, by_depth, where=seen)
        shown = np.flatnonzero(visible)
        pix = pix[shown]
        shown = sel[shown]
        out[shown] = labels[pix]
        pixel[shown] = pix
        return Painted(out, pixel, int(len(sel) - len(shown)))

    def _zbuffer_visible(self, z: np.ndarray, pix: np.ndarray) -> np.ndarray:
        """Visibility against the tile z-buffer of the points themselves (label pixels
        ``pix``): the nearest depth of each tile, then of its 3 x 3 tiles (an erosion)."""
        tile = np.take(self._tile_of_pixel, pix)
        near = np.full(self.bw * self.bh, np.inf, np.float32)
        np.minimum.at(near, tile, z.astype(np.float32))
        grown = cv2.erode(near.reshape(self.bh, self.bw), _CROSS_3X3,
                          borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)
        front = np.take(grown.ravel(), tile)
        limit = np.multiply(front, np.float32(self.zbuffer_ratio))
        np.maximum(limit, np.float32(self.tolerance), out=limit)
        limit += front
        return z <= limit


_CROSS_3X3 = np.ones((3, 3), np.uint8)
"""Structuring element of the z-buffer: a tile and its eight neighbours."""
