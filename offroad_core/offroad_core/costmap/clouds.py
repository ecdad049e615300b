"""The published grid as points for Nav2's obstacle/voxel layers (no ROS import).

* Marking points: the centre of every lethal cell (value >= ``lethal``, i.e. BLOCKED/HAZARD).
* Clearing points: known non-lethal cells (FREE/CAUTION). Nav2 ray-traces from the sensor
  origin (``sensor_frame: base_link``) to each point and clears the cells on the way, so one
  point per bearing, the farthest, clears the same cells as one point per cell: bearings are
  binned finely enough that neighbouring rays are at most half a cell apart at the farthest
  point (docs/nav2.md).
"""

from __future__ import annotations

import math

import numpy as np

from offroad_core.costmap.grid import GridGeometry


def marking_points(values: np.ndarray, geometry: GridGeometry, lethal: int) -> np.ndarray:
    """(N, 2) x, y of the centres of cells with ``values >= lethal``."""
    xs, ys = geometry.cell_centres()
    mask = values >= lethal
    return np.stack([xs[mask], ys[mask]], axis=1)


def clearing_points(values: np.ndarray, geometry: GridGeometry, lethal: int,
                    origin: tuple[float, float]) -> np.ndarray:
    """(M, 2) x, y: per bearing from ``origin``, the farthest cell with 0 <= value < lethal."""
    xs, ys = geometry.cell_centres()
    mask = (values >= 0) & (values < lethal)
    dx, dy = xs[mask] - origin[0], ys[mask] - origin[1]
    if dx.size == 0:
        return np.zeros((0, 2))
    distance = np.hypot(dx, dy)
    step = 0.5 * geometry.resolution / max(float(distance.max()), geometry.resolution)
    bins = np.floor((np.arctan2(dy, dx) + math.pi) / step).astype(np.int64)
    order = np.lexsort((-distance, bins))          # by bearing, the farthest first
    first = np.ones(order.size, dtype=bool)
    first[1:] = bins[order[1:]] != bins[order[:-1]]
    keep = order[first]
    return np.stack([dx[keep] + origin[0], dy[keep] + origin[1]], axis=1)
