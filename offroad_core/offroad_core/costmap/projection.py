"""Label image -> ground grid: lookup tables built once per (camera, label size, grid), then one
vectorised gather/reduce per frame. No ROS import.

Flat-ground model: the ground is ``base_link`` z = 0; the camera model is
``offroad_core.camera.Camera`` (the one the synthetic renderer uses).

Why the label image is resampled first. Obstacles stand on the ground: only their lowest
point touches it, and the flat-ground projection of their other pixels lands behind them (the
"smear"). The lowest point must be searched along the image of a *vertical world line*. With
pitch, roll or lens distortion, image columns are not such lines: scanning image columns finds
false "bottoms" on the slanted side edges of every object and puts lethal cells behind it. So
the tables sample the labels on a polar ray grid around the camera: column ``j`` is the vertical
half-plane at azimuth ``theta_j`` (relative to the camera yaw) through the camera centre, row
``i`` the elevation ``phi_i`` (row 0 farthest, at ``max_range``; rows grow downwards, nearer).
Every vertical object edge is a column of that grid whatever the pose and distortion; each
sample is the label pixel its ray falls into (nearest), built once through
``Camera.base_to_pixels``. Sample pitch is ``1 / (oversample * max(fx, fy))`` rad, the label
image's own angular resolution at its centre.

Tables (:class:`ProjectionTables`): pixel index of every sample (a sentinel reads the ignore
value outside the image); ground cell of every sample (-1 beyond ``max_range`` or outside the
grid); ground cell and distance of every sample's lower edge (``phi - pitch / 2``: where an
object whose lowest sample this is touches the ground); whether the sample below is inside the
image; and, for the cells no sample reaches (far cells smaller than a sample footprint), the
sample their centre falls into.

Per frame (:meth:`GroundProjector.project`):

1. gather the samples from the labels; severity level (0 none, 1 FREE .. 4 HAZARD) and the
   "vertical class" flag (obstacle, dynamic) per sample through one 256-entry table;
2. a vertical run's lowest sample whose lower neighbour is inside the image and not vertical is
   the object's ground contact: evidence of the object's category at the contact cell. Objects
   cut by the image border have no visible contact and mark nothing (the ground behind them
   is occluded, hence unknown). Vertical samples never count as ground: the ground on their
   rays is hidden;
3. occlusion: ``occlusion="column"`` (default, conservative): every sample of the column
   farther than the nearest contact is occluded, including ground seen over a low object;
   ``occlusion="ray"``: only the object's own samples (exact for a flat world and true labels).
   Both widen occlusion by one sample sideways and upwards (pixel quantisation);
4. one ``np.bincount`` over (cell, level) keys; per cell the worst level with at least
   ``min_support`` samples wins; a cell crossed by an occluded ray cannot be FREE or CAUTION
   (it is unknown); BLOCKED/HAZARD evidence stands. Fill cells take the worse of their
   contact evidence and of the level of the one sample over their centre (``min_support``
   does not apply to that sample: one sample is all the image has there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offroad_core.camera import Camera
from offroad_core.costmap.categories import NUM_LEVELS, CategoryValues, LabelTable
from offroad_core.costmap.grid import GridGeometry

OCCLUDED = NUM_LEVELS          # extra bin of the reduction
KEYS_PER_CELL = NUM_LEVELS + 1
OCCLUSION_MODES = ("column", "ray")
_LAST_GROUND_LEVEL = 2         # FREE and CAUTION are cleared by occlusion
_MAX_SAMPLES = 4_000_000
_SIDE_ROWS = 8
_VERTICAL_BIT = 8


class ProjectionError(ValueError):
    """The camera sees no ground inside the grid and range, or the tables would be too big."""


@dataclass(frozen=True)
class ProjectionTables:
    """Lookup tables of one (camera, label size, grid, max range); see the module docstring."""

    geometry: GridGeometry
    height: int
    width: int
    shape: tuple[int, int]
    sample_pixel: np.ndarray
    below_inside: np.ndarray
    sample_key: np.ndarray
    sample_index: np.ndarray
    contact_key: np.ndarray
    row_dist: np.ndarray
    contact_dist: np.ndarray
    fill_cell: np.ndarray
    fill_sample: np.ndarray

    @property
    def num_samples(self) -> int:
        """Number of ray samples per frame."""
        return self.shape[0] * self.shape[1]

    @classmethod
    def build(cls, camera: Camera, geometry: GridGeometry, max_range: float,
              oversample: float = 1.0) -> ProjectionTables:
        """Compute the tables; label images must have the camera's size."""
        intr, pose = camera.intrinsics, camera.pose
        if pose.z <= 0:
            raise ProjectionError(f"camera height {pose.z} m must be above the ground (z > 0)")
        if not oversample > 0:
            raise ProjectionError(f"oversample must be > 0, got {oversample}")
        reach = min(max_range, _farthest_corner(geometry, pose.x, pose.y))
        pitch = 1.0 / (oversample * max(intr.fx, intr.fy))
        phi_top = -math.atan2(pose.z, reach)
        rays = camera.pixel_rays_base(intr.pixel_grid())
        elevation = np.arcsin(np.clip(rays[:, 2], -1.0, 1.0))
        ground = elevation <= phi_top + pitch
        if not ground.any():
            raise ProjectionError("no pixel of the camera sees the ground within max_range; "
                                  "check the camera pose (z, pitch) and max_range")
        phi_low = float(elevation[ground].min())
        theta = _wrap(np.arctan2(rays[ground, 1], rays[ground, 0]) - pose.yaw)
        th_lo, th_hi = float(theta.min()), float(theta.max())
        rows = math.ceil((phi_top - phi_low) / pitch) + 1
        cols = math.ceil((th_hi - th_lo) / pitch) + 1
        if rows * cols > _MAX_SAMPLES:
            raise ProjectionError(f"{rows}x{cols} ray samples: lower oversample")
        phi = phi_top - np.arange(rows) * pitch
        th = th_lo + np.arange(cols) * pitch
        sample_pixel = _sample_pixels(camera, phi, th).reshape(rows, cols)
        sentinel = intr.width * intr.height
        inside = sample_pixel != sentinel
        below_inside = np.zeros_like(inside)
        below_inside[:-1] = inside[1:]
        row_dist = pose.z / np.tan(-phi)
        contact_dist = pose.z / np.tan(-(phi - pitch / 2))
        cell = _cells(geometry, pose, row_dist, th, reach)
        contact = _cells(geometry, pose, contact_dist, th, reach)
        sample_index = np.flatnonzero((cell >= 0) & inside.ravel()).astype(np.intp)
        sample_key = (cell[sample_index] * KEYS_PER_CELL).astype(np.intp)
        contact_key = np.where(contact >= 0, contact * KEYS_PER_CELL, -1).astype(np.int32)
        reached = np.zeros(geometry.num_cells, dtype=bool)
        reached[cell[cell >= 0]] = True
        fill_cell, fill_sample = _fill(geometry, pose, ~reached, phi_top, th_lo, pitch,
                                       rows, cols, reach)
        return cls(geometry, intr.height, intr.width, (rows, cols),
                   sample_pixel.ravel().astype(np.intp), below_inside, sample_key,
                   sample_index, contact_key, row_dist.astype(np.float32)[:, None],
                   contact_dist.astype(np.float32)[:, None], fill_cell.astype(np.intp),
                   fill_sample.astype(np.intp))


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _farthest_corner(geometry: GridGeometry, x: float, y: float) -> float:
    """Horizontal distance from (x, y) to the farthest grid corner."""
    xs = (geometry.origin_x, geometry.origin_x + geometry.nx * geometry.resolution)
    ys = (geometry.origin_y, geometry.origin_y + geometry.ny * geometry.resolution)
    return max(math.hypot(cx - x, cy - y) for cx in xs for cy in ys)


