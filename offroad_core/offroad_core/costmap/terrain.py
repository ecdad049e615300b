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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offroad_core.costmap.categories import NUM_LEVELS, CategoryValues, LabelTable
from offroad_core.costmap.grid import GridGeometry

BLOCKED_LEVEL = 3
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
    """The in-grid points of one source: height, output cell, terrain cell, label code and
    their index in the source; ``level`` is filled in by :meth:`TerrainFuser.fuse` (0 = not
    used)."""

    z: np.ndarray
    cell: np.ndarray
    tcell: np.ndarray
    code: np.ndarray
    index: np.ndarray
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
        codes = np.arange(256)
        level = codes & 7
        self._level_lut = np.where(level == 0, rules.geometry_only_level, level).astype(np.uint8)
        limit = np.where(codes >= _COMPLIANT_BIT, rules.compliant_max_height, rules.max_step)
        limit[(codes & _VERTICAL_BIT) > 0] = np.inf
        self._limit_lut = limit.astype(np.float32)
        # ground bins: rigid points in [0, n), compliant in [n, 2n), vertical ones in [2n, 3n)
        n = self.n_terrain
        self._ground_lut = np.where(codes >= _COMPLIANT_BIT, n, 0).astype(np.intp)
        self._ground_lut[(codes & _VERTICAL_BIT) > 0] = 2 * n
        self._value_lut = values.level_lut()
        self._slope = math.tan(math.radians(rules.max_slope_deg)) * self.terrain_resolution

    def batch(self, colf: np.ndarray, rowf: np.ndarray, z: np.ndarray,
              labels: np.ndarray) -> Batch:
        """A batch from fractional output-grid coordinates **plus one** (col + 1, row + 1:
        truncation is then a floor for every point that can be inside), heights and labels."""
        g, k = self.geometry, self.rules.factor
        with np.errstate(invalid="ignore"):
            ci = colf.astype(np.int32)
            ri = rowf.astype(np.int32)
        ci -= 1
        ri -= 1
        keep = np.flatnonzero((ci.view(np.uint32) < g.nx) & (ri.view(np.uint32) < g.ny))
        ci = ci[keep].astype(np.intp)
        ri = ri[keep].astype(np.intp)
        cell = ri * g.nx
        cell += ci
        if k == 1:
            tcell = cell
        else:
            tcell = (ri // k) * self.ntx
            tcell += ci // k
        return Batch(z[keep], cell, tcell, np.take(self.code_lut, labels[keep]), keep)

    def batch_xyz(self, xyz: np.ndarray, labels: np.ndarray) -> Batch:
        """A batch from (N, 3) float32 ``base_link`` points."""
        g = self.geometry
        inv = np.float32(1.0 / g.resolution)
        colf = (xyz[:, 0] - np.float32(g.origin_x)) * inv + np.float32(1.0)
        rowf = (xyz[:, 1] - np.float32(g.origin_y)) * inv + np.float32(1.0)
        return self.batch(colf, rowf, np.ascontiguousarray(xyz[:, 2]), labels)

    def fuse(self, batches: list[Batch]) -> FusedGrid:
        """Fuse the batches of one frame; sets every batch's ``level``."""
        g, r = self.geometry, self.rules
        hard, soft, ground = self._ground(batches)
        low = _cross_min(ground).ravel()
        counts = np.zeros(g.num_cells * NUM_LEVELS, np.int64)
        stepped = np.zeros(self.n_terrain, bool)
        for b in batches:
            h = np.take(low, b.tcell)
            np.subtract(b.z, h, out=h)                    # -inf without a ground estimate
            level = np.take(self._level_lut, b.code)
            with np.errstate(invalid="ignore"):
                blocked = h > np.take(self._limit_lut, b.code)
                level[blocked] = np.maximum(level[blocked], BLOCKED_LEVEL)
                stepped[b.tcell[blocked]] = True
                level[h > r.clearance_height] = 0
            key = b.cell * NUM_LEVELS
            key += level
            counts += np.bincount(key, minlength=len(counts))
            b.level = level
        counts = counts.reshape(-1, NUM_LEVELS)
        cell_level = np.zeros(g.num_cells, np.uint8)
        for value in range(1, NUM_LEVELS):          # ascending: the worst supported level wins
            cell_level[counts[:, value] >= r.min_support] = value
        # a terrain cell holding a step, a rock or a wall is blocked whole; its raised mean is
        # no ground: the slope of its neighbours is measured without it
        stepped = stepped.reshape(self.nty, self.ntx)
        hard[stepped] = np.inf
        soft[stepped] = np.inf
        steep = self._steep(hard) | self._steep(soft) | stepped
        if steep.any():
            k = r.factor
            steep_cells = np.kron(steep, np.ones((k, k), bool))[: g.ny, : g.nx].ravel()
            hit = steep_cells & (cell_level > 0)
            cell_level[hit] = np.maximum(cell_level[hit], BLOCKED_LEVEL)
        levels = cell_level.reshape(g.ny, g.nx)
        return FusedGrid(levels, np.take(self._value_lut, levels))

    def _ground(self, batches: list[Batch]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(nty, ntx) ground estimates: mean rigid height, mean compliant height (inf where
        none), and the rigid one with the compliant one where a cell has no rigid point.

        One weighted bincount per batch gives both sums and counts: each point weighs
        ``OFFSET + z`` (OFFSET = 2^24 m), so a bin holds ``count x OFFSET + sum(z)``; while
        |sum(z)| < OFFSET / 2 (10^5 points at 80 m) the count is exact, and float64 keeps the
        sum to 1e-4 m."""
        n = self.n_terrain
        total = np.zeros(3 * n)
        for b in batches:
            bins = np.take(self._ground_lut, b.code)
            bins += b.tcell
            weights = np.add(b.z, _OFFSET, dtype=np.float64)
            total += np.bincount(bins, weights=weights, minlength=3 * n)
        count = np.floor(total / _OFFSET + 0.5)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = ((total - count * _OFFSET) / count).astype(np.float32)
        mean[count == 0] = np.inf
        hard, soft = mean[:n], mean[n: 2 * n]
        ground = np.where(np.isfinite(hard), hard, soft)
        shape = (self.nty, self.ntx)
        return hard.reshape(shape), soft.reshape(shape), ground.reshape(shape)

    def _steep(self, ground: np.ndarray) -> np.ndarray:
        """Terrain cells steeper than ``max_slope_deg`` (module docstring): the grade along x
        and along y over ``SLOPE_BASELINE`` (central differences, or the one-sided one where
        only one side is observed), combined as a gradient."""
        k = max(1, round(SLOPE_BASELINE / 2 / self.terrain_resolution))
        grades = []
        for axis in (0, 1):
            a = np.moveaxis(ground, axis, 0)
            with np.errstate(invalid="ignore"):
                diff = np.abs(a[k:] - a[:-k]) / k          # inf - inf = nan: unobserved
            diff[~np.isfinite(diff)] = np.nan
            fwd = np.full(a.shape, np.nan, np.float32)
            bwd = np.full(a.shape, np.nan, np.float32)
            fwd[:-k], bwd[k:] = diff, diff
            grade = np.where(np.isnan(fwd) | np.isnan(bwd), np.fmax(fwd, bwd), (fwd + bwd) / 2)
            grades.append(np.moveaxis(grade, 0, axis))
        grade = np.hypot(np.nan_to_num(grades[0]), np.nan_to_num(grades[1]))
        return grade > self._slope


def _cross_min(a: np.ndarray) -> np.ndarray:
    """Minimum over each cell and its four neighbours."""
    out = a.copy()
    np.minimum(out[1:], a[:-1], out=out[1:])
    np.minimum(out[:-1], a[1:], out=out[:-1])
    np.minimum(out[:, 1:], a[:, :-1], out=out[:, 1:])
    np.minimum(out[:, :-1], a[:, 1:], out=out[:, :-1])
    return out
