"""Scores against a bag's ground truth, shared by ``offroad evaluate-bag`` and the demo's live
stage (one implementation): label mIoU per frame, costmap agreement per grid, percentiles.

Ground truth (the synthetic bag layout, ``offroad_replay/README.md``): ``/ground_truth/labels``
(mono8 class ids) and ``/ground_truth/class_map`` (an OccupancyGrid in ``base_link`` whose data
are class ids, -1 unknown). Class ids are the model's (``SegmentationInfo.class_ids``); the
label table that turns them into severity levels is the costmap's own
(:class:`offroad_core.costmap.categories.LabelTable`).

Our level of a cell is read back from its grid value, which is all a published grid carries:
a value shared by two categories (BLOCKED = HAZARD = 100 by default) counts as the ground
truth's level when the values agree, else as the more severe one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from offroad_core.costmap.categories import NUM_LEVELS, LabelTable
from offroad_core.costmap.grid import GridGeometry
from offroad_core.evaluation import ConfusionMatrix, EvalResult
from offroad_core.imaging import resize_labels

LEVEL_NAMES = ("none", "FREE", "CAUTION", "BLOCKED", "HAZARD")
BLOCKED_LEVEL = 3
FREE_LEVEL = 1


def percentiles(values: list[float], digits: int = 3) -> dict[str, float | None]:
    """Mean, median, 90th percentile, maximum and count of ``values`` (None when empty)."""
    if not values:
        return {"mean": None, "p50": None, "p90": None, "max": None, "n": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(a.mean()), digits), "p50": round(float(np.median(a)), digits),
            "p90": round(float(np.percentile(a, 90)), digits),
            "max": round(float(a.max()), digits), "n": len(values)}


def grid_values(grid: Any) -> tuple[np.ndarray, GridGeometry]:
    """``(values, geometry)`` of an OccupancyGrid message: int16 (ny, nx), -1 unknown."""
    geometry = GridGeometry.from_info(grid.info)
    return np.asarray(grid.data, dtype=np.int16).reshape(geometry.ny, geometry.nx), geometry


def levels_of_values(values: np.ndarray, level_lut: np.ndarray) -> np.ndarray:
    """Severity level (0..4) of grid values through ``level_lut`` (level -> value); values
    shared by several levels map to the most severe, unknown (-1) and others to 0."""
    table = np.zeros(102, dtype=np.uint8)  # index value + 1
    for level in range(1, NUM_LEVELS):
        table[int(level_lut[level]) + 1] = level
    v = np.asarray(values, dtype=np.int16)
    return np.where((v >= -1) & (v <= 100), table[np.clip(v + 1, 0, 101)], 0).astype(np.uint8)


def truth_levels(class_map: Any, geometry: GridGeometry, table: LabelTable) -> np.ndarray:
    """The ground-truth class map resampled onto the cells of ``geometry`` (nearest cell
    centre), as severity levels (uint8 (ny, nx); 0 = unknown or outside the class map)."""
    classes, truth = grid_values(class_map)
    xs, ys = geometry.cell_centres()
    cell = truth.cell_index(xs, ys)
    gt_class = np.full(cell.shape, -1, dtype=np.int16)
    gt_class[cell >= 0] = classes.ravel()[cell[cell >= 0]]
    levels = np.zeros(cell.shape, dtype=np.uint8)
    known = (gt_class >= 0) & (gt_class < 256)
    levels[known] = table.levels[gt_class[known]]
    return levels


class GridScorer:
    """Costmap agreement of our grids with ground-truth class maps, summed over frames."""

    def __init__(self, table: LabelTable, level_lut: np.ndarray) -> None:
        """``table`` maps class ids to severity levels, ``level_lut`` levels to grid values."""
        self.table = table
        self.level_lut = np.asarray(level_lut)
        self.agree = 0
        self.compared = 0
        self.gt_known = 0
        self.unsafe = 0
        self.level_confusion = np.zeros((NUM_LEVELS, NUM_LEVELS), dtype=np.int64)  # gt rows

    def score(self, ours: np.ndarray, geometry: GridGeometry, class_map: Any) -> float | None:
        """Add one grid (values (ny, nx) on ``geometry``); return its agreement, the share of
        cells known in both whose value equals the truth's (None when none is comparable)."""
        ours = np.asarray(ours, dtype=np.int16)
        gt_level = truth_levels(class_map, geometry, self.table)
        gt_value = self.level_lut[gt_level].astype(np.int16)
        both = (gt_level > 0) & (ours >= 0)
        same = both & (ours == gt_value)
        levels = np.where(same, gt_level, levels_of_values(ours, self.level_lut))
        self.agree += int(same.sum())
        self.compared += int(both.sum())
        self.gt_known += int((gt_level > 0).sum())
        self.unsafe += int((both & (gt_level >= BLOCKED_LEVEL) & (levels == FREE_LEVEL)).sum())
        np.add.at(self.level_confusion, (gt_level[both], levels[both]), 1)
        return int(same.sum()) / int(both.sum()) if both.any() else None

    def truth_values(self, class_map: Any, geometry: GridGeometry) -> np.ndarray:
        """The ground truth on ``geometry`` as grid values (int8, -1 unknown), for pictures."""
        return self.level_lut[truth_levels(class_map, geometry, self.table)].astype(np.int8)

    def summary(self) -> dict[str, Any]:
        """Totals over every scored grid (unsafe: truth BLOCKED or HAZARD, ours FREE)."""
        return {
            "agreement": self.agree / self.compared if self.compared else None,
            "compared_cells": self.compared,
            "coverage": self.compared / self.gt_known if self.gt_known else None,
            "unsafe_cells": self.unsafe,
            "level_names": list(LEVEL_NAMES),
            "level_confusion_gt_rows": self.level_confusion.tolist(),
        }


