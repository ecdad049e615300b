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
  a step, a rock, a wall, a bank. Points more than ``clearance_height`` above their local
  ground are ignored (branches, overhangs the robot passes under).
* **Geometry alone** makes a point BLOCKED whatever its class: a rigid point with
  ``h > max_step``, a compliant point with ``h > compliant_max_height`` (vegetation by height:
  grass is driven through, a hedge is not). A terrain cell whose rigid ground rises by more
  than ``max_slope_deg`` both towards and away from its neighbours along x or y (forward and
  backward differences, the smaller one counts: a step is not a slope, the step rule sees it;
  where only one side is observed, that one) blocks the observed output cells in it.
* **Class evidence as today**: a labelled point gives its class's severity level (FREE,
  CAUTION, BLOCKED, HAZARD); the worse of class and geometry wins per point.
* **Geometry only**: an unlabelled point (outside the camera's view, hidden from it, or on a
  pixel without a class) gives ``geometry_only_level`` when its geometry is within the limits
  (default CAUTION: flat, low ground seen by the LiDAR alone might be water or mud), BLOCKED
  when it is not.
* Per output cell the worst level seen by at least ``min_support`` points wins; a cell without
  points is unknown (level 0). Nothing is FREE without a point of this frame in the cell.

Points outside the grid, and invalid ones (NaN), go to a "dump" cell past the last one, so no
array is ever compressed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offroad_core.costmap.categories import NUM_LEVELS, CategoryValues, LabelTable
from offroad_core.costmap.grid import GridGeometry

BLOCKED_LEVEL = 3
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
    """Points of one source: height, output cell, terrain cell (dumps past the ends), label
    code; ``level`` is filled in by :meth:`TerrainFuser.fuse` (0 = not used)."""

    z: np.ndarray
    cell: np.ndarray
    tcell: np.ndarray
    code: np.ndarray
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
        self.dump, self.tdump = geometry.num_cells, self.ntx * self.nty
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
        bad = (ci.view(np.uint32) >= g.nx) | (ri.view(np.uint32) >= g.ny)
        cell = ri * np.int32(g.nx)
        cell += ci
        if k == 1:
            tcell = cell.copy()
        else:
            tcell = (ri // k) * np.int32(self.ntx)
            tcell += ci // k
        cell[bad] = self.dump
        tcell[bad] = self.tdump
        return Batch(z, cell, tcell, np.take(self.code_lut, labels))

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
        hard, ground = self._ground(batches)
        low = np.append(_cross_min(ground).ravel(), np.float32(np.inf))
        counts = np.zeros((g.num_cells + 1) * NUM_LEVELS, np.int64)
        for b in batches:
            h = np.take(low, b.tcell)
            np.subtract(b.z, h, out=h)                    # -inf without a ground estimate
            level = np.take(self._level_lut, b.code)
            with np.errstate(invalid="ignore"):
                blocked = h > np.take(self._limit_lut, b.code)
                level[blocked] = np.maximum(level[blocked], BLOCKED_LEVEL)
                level[h > r.clearance_height] = 0
            key = b.cell * NUM_LEVELS
            key += level
            counts += np.bincount(key, minlength=len(counts))
            level[b.cell == self.dump] = 0
            b.level = level
        counts = counts.reshape(-1, NUM_LEVELS)[:-1]
        cell_level = np.zeros(g.num_cells, np.uint8)
        for value in range(1, NUM_LEVELS):          # ascending: the worst supported level wins
            cell_level[counts[:, value] >= r.min_support] = value
        steep = self._steep(hard)
        if steep.any():
            k = r.factor
            steep_cells = np.kron(steep, np.ones((k, k), bool))[: g.ny, : g.nx].ravel()
            hit = steep_cells & (cell_level > 0)
            cell_level[hit] = np.maximum(cell_level[hit], BLOCKED_LEVEL)
        levels = cell_level.reshape(g.ny, g.nx)
        return FusedGrid(levels, np.take(self._value_lut, levels))

    def _ground(self, batches: list[Batch]) -> tuple[np.ndarray, np.ndarray]:
        """(nty, ntx) ground estimates: mean rigid height (inf where none), and the same with
        the mean compliant height where a cell has no rigid point."""
        n = self.tdump + 1
        sums = np.zeros((2, n))
        counts = np.zeros((2, n))
        for b in batches:
            for i, which in enumerate((b.code < _VERTICAL_BIT, b.code >= _COMPLIANT_BIT)):
                if i == 1 and not which.any():
                    continue
                cells = np.where(which, b.tcell, np.int32(self.tdump))
                sums[i] += np.bincount(cells, weights=b.z, minlength=n)
                counts[i] += np.bincount(cells, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (sums / counts).astype(np.float32)[:, :-1]
        mean[counts[:, :-1] == 0] = np.inf
        hard = mean[0]
        ground = np.where(np.isfinite(hard), hard, mean[1])
        return hard.reshape(self.nty, self.ntx), ground.reshape(self.nty, self.ntx)

    def _steep(self, ground: np.ndarray) -> np.ndarray:
        """Terrain cells steeper than ``max_slope_deg`` (module docstring)."""
        finite = np.isfinite(ground)
        grade = np.full(ground.shape, np.nan, np.float32)
        for axis in (0, 1):
            with np.errstate(invalid="ignore"):
                diff = np.abs(np.diff(ground, axis=axis))
            both = finite[1:] & finite[:-1] if axis == 0 else finite[:, 1:] & finite[:, :-1]
            diff[~both] = np.nan
            fwd = np.full(ground.shape, np.nan, np.float32)
            bwd = np.full(ground.shape, np.nan, np.float32)
            if axis == 0:
                fwd[:-1], bwd[1:] = diff, diff
            else:
                fwd[:, :-1], bwd[:, 1:] = diff, diff
            grade = np.fmax(grade, np.fmin(fwd, bwd))
        with np.errstate(invalid="ignore"):
            return grade > self._slope


def _cross_min(a: np.ndarray) -> np.ndarray:
    """Minimum over each cell and its four neighbours."""
    out = a.copy()
    np.minimum(out[1:], a[:-1], out=out[1:])
    np.minimum(out[:-1], a[1:], out=out[:-1])
    np.minimum(out[:, 1:], a[:, :-1], out=out[:, 1:])
    np.minimum(out[:, :-1], a[:, 1:], out=out[:, :-1])
    return out
