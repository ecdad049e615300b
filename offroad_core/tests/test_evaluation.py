import json
import math

import numpy as np
import pytest

from offroad_core.evaluation import ConfusionMatrix, EvalResult, EvaluationError, evaluate
from offroad_core.ontology import CLASS_NAMES, IGNORE_INDEX


class _ListDataset:
    """In-memory dataset with the UnifiedDataset interface used by evaluate()."""

    def __init__(self, pairs):
        self.pairs = pairs
        self.ids = [f"seq/{i}" for i in range(len(pairs))]

    def load(self, item_id):
        return self.pairs[self.ids.index(item_id)]


def test_confusion_matrix_counts_by_hand_and_skips_ignore():
    cm = ConfusionMatrix(3)
    target = np.array([[0, 0, 1], [1, 2, IGNORE_INDEX]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 1, 2]], np.uint8)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
    r = cm.result()
    # IoU: class0 1/(1+1)=0.5, class1 2/(3+3-2)=0.5, class2 0/(1+0-0)=0
    np.testing.assert_allclose(r.iou, [0.5, 0.5, 0.0])
    assert r.miou == pytest.approx(1 / 3) and r.pixel_accuracy == pytest.approx(3 / 5)


def test_absent_class_is_nan_and_excluded_from_miou():
    cm = ConfusionMatrix(7)
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 1]))
    r = cm.result()
    assert r.iou[0] == 1.0 and all(math.isnan(v) for v in r.iou[2:])
    assert r.miou == 1.0
    d = r.to_dict()
    assert d["iou"]["sky"] is None and d["miou"] == 1.0
    json.dumps(d)  # JSON-safe


def test_bad_inputs_raise_clear_errors():
    cm = ConfusionMatrix(7)
    with pytest.raises(EvaluationError, match="shape"):
        cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(EvaluationError, match="label value 9"):
        cm.update(np.zeros(2, np.uint8), np.array([0, 9], np.uint8))
    with pytest.raises(EvaluationError, match="predicted class 7"):
        cm.update(np.array([7, 0], np.uint8), np.array([0, 0], np.uint8))
    with pytest.raises(EvaluationError, match="integers"):
        cm.update(np.zeros(2, np.float32), np.zeros(2, np.uint8))


def test_evaluate_resizes_to_model_size_and_scores_an_oracle_perfectly():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(3):
        labels = np.repeat(np.repeat(rng.integers(0, 7, (4, 5), dtype=np.uint8), 24, 0), 32, 1)
        labels[:4] = IGNORE_INDEX
        rgb = (labels[..., None] * 30).astype(np.uint8).repeat(3, axis=2)
        pairs.append((rgb, labels))  # 96 x 160 source, model 48 x 80
    ds = _ListDataset(pairs)
    seen = []

    def oracle(rgb):
        seen.append(rgb.shape)
        return (rgb[..., 0] // 30).astype(np.uint8)

    r = evaluate(oracle, ds, height=48, width=80)
    assert seen == [(48, 80, 3)] * 3 and r.images == 3
    assert r.miou == pytest.approx(1.0) and r.pixel_accuracy == pytest.approx(1.0)
    assert r.pixels < 3 * 48 * 80  # ignore rows not scored
    shifted = evaluate(lambda rgb: (rgb[..., 0] // 30 + 1).astype(np.uint8) % 7, ds,
                       height=48, width=80, limit=2)
    assert shifted.images == 2 and shifted.pixel_accuracy == 0.0 and shifted.miou == 0.0


def test_evaluate_rejects_wrong_prediction_shape_and_empty_split():
    ds = _ListDataset([(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))])
    with pytest.raises(EvaluationError, match="expected"):
        evaluate(lambda rgb: np.zeros((4, 4), np.uint8), ds, height=8, width=8)
    with pytest.raises(EvaluationError, match="no images"):
        evaluate(lambda rgb: rgb[..., 0], _ListDataset([]), height=8, width=8)


def test_table_and_json_roundtrip(tmp_path):
    cm = np.diag([10, 20, 0, 5, 0, 0, 7]).astype(np.int64)
    cm[1, 0] = 10
    r = EvalResult(confusion=cm, images=2)
    text = r.table()
    assert "smooth_ground" in text and "mIoU" in text and "n/a" in text
    path = r.save_json(tmp_path / "eval.json", checkpoint="x.pth")
    data = json.loads(path.read_text())
    assert data["class_names"] == list(CLASS_NAMES)
    assert data["iou"]["rough_ground"] == pytest.approx(20 / 30)
    assert data["provenance"]["checkpoint"] == "x.pth" and data["confusion"] == cm.tolist()