class LabelScorer:
    """Label images against ground truth with the evaluator's :class:`ConfusionMatrix`, at the
    prediction's resolution (ground truth resized with ``resize_labels``)."""

    def __init__(self, class_names: tuple[str, ...], ignore_index: int) -> None:
        """``class_names`` in class id order; ``ignore_index`` is never scored."""
        self.class_names = tuple(class_names)
        self.ignore_index = int(ignore_index)
        self.confusion = ConfusionMatrix(len(self.class_names), self.ignore_index)
        self.frames = 0
        self.pixels = 0
        self.gated = 0

    def score(self, pred: np.ndarray, truth: np.ndarray,
              gated: np.ndarray | None = None) -> float | None:
        """Add one frame; return its pixel accuracy (None when no pixel is scored).

        ``gated`` marks pixels the node published as uncertain: they are not scored and count
        against :attr:`coverage`.
        """
        target = resize_labels(np.ascontiguousarray(truth), pred.shape[1], pred.shape[0])
        if gated is not None:
            target = np.where(gated, np.uint8(self.ignore_index), target)
            pred = np.where(gated, np.uint8(0), pred)
            self.gated += int(gated.sum())
        frame = ConfusionMatrix(len(self.class_names), self.ignore_index)
        frame.update(pred, target)
        self.confusion.merge(frame)
        self.frames += 1
        self.pixels += int(pred.size)
        scored = int(frame.matrix.sum())
        return round(float(np.trace(frame.matrix)) / scored, 5) if scored else None

    @property
    def coverage(self) -> float | None:
        """Share of the scored frames' pixels that were not gated (None before any frame)."""
        return 1.0 - self.gated / self.pixels if self.pixels else None

    def result(self) -> EvalResult | None:
        """mIoU, per-class IoU and confusion of every frame so far (None if nothing scored)."""
        if not self.frames or not self.confusion.matrix.sum():
            return None
        return self.confusion.result(self.class_names, images=self.frames)