def _sample_pixels(camera: Camera, phi: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Flat pixel index of every (phi, theta) ray; width * height when outside the image."""
    pose, intr = camera.pose, camera.intrinsics
    p, t = np.meshgrid(phi, theta + pose.yaw, indexing="ij")
    dirs = np.stack([np.cos(p) * np.cos(t), np.cos(p) * np.sin(t), np.sin(p)], axis=-1)
    dirs = dirs.reshape(-1, 3)
    uv, inside = camera.base_to_pixels(pose.translation + dirs)
    # Distortion that folds back (coefficients fitted for a smaller field than the image) maps
    # rays to pixels whose own ray is elsewhere: keep only samples that round-trip.
    back = camera.pixel_rays_base(uv[inside])
    cos_err = np.einsum("ij,ij->i", back, dirs[inside])
    inside[np.flatnonzero(inside)[cos_err < math.cos(2.0 / max(intr.fx, intr.fy))]] = False
    u = np.clip(np.floor(uv[:, 0] + 0.5), 0, intr.width - 1).astype(np.int64)
    v = np.clip(np.floor(uv[:, 1] + 0.5), 0, intr.height - 1).astype(np.int64)
    return np.where(inside, v * intr.width + u, intr.width * intr.height)


def _cells(geometry: GridGeometry, pose, dist: np.ndarray, theta: np.ndarray,
           reach: float) -> np.ndarray:
    """Flat cell index of the ground points at (dist row, theta col); -1 beyond reach/outside."""
    d = dist[:, None]
    ang = theta[None, :] + pose.yaw
    cell = geometry.cell_index(pose.x + d * np.cos(ang), pose.y + d * np.sin(ang)).ravel()
    cell[np.broadcast_to(d > reach, (len(dist), len(theta))).ravel()] = -1
    return cell


def _fill(geometry: GridGeometry, pose, wanted: np.ndarray, phi_top: float, th_lo: float,
          pitch: float, rows: int, cols: int, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """(cell, sample) for the ``wanted`` cells whose centre falls inside the ray grid."""
    xs, ys = geometry.cell_centres()
    cells = np.flatnonzero(wanted)
    dx, dy = xs.ravel()[cells] - pose.x, ys.ravel()[cells] - pose.y
    dist = np.hypot(dx, dy)
    i = np.floor((phi_top + np.arctan2(pose.z, dist)) / pitch + 0.5)
    j = np.floor((_wrap(np.arctan2(dy, dx) - pose.yaw) - th_lo) / pitch + 0.5)
    ok = (dist <= reach) & (i >= 0) & (i < rows) & (j >= 0) & (j < cols)
    return cells[ok], (i[ok] * cols + j[ok]).astype(np.int64)


@dataclass(frozen=True)
class FrameGrid:
    """Result of one frame: severity level and grid value of every cell, shape (ny, nx)."""

    levels: np.ndarray
    values: np.ndarray


class GroundProjector:
    """Projects label images onto the grid with precomputed tables (module docstring)."""

    def __init__(self, tables: ProjectionTables, labels: LabelTable, values: CategoryValues,
                 min_support: int = 1, occlusion: str = "column") -> None:
        """Bind the tables, the label table and the category values; check the options."""
        if min_support < 1:
            raise ValueError(f"min_support must be >= 1, got {min_support}")
        if occlusion not in OCCLUSION_MODES:
            raise ValueError(f"occlusion {occlusion!r} is not one of {', '.join(OCCLUSION_MODES)}")
        self.tables = tables
        self.labels = labels
        self.min_support = int(min_support)
        self.column_occlusion = occlusion == "column"
        self._value_lut = values.level_lut()
        # One lookup per sample: severity level in bits 0-2, "vertical class" in bit 3.
        self._code_lut = (labels.levels | (labels.vertical.astype(np.uint8) << 3)).astype(np.uint8)
        self._padded = np.empty(tables.height * tables.width + 1, dtype=np.uint8)
        self._padded[-1] = labels.ignore_value

    @property
    def geometry(self) -> GridGeometry:
        """Grid geometry of the output."""
        return self.tables.geometry

    def _contacts(self, vertical: np.ndarray) -> np.ndarray:
        """Ground contacts: run bottoms whose lower neighbour is inside the image.

        A run bottom is a contact when the samples below it in the neighbouring columns are not
        vertical either (and inside the image): a column that grazes an object's silhouette
        samples it and the ground alternately (pixel quantisation) and would otherwise put false
        contacts behind it; at the image border the object may be grazed out of view. The
        lowest bottom of a column is a contact anyway when its run is at least two samples tall
        (the true bottom of a grazing column, or of an object whose bottom contour is steep in
        the image, such as a wall receding from the camera).
        """
        below_inside = self.tables.below_inside
        open_below = np.ones_like(vertical)
        open_below[:-1] = ~vertical[1:]
        bottoms = vertical & open_below & below_inside
        # A neighbour whose sample below is outside the image cannot confirm a contact (an
        # object grazed at the image border), nor can a missing neighbour (first/last column).
        seen_open = open_below & below_inside
        clear = open_below.copy()
        clear[:, 1:] &= seen_open[:, :-1]
        clear[:, :-1] &= seen_open[:, 1:]
        clear[:, 0] = clear[:, -1] = False
        contact = bottoms & clear
        rows = bottoms.shape[0]
        lowest = rows - 1 - np.argmax(bottoms[::-1], axis=0)
        cols = np.flatnonzero(bottoms[lowest, np.arange(bottoms.shape[1])])
        rows_at = lowest[cols]
        last = bottoms.shape[1] - 1
        keep = vertical[np.maximum(rows_at - 1, 0), cols] & (rows_at > 0) & (cols > 0) & (
            cols < last)
        up = np.maximum(rows_at[:, None] - np.arange(_SIDE_ROWS + 1), 0)
        for side in (np.maximum(cols - 1, 0), np.minimum(cols + 1, last)):
            keep &= vertical[up, side[:, None]].any(axis=1)
        contact[rows_at[keep], cols[keep]] = True
        return contact

    def project(self, labels: np.ndarray) -> FrameGrid:
        """Project one (H, W) uint8 label image; its size must match the camera."""
        t = self.tables
        if labels.shape != (t.height, t.width):
            raise ValueError(f"labels are {labels.shape[1]}x{labels.shape[0]}, the camera model "
                             f"is {t.width}x{t.height}")
        self._padded[:-1] = labels.ravel()
        code = np.take(self._code_lut, np.take(self._padded, t.sample_pixel)).reshape(t.shape)
        vertical = code >= _VERTICAL_BIT
        level = code & np.uint8(_VERTICAL_BIT - 1)
        contact = self._contacts(vertical)
        contact_samples = np.flatnonzero(contact)
        # A sample reads the label of its nearest pixel, half a pixel off its own ray at most:
        # next to an object a "ground" sample's ray may be hidden. Occlusion is therefore
        # widened by one sample sideways and upwards (never downwards: the ground in front).
        occluded = vertical.copy()
        occluded[:, 1:] |= vertical[:, :-1]
        occluded[:, :-1] |= vertical[:, 1:]
        occluded[:-1] |= vertical[1:]
        if self.column_occlusion:
            cols = t.shape[1]
            nearest = np.full(cols, np.inf, dtype=np.float32)
            rows_of, cols_of = np.divmod(contact_samples, cols)
            np.minimum.at(nearest, cols_of, t.contact_dist[rows_of, 0])
            nearest[1:] = np.minimum(nearest[1:], nearest[:-1].copy())
            nearest[:-1] = np.minimum(nearest[:-1], nearest[1:].copy())
            occluded |= t.row_dist > nearest
        seen = np.where(occluded, np.uint8(OCCLUDED), level).ravel()
        keys = t.sample_key + np.take(seen, t.sample_index)
        if contact_samples.size:
            ckeys = t.contact_key[contact_samples]
            ok = ckeys >= 0
            keys = np.concatenate([keys, ckeys[ok] + level.ravel()[contact_samples[ok]]])
        counts = np.bincount(keys, minlength=t.geometry.num_cells * KEYS_PER_CELL)
        counts = counts.reshape(-1, KEYS_PER_CELL)
        cell_level = np.zeros(len(counts), dtype=np.uint8)
        for level_value in range(1, NUM_LEVELS):  # ascending: the worst supported level wins
            cell_level[counts[:, level_value] >= self.min_support] = level_value
        hidden = (counts[:, OCCLUDED] > 0) & (cell_level <= _LAST_GROUND_LEVEL)
        cell_level[hidden] = 0
        # Fill cells have no sample of their own; an object's contact may still land in them
        # (far cells): the worse of the contact and of the sample over the centre wins.
        fill = np.take(seen, t.fill_sample)
        cell_level[t.fill_cell] = np.maximum(cell_level[t.fill_cell],
                                             np.where(fill == OCCLUDED, np.uint8(0), fill))
        shape = (t.geometry.ny, t.geometry.nx)
        return FrameGrid(cell_level.reshape(shape),
                         np.take(self._value_lut, cell_level).reshape(shape))
