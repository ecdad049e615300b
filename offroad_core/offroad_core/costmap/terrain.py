"""Per-cell fusion of class evidence and geometry: labelled 3D points -> grid levels.

No ROS import; vectorised numpy (a few scatters over the points, the rest on the grid). Points
come in batches (the depth image, each cloud): their ``base_link`` height, output cell and
label value (the ignore value for a point no camera pixel labels). The rules (parameters of
:class:`TerrainRules`, documented in docs/depth.md):

* **Ground estimate** on a terrain grid of ``factor`` x ``factor`` output cells: the mean height
  of the cell's rigid points (not of a vertical class such as obstacle, not compliant such as
  vegetation; unlabelled points count as rigid), else of its compliant points. A point's
  *local ground* is the lowest estimate of its terrain cell and its four neighbours, so its
  height above ground ``h`` measures how far it stands above the lowest ground next to it:
  a step, a rock, a wall, a bank (the terrain cell of such a point is blocked whole and left
  out of its neighbours' slopes). Points more than ``clearance_height`` above their local
  ground are ignored (branches, overhangs the robot passes under).
* **Geometry alone** makes a point BLOCKED whatever its class: a rigid point with
  ``h > max_step``, a compliant point with ``h > compliant_max_height`` (vegetation by height:
  grass is driven through, a hedge is not). A terrain cell whose ground is steeper than
  ``max_slope_deg`` blocks the observed output cells in it (rigid and compliant estimates
  each on their own: a vegetation top next to bare ground is neither a step nor a slope):
  the grade along each axis is the central difference of the estimates ``SLOPE_BASELINE``
  apart (one-sided where only one side is observed), the two axes combine as a gradient.
  (The smaller of the forward and backward differences, tried first to keep steps from
  widening, misses the foot of banks whose grade grows.) A step steeper than the slope limit
  over the baseline also blocks the terrain cells next to it.
* **Class evidence as today**: a labelled point gives its class's severity level (FREE,
  CAUTION, BLOCKED, HAZARD); the worse of class and geometry wins per point.
* **Geometry only**: an unlabelled point (outside the camera's view, hidden from it, or on a
  pixel without a class) gives ``geometry_only_level`` when its geometry is within the limits
  (default CAUTION: flat, low ground seen by the LiDAR alone might be water or mud), BLOCKED
  when it is not.
* Per output cell the worst level seen by at least ``min_support`` points wins; a cell without
  points is unknown (level 0). Nothing is FREE without a point of this frame in the cell.

A batch keeps only the points inside the grid (``Batch.index`` maps them back to the source's
pixels or points); invalid points (NaN) are never inside.

Speed (docs/depth.md, "Measured"): a point's level is one lookup in a table indexed by its
label code and three height bits; a cell's worst level comes from a presence scatter packed
into one byte per cell. These tables stay next to the rules they encode, hence the length of
this module (a little over 350 lines).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import cv2
import numpy as np

from offroad_core.costmap.categories import NUM_LEVELS, CategoryValues, LabelTable
from offroad_core.costmap.grid import GridGeometry

BLOCKED_LEVEL = 3
Submit = Callable[[Callable[[], list]], "Future[list]"]
_OFFSET = float(2 ** 24)
SLOPE_BASELINE = 0.4
"""Length (m) over which a slope is measured: longer than a step (a 0.15 m step over 0.4 m is
a 21 deg grade, under the default 25 deg limit), short enough for a bank's foot."""
_VERTICAL_BIT, _COMPLIANT_BIT = 8, 16


@dataclass(frozen=True)
class TerrainRules:
    """The robot's geometric limits and how evidence is combined (module docstring)."""

    factor: int = 2
    max_step: float = 0.15
    max_slope_deg: float = 25.0
    clearance_height: float = 1.5
    compliant_max_height: float = 0.6
    geometry_only_level: int = 2
    min_support: int = 1

    def __post_init__(self) -> None:
        if self.factor < 1 or self.min_support < 1:
            raise ValueError(f"terrain factor {self.factor} and min_support "
                             f"{self.min_support} must be >= 1")
        if not 0 <= self.geometry_only_level < BLOCKED_LEVEL:
            raise ValueError(f"geometry_only_level {self.geometry_only_level} must be 0..2")


@dataclass
class Batch:
    """The in-grid points of one source: height, output cell (int32), ground bin (the
    terrain cell plus the number of terrain cells times 0 rigid, 1 vertical or 2 compliant),
    label code, their index in the source and the batch's ground sums (per bin ``count x
    OFFSET + sum(z)``, see :meth:`TerrainFuser._ground`: made with the batch, so on the thread
    that makes it); ``level`` is filled in by :meth:`TerrainFuser.fuse` (0 = not used)."""

    z: np.ndarray
    cell: np.ndarray
    bin: np.ndarray
    code: np.ndarray
    index: np.ndarray
    ground: np.ndarray
    level: np.ndarray | None = None


