"""Scoring shared by evaluate-bag and the demo: ground truth resampled onto our grid, grid values
read back as severity levels, agreement/unsafe counts, label mIoU with gating, percentiles."""

from types import SimpleNamespace

import numpy as np
import pytest

from offroad_core.costmap.categories import CategoryValues, LabelTable
from offroad_core.costmap.grid import GridGeometry
from offroad_core.ontology import Category
from offroad_replay.scoring import (
    GridScorer,
    LabelScorer,
    grid_values,
    levels_of_values,
    percentiles,
    truth_levels,
)

NAMES = ("ground", "bush", "rock", "pit", "sky")
TABLE = LabelTable.build(range(5), NAMES, {"ground": Category.FREE, "bush": Category.CAUTION,
                                           "rock": Category.BLOCKED, "pit": Category.HAZARD,
                                           "sky": Category.UNKNOWN})
LUT = CategoryValues().level_lut()  # -1, 0, 50, 100, 100: BLOCKED and HAZARD share 100


def _grid(data: np.ndarray, resolution: float, x0: float, y0: float) -> SimpleNamespace:
    """An OccupancyGrid-like message (attribute names as rclpy and rosbags messages)."""
    ny, nx = data.shape
    info = SimpleNamespace(resolution=resolution, width=nx, height=ny,
                           origin=SimpleNamespace(position=SimpleNamespace(x=x0, y=y0)))
    return SimpleNamespace(info=info, data=data.astype(np.int8).ravel().tolist())


def test_grid_geometry_from_info_and_values():
    values, geometry = grid_values(_grid(np.arange(6).reshape(2, 3), 0.5, -1.0, 2.0))
    assert geometry == GridGeometry(0.5, 3, 2, -1.0, 2.0)
    assert values.tolist() == [[0, 1, 2], [3, 4, 5]]  # row index along +y


def test_truth_is_resampled_onto_our_cells():
    # truth: 0.2 m cells, 2 x 2, origin (0, 0); columns: ground | rock, upper row unknown
    truth = _grid(np.array([[0, 2], [-1, -1]]), 0.2, 0.0, 0.0)
    ours = GridGeometry(0.1, 4, 4, 0.0, 0.0)  # 4 x 4 cells of 0.1 m over the same square
    levels = truth_levels(truth, ours, TABLE)
    assert levels.tolist() == [[1, 1, 3, 3], [1, 1, 3, 3], [0, 0, 0, 0], [0, 0, 0, 0]]
    outside = truth_levels(truth, ours.translated(5.0, 0.0), TABLE)
    assert not outside.any()


def test_levels_of_values_take_the_more_severe_of_shared_values():
    assert levels_of_values(np.array([-1, 0, 50, 100, 7, 120]), LUT).tolist() == [
        0, 1, 2, 4, 0, 0]


def test_grid_scorer_agreement_unsafe_and_confusion():
    truth = _grid(np.array([[0, 1, 2, 3, 4, -1]]), 1.0, 0.0, 0.0)
    geometry = GridGeometry(1.0, 6, 1, 0.0, 0.0)
    scorer = GridScorer(TABLE, LUT)
    # ours: ground FREE ok, bush FREE (wrong), rock 100 ok, pit FREE (wrong, unsafe),
    # sky (no truth) and the unknown truth cell are not compared
    ours = np.array([[0, 0, 100, 0, 0, 100]])
    assert scorer.score(ours, geometry, truth) == pytest.approx(2 / 4)
    summary = scorer.summary()
    assert (summary["compared_cells"], summary["unsafe_cells"]) == (4, 1)
    assert summary["coverage"] == pytest.approx(1.0)
    confusion = np.array(summary["level_confusion_gt_rows"])
    # a 100 that agrees with a BLOCKED truth counts as BLOCKED, not HAZARD
    assert confusion[3, 3] == 1 and confusion[3, 4] == 0
    assert confusion[1, 1] == confusion[2, 1] == confusion[4, 1] == 1
    assert confusion.sum() == 4
    unobserved = np.full((1, 6), -1)
    assert scorer.score(unobserved, geometry, truth) is None
    assert scorer.summary()["coverage"] == pytest.approx(4 / 8)
    assert scorer.truth_values(truth, geometry).tolist() == [[0, 50, 100, 100, -1, -1]]


def test_label_scorer_resizes_truth_and_skips_gated_pixels():
    scorer = LabelScorer(NAMES, 255)
    pred = np.zeros((4, 4), np.uint8)
    pred[:, 2:] = 1
    truth = np.zeros((8, 8), np.uint8)  # twice the size: resized with nearest neighbour
    truth[:, 4:6] = 1
    truth[:, 6:] = 2
    assert scorer.score(pred, truth) == pytest.approx(0.75)
    gated = np.zeros((4, 4), bool)
    gated[:, 3] = True  # the wrong column, published as uncertain
    assert scorer.score(pred, truth, gated) == pytest.approx(1.0)
    assert scorer.coverage == pytest.approx(28 / 32)
    result = scorer.result()
    assert result.images == 2 and result.iou[0] == pytest.approx(1.0)
    assert result.iou[1] == pytest.approx(8 / 12)


def test_percentiles():
    assert percentiles([]) == {"mean": None, "p50": None, "p90": None, "max": None, "n": 0}
    stats = percentiles([float(v) for v in range(1, 11)], digits=2)
    assert stats == {"mean": 5.5, "p50": 5.5, "p90": 9.1, "max": 10.0, "n": 10}
