"""Grid geometry of the published costmap (robot-centric, ``base_link`` or ``odom``).

Convention of ``nav_msgs/OccupancyGrid``: ``data`` is row-major, row index grows with y, column
index grows with x, and ``origin`` is the position of the outer corner of cell (row 0, col 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GridGeometry:
    """A regular grid: ``nx`` columns along x, ``ny`` rows along y, square cells."""

    resolution: float
    nx: int
    ny: int
    origin_x: float
    origin_y: float

    def __post_init__(self) -> None:
        if not self.resolution > 0:
            raise ValueError(f"grid resolution must be > 0, got {self.resolution}")
        if self.nx <= 0 or self.ny <= 0:
            raise ValueError(f"grid size {self.nx}x{self.ny} cells is not positive")

    @classmethod
    def from_size(cls, size_x: float, size_y: float, resolution: float, origin_x: float,
                  origin_y: float) -> GridGeometry:
        """Build from a size in metres (rounded to whole cells)."""
        if not resolution > 0:
            raise ValueError(f"grid resolution must be > 0, got {resolution}")
        nx, ny = round(size_x / resolution), round(size_y / resolution)
        return cls(float(resolution), int(nx), int(ny), float(origin_x), float(origin_y))

    @classmethod
    def from_info(cls, info: Any) -> GridGeometry:
        """The geometry of an ``OccupancyGrid.info`` (``nav_msgs/MapMetaData``, rclpy or rosbags
        message); the origin's orientation is taken as identity, as every grid here has it."""
        return cls(float(info.resolution), int(info.width), int(info.height),
                   float(info.origin.position.x), float(info.origin.position.y))

    @property
    def num_cells(self) -> int:
        """Number of cells."""
        return self.nx * self.ny

    def cell_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat cell index (row * nx + col) of points (x, y); -1 outside the grid or NaN."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            col = np.floor((x - self.origin_x) / self.resolution)
            row = np.floor((y - self.origin_y) / self.resolution)
            inside = (col >= 0) & (col < self.nx) & (row >= 0) & (row < self.ny)
        index = np.full(x.shape, -1, dtype=np.int64)
        index[inside] = row[inside].astype(np.int64) * self.nx + col[inside].astype(np.int64)
        return index

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(ny, nx) arrays of the x and y coordinates of every cell centre."""
        xs = self.origin_x + (np.arange(self.nx) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(self.ny) + 0.5) * self.resolution
        return np.meshgrid(xs, ys)

    def translated(self, dx: float, dy: float) -> GridGeometry:
        """The same grid with its origin moved by (dx, dy)."""
        return GridGeometry(self.resolution, self.nx, self.ny, self.origin_x + dx,
                            self.origin_y + dy)

    def snapped(self) -> GridGeometry:
        """The same grid with its origin snapped to a multiple of the resolution."""
        r = self.resolution
        return GridGeometry(r, self.nx, self.ny, math.floor(self.origin_x / r + 0.5) * r,
                            math.floor(self.origin_y / r + 0.5) * r)


def grid_picture(values: np.ndarray) -> np.ndarray:
    """rgb8 picture (uint8 (nx, ny, 3)) of a grid, forward (+x) up and left (+y) left:
    unknown grey, 0 green, 50 yellow, 100 red."""
    v = values.astype(np.float32)
    rgb = np.empty((*values.shape, 3), dtype=np.uint8)
    a = np.clip(v / 100.0, 0.0, 1.0)
    rgb[..., 0] = (255 * np.minimum(1.0, 2 * a)).astype(np.uint8)
    rgb[..., 1] = (255 * np.minimum(1.0, 2 * (1 - a))).astype(np.uint8)
    rgb[..., 2] = 0
    rgb[values < 0] = (90, 90, 90)
    return np.ascontiguousarray(rgb.transpose(1, 0, 2)[::-1, ::-1])