@dataclass(frozen=True)
class FusedGrid:
    """One frame's grid: severity levels and values, (ny, nx)."""

    levels: np.ndarray
    values: np.ndarray


class TerrainFuser:
    """Labelled points -> grid (module docstring); lookup tables built once."""

    def __init__(self, geometry: GridGeometry, rules: TerrainRules, table: LabelTable,
                 compliant_values: np.ndarray, values: CategoryValues) -> None:
        """``compliant_values``: (256,) bool, label values of compliant classes."""
        self.geometry, self.rules, self.table = geometry, rules, table
        k = rules.factor
        self.ntx, self.nty = math.ceil(geometry.nx / k), math.ceil(geometry.ny / k)
        self.n_terrain = self.ntx * self.nty
        self.terrain_resolution = geometry.resolution * k
        compliant = np.asarray(compliant_values, bool) & ~table.vertical
        self.code_lut = (table.levels | table.vertical.astype(np.uint8) * _VERTICAL_BIT
                         | compliant.astype(np.uint8) * _COMPLIANT_BIT).astype(np.uint8)
        self._point_lut = _point_lut(rules)
        self._thresholds = tuple(np.float32(t) for t in (
            rules.max_step, rules.compliant_max_height, rules.clearance_height))
        self._value_lut = np.zeros(256, np.int8)          # level -> grid value
        self._value_lut[:NUM_LEVELS] = values.level_lut()
        self._slope = np.float32(math.tan(math.radians(rules.max_slope_deg))
                                 * self.terrain_resolution)
        rows, cols = np.divmod(np.arange(geometry.num_cells), geometry.nx)
        self.terrain_of_cell = (rows // k) * self.ntx + cols // k
        # (cell << 2 | class) -> ground bin (class 3 does not occur)
        self._ground_bin = (self.terrain_of_cell[:, None]
                            + self.n_terrain * np.arange(4)).astype(np.intp).ravel()

    def batch(self, colf: np.ndarray, rowf: np.ndarray, z: np.ndarray,
              labels: np.ndarray) -> Batch:
        """A batch from fractional output-grid coordinates **plus one** (col + 1, row + 1:
        truncation is then a floor for every point that can be inside), heights and labels."""
        g = self.geometry
        with np.errstate(invalid="ignore"):
            ci = colf.astype(np.int32)
            ri = rowf.astype(np.int32)
        ci -= 1
        ri -= 1
        keep = np.flatnonzero((ci.view(np.uint32) < g.nx) & (ri.view(np.uint32) < g.ny))
        cell = ri[keep]
        cell *= np.int32(g.nx)
        cell += ci[keep]
        return self.batch_cells(cell, z[keep], labels[keep], keep)

    def batch_cells(self, cell: np.ndarray, z: np.ndarray, labels: np.ndarray,
                    index: np.ndarray) -> Batch:
        """A batch from int32 flat output cells (all inside the grid), heights, label values
        (uint8) and the points' index in their source."""
        code = lut8(self.code_lut, labels)
        key = np.left_shift(cell, 2, dtype=np.int32)
        key |= np.right_shift(code, 3)                     # 0 rigid, 1 vertical, 2 compliant
        bins = np.take(self._ground_bin, key.astype(np.intp))
        weights = np.add(z, _OFFSET, dtype=np.float64)
        ground = np.bincount(bins, weights=weights, minlength=3 * self.n_terrain)
        return Batch(z, cell, bins, code, index, ground)

    def batch_xyz(self, xyz: np.ndarray, labels: np.ndarray) -> Batch:
        """A batch from (N, 3) float32 ``base_link`` points."""
        g = self.geometry
        inv = np.float32(1.0 / g.resolution)
        colf = (xyz[:, 0] - np.float32(g.origin_x)) * inv + np.float32(1.0)
        rowf = (xyz[:, 1] - np.float32(g.origin_y)) * inv + np.float32(1.0)
        return self.batch(colf, rowf, np.ascontiguousarray(xyz[:, 2]), labels)

    def fuse(self, batches: list[Batch], submit: Submit | None = None) -> FusedGrid:
        """Fuse the batches of one frame; sets every batch's ``level``. With ``submit`` (an
        executor's), the points of every batch but the first are judged on its thread while
        this one judges the first (the same grid either way)."""
        g, r = self.geometry, self.rules
        estimates, ground = self._ground(batches)       # (2, nty, ntx) rigid, compliant
        low = _cross_min(ground).ravel()
        low = np.concatenate([low, low, low])             # by ground bin
        if submit is not None and len(batches) > 1:
            rest = submit(lambda: [self._judge(b, low) for b in batches[1:]])
            parts = [self._judge(batches[0], low), *rest.result()]
        else:
            parts = [self._judge(b, low) for b in batches]
        seen, stepped = parts[0]
        for more_seen, more_stepped in parts[1:]:
            if r.min_support == 1:
                seen |= more_seen
            else:
                seen += more_seen
            stepped |= more_stepped
        present = seen if r.min_support == 1 else seen >= r.min_support
        cell_level = lut8(_WORST_LEVEL, _pack_slots(present))
        # a terrain cell holding a step, a rock or a wall is blocked whole; its raised mean is
        # no ground: the slope of its neighbours is measured without it
        n = self.n_terrain
        stepped = (stepped[:n] | stepped[n: 2 * n] | stepped[2 * n:]).reshape(self.nty, self.ntx)
        estimates[:, stepped] = np.inf
        steep = self._steep(estimates)
        steep |= stepped
        if steep.any():
            hit = np.take(steep.ravel(), self.terrain_of_cell)
            hit &= cell_level > 0
            np.copyto(cell_level, np.maximum(cell_level, np.uint8(BLOCKED_LEVEL)), where=hit)
        levels = cell_level.reshape(g.ny, g.nx)
        return FusedGrid(levels, lut8(self._value_lut.view(np.uint8), cell_level).view(
            np.int8).reshape(g.ny, g.nx))

    def _judge(self, b: Batch, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sets the level of every point of ``b`` from its height above ``low`` (by ground
        bin); returns the levels seen per cell slot (bool, or counts with ``min_support`` >
        1) and the ground bins holding a blocked point."""
        slots = self.geometry.num_cells * _LEVEL_SLOTS
        stepped = np.zeros(3 * self.n_terrain, bool)
        h = np.take(low, b.bin)
        np.subtract(b.z, h, out=h)                        # -inf without a ground estimate
        point = lut8(self._point_lut, _classify(h, b.code, self._thresholds))
        level = np.bitwise_and(point, np.uint8(7))
        blocked = np.flatnonzero(point >= _BLOCKED_FLAG)
        if len(blocked):
            stepped[np.take(b.bin, blocked)] = True
        key = np.left_shift(b.cell, 3, dtype=np.int32)
        key |= level
        key = key.astype(np.intp)
        if self.rules.min_support == 1:                 # a level is supported by any point
            seen = np.zeros(slots, bool)
            seen[key] = True
        else:
            seen = np.bincount(key, minlength=slots)
        b.level = level
        return seen, stepped

    def _ground(self, batches: list[Batch]) -> tuple[np.ndarray, np.ndarray]:
        """(2, nty, ntx) ground estimates: mean rigid and mean compliant height (inf where
        none); and (nty, ntx) the rigid one with the compliant one where a cell has no rigid
        point.

        One weighted bincount per batch (:attr:`Batch.ground`) gives both sums and counts,
        added in the batches' order: each point weighs
        ``OFFSET + z`` (OFFSET = 2^24 m), so a bin holds ``count x OFFSET + sum(z)``; while
        |sum(z)| < OFFSET / 2 (10^5 points at 80 m) the count is exact, and float64 keeps the
        sum to 1e-4 m. Bins: rigid points in [0, n), vertical ones in [n, 2n) (not used),
        compliant ones in [2n, 3n): the code's vertical and compliant bits over 8."""
        n = self.n_terrain
        total = np.zeros(3 * n)
        for b in batches:
            total += b.ground
        total = np.concatenate([total[:n], total[2 * n:]])
        count = total / _OFFSET
        count += 0.5
        np.floor(count, out=count)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total - count * _OFFSET
            mean /= count
        mean = mean.astype(np.float32)
        np.copyto(mean, np.float32(np.inf), where=count == 0)
        estimates = mean.reshape(2, self.nty, self.ntx)
        ground = estimates[0].copy()
        np.copyto(ground, estimates[1], where=ground == np.inf)
        return estimates, ground

    def _steep(self, estimates: np.ndarray) -> np.ndarray:
        """Terrain cells whose rigid or compliant ground (``estimates[0]``, ``[1]``) is
        steeper than ``max_slope_deg`` (module docstring): the grade along x and along y over
        ``SLOPE_BASELINE`` (central differences, or the one-sided one where only one side is
        observed), combined as a gradient; both estimates at once."""
        k = max(1, round(SLOPE_BASELINE / 2 / self.terrain_resolution))
        grades = []
        for axis in (1, 2):
            def cut(start: int | None, stop: int | None, axis: int = axis) -> tuple:
                return (slice(None),) * axis + (slice(start, stop),)
            with np.errstate(invalid="ignore"):
                diff = np.abs(estimates[cut(k, None)] - estimates[cut(None, -k)])
                diff /= np.float32(k)
                diff += diff - diff                       # unobserved (inf): nan
            fwd = np.full(estimates.shape, np.nan, np.float32)
            bwd = np.full(estimates.shape, np.nan, np.float32)
            fwd[cut(None, -k)], bwd[cut(k, None)] = diff, diff
            grade = np.fmax(fwd, bwd)                    # one side (or none: nan)
            fwd += bwd
            fwd /= np.float32(2)                         # both sides: central, <= grade
            np.fmin(fwd, grade, out=grade)
            np.fmax(grade, np.float32(0), out=grade)     # unobserved: 0 (grades are >= 0)
            grades.append(grade)
        steep = _longer(grades[0], grades[1], self._slope)
        return steep[0] | steep[1]


def _longer(a: np.ndarray, b: np.ndarray, limit: np.float32) -> np.ndarray:
    """``np.hypot(a, b) > limit`` (float32): decided on the float64 squares (exact to 2^-53)
    except within 1e-6 of the limit, where a few ulps matter and float32 hypot decides."""
    square = np.square(a, dtype=np.float64)
    square += np.square(b, dtype=np.float64)
    lim2 = float(limit) ** 2
    out = square > lim2
    close = np.flatnonzero(np.abs(square - lim2) <= 1e-6 * lim2)
    if len(close):
        out.flat[close] = np.hypot(a.flat[close], b.flat[close]) > limit
    return out


_CODES = 32
"""Label codes: level (bits 0-2), vertical (bit 3), compliant (bit 4)."""
_LEVEL_SLOTS = 8
_BLOCKED_FLAG = 8
_GATHER_BITS = np.uint64(0x0102040810204080)


def _pack_slots(present: np.ndarray) -> np.ndarray:
    """(cells * 8,) bool -> (cells,) uint8, one bit per slot: the top byte of the product of
    the 8 bytes (0 or 1) of a cell with a constant collects them (no carries reach it)."""
    v = np.multiply(present.view(np.uint64), _GATHER_BITS)
    return np.right_shift(v, np.uint64(56)).astype(np.uint8)


def _worst_levels() -> np.ndarray:
    """Packed slots of a cell (:func:`_pack_slots`) -> the worst present level 1..4 (0: none)."""
    table = np.zeros(256, np.uint8)
    for slots in range(256):
        present = np.array([slots >> i & 1 for i in range(_LEVEL_SLOTS)], bool)
        table[_pack_slots(present)[0]] = max([v for v in range(1, NUM_LEVELS) if present[v]],
                                             default=0)
    return table


_WORST_LEVEL = _worst_levels()


def lut8(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``table[values]`` for a (256,) uint8 table: one OpenCV pass for uint8 values."""
    if values.dtype != np.uint8 or values.ndim != 1 or len(values) == 0:
        return np.take(table, values)
    return cv2.LUT(np.ascontiguousarray(values), table).reshape(-1)


def _point_lut(rules: TerrainRules) -> np.ndarray:
    """(256,) uint8: a point's level (bits 0-2) and whether geometry blocks it (bit 3), by
    label code (bits 0-4) plus its height above ground over ``max_step`` (bit 5),
    ``compliant_max_height`` (bit 6) and ``clearance_height`` (bit 7)."""
    index = np.arange(256)
    code = index & (_CODES - 1)
    level = code & 7
    level = np.where(level == 0, rules.geometry_only_level, level)
    vertical, compliant = (code & _VERTICAL_BIT) > 0, (code & _COMPLIANT_BIT) > 0
    over_step, over_compliant = (index & 32) > 0, (index & 64) > 0
    blocked = ~vertical & np.where(compliant, over_compliant, over_step)
    level = np.where(blocked, np.maximum(level, BLOCKED_LEVEL), level)
    level = np.where((index & 128) > 0, 0, level)        # above the clearance: ignored
    return (level | blocked * _BLOCKED_FLAG).astype(np.uint8)


def _classify(h: np.ndarray, code: np.ndarray, thresholds: tuple) -> np.ndarray:
    """Index of :func:`_point_lut`: label code plus the three height bits."""
    out = code.copy()
    for bit, threshold in zip((5, 6, 7), thresholds, strict=True):
        over = np.greater(h, threshold).view(np.uint8)
        np.multiply(over, np.uint8(1 << bit), out=over)
        out |= over
    return out


def _cross_min(a: np.ndarray) -> np.ndarray:
    """Minimum over each cell and its four neighbours."""
    out = a.copy()
    np.minimum(out[1:], a[:-1], out=out[1:])
    np.minimum(out[:-1], a[1:], out=out[:-1])
    np.minimum(out[:, 1:], a[:, :-1], out=out[:, 1:])
    np.minimum(out[:, :-1], a[:, 1:], out=out[:, :-1])
    return out
