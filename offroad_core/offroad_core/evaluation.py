"""The evaluator: per-class IoU, mIoU, pixel accuracy and the confusion matrix.

One function scores every stage of the chain the same way: the PyTorch checkpoint during
training and in ``offroad eval``, the float ONNX, the QDQ model, the HTP context binary and the
bag evaluation. Each stage only supplies a ``predict(rgb) -> labels`` callable.

Protocol (decided): every image is resized to the model size with
:func:`offroad_core.imaging.resize_to_model` (the node's resize) and its labels with
:func:`offroad_core.imaging.resize_labels` (nearest), so scores are measured at the model's
resolution on exactly the pixels the node would see. Pixels labelled ``IGNORE_INDEX`` (255) are
not scored. A class absent from both prediction and ground truth over the whole set has IoU NaN
and does not enter the mIoU (the mean over the classes with a defined IoU).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from offroad_core.ontology import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES

DEFAULT_HEIGHT = 544
DEFAULT_WIDTH = 640


class EvaluationError(ValueError):
    """A prediction or label does not fit the evaluation (shape, dtype, class id)."""


class LabelledDataset(Protocol):
    """What :func:`evaluate` needs from a dataset (``data.unified.UnifiedDataset`` has it)."""

    ids: list[str]

    def load(self, item_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(rgb uint8 (H, W, 3), labels uint8 (H, W))``."""
        ...


class ConfusionMatrix:
    """Accumulates a (C, C) int64 confusion matrix: rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one prediction/target pair of equal shape (any integer dtype).

        Target pixels equal to ``ignore_index`` are skipped. Any other target value outside
        ``[0, C)`` and any prediction outside ``[0, C)`` on a scored pixel raise
        :class:`EvaluationError`.
        """
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise EvaluationError(f"prediction shape {pred.shape} != label shape {target.shape}")
        if not (np.issubdtype(pred.dtype, np.integer) and np.issubdtype(target.dtype, np.integer)):
            raise EvaluationError(f"labels must be integers, got {pred.dtype} / {target.dtype}")
        t = target.reshape(-1).astype(np.int64)
        p = pred.reshape(-1).astype(np.int64)
        keep = t != self.ignore_index
        t, p = t[keep], p[keep]
        c = self.num_classes
        if t.size and (t.min() < 0 or t.max() >= c):
            raise EvaluationError(f"label value {int(t.max())} outside 0..{c - 1} and not the "
                                  f"ignore index {self.ignore_index}")
        if p.size and (p.min() < 0 or p.max() >= c):
            raise EvaluationError(f"predicted class {int(p.max())} outside 0..{c - 1}")
        self.matrix += np.bincount(t * c + p, minlength=c * c).reshape(c, c)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another accumulator's counts (same class count)."""
        if other.matrix.shape != self.matrix.shape:
            raise EvaluationError("cannot merge confusion matrices of different class counts")
        self.matrix += other.matrix

    def result(self, class_names: Iterable[str] | None = None, images: int = 0) -> EvalResult:
        """Return the metrics of the counts so far."""
        names = tuple(class_names) if class_names is not None else _default_names(
            self.num_classes)
        return EvalResult(confusion=self.matrix.copy(), class_names=names, images=images)


def _default_names(num_classes: int) -> tuple[str, ...]:
    if num_classes == NUM_CLASSES:
        return CLASS_NAMES
    return tuple(f"class_{i}" for i in range(num_classes))


@dataclass
class EvalResult:
    """Metrics derived from a confusion matrix (rows = ground truth, columns = prediction)."""

    confusion: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    images: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def iou(self) -> np.ndarray:
        """Per-class IoU (C,) float; NaN where the class is absent from prediction and truth."""
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    @property
    def miou(self) -> float:
        """Mean IoU over the classes whose IoU is defined (NaN if none is)."""
        iou = self.iou
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    @property
    def pixel_accuracy(self) -> float:
        """Fraction of scored pixels predicted correctly (NaN if no pixel was scored)."""
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else float("nan")

    @property
    def pixels(self) -> int:
        """Number of scored pixels."""
        return int(self.confusion.sum())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data (NaN becomes ``None``)."""
        def clean(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 6)

        return {
            "miou": clean(self.miou),
            "pixel_accuracy": clean(self.pixel_accuracy),
            "iou": {n: clean(v) for n, v in zip(self.class_names, self.iou, strict=True)},
            "class_names": list(self.class_names),
            "confusion": self.confusion.tolist(),
            "images": self.images,
            "pixels": self.pixels,
            **self.extra,
        }

    def table(self) -> str:
        """A printable table: per-class IoU, mIoU, pixel accuracy and the confusion matrix."""
        width = max(len(n) for n in self.class_names)
        lines = [f"{'class':<{width}}  {'IoU':>6}  {'pixels (gt)':>12}"]
        gt = self.confusion.sum(1)
        for name, v, n in zip(self.class_names, self.iou, gt, strict=True):
            iou = "   n/a" if not np.isfinite(v) else f"{v:6.3f}"
            lines.append(f"{name:<{width}}  {iou}  {int(n):>12}")
        lines.append(f"{'mIoU':<{width}}  {self.miou:6.3f}")
        lines.append(f"{'pixel acc.':<{width}}  {self.pixel_accuracy:6.3f}")
        lines.append(f"images: {self.images}, scored pixels: {self.pixels}")
        lines.append("")
        lines.append("confusion (rows = ground truth, columns = prediction, % of row):")
        short = [n[:6] for n in self.class_names]
        lines.append(" " * (width + 2) + " ".join(f"{s:>6}" for s in short))
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = 100.0 * self.confusion / np.maximum(gt[:, None], 1)
        for name, row in zip(self.class_names, pct, strict=True):
            lines.append(f"{name:<{width}}  " + " ".join(f"{v:6.1f}" for v in row))
        return "\n".join(lines)

    def save_json(self, path: str | Path, **provenance_extra: Any) -> Path:
        """Write ``to_dict()`` plus provenance to ``path`` atomically."""
        from offroad_core.atomic import atomic_write_text
        from offroad_core.provenance import provenance

        data = {**self.to_dict(), "provenance": provenance(**provenance_extra)}
        return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def evaluate(predict: Callable[[np.ndarray], np.ndarray], dataset: LabelledDataset, *,
             limit: int | None = None, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH,
             num_classes: int = NUM_CLASSES, class_names: Iterable[str] | None = None,
             progress: bool = False) -> EvalResult:
    """Score ``predict`` on ``dataset`` (the first ``limit`` ids, all if ``None``).

    ``predict(rgb)`` receives the image resized to ``height`` x ``width`` (uint8, (H, W, 3))
    and must return labels (H, W) of an integer dtype; labels are resized to the same size with
    nearest sampling before scoring.
    """
    from offroad_core.imaging import resize_labels, resize_to_model

    ids = list(dataset.ids)[:limit] if limit is not None else list(dataset.ids)
    if not ids:
        raise EvaluationError("the dataset split has no images to evaluate")
    cm = ConfusionMatrix(num_classes)
    iterator: Iterable[str] = ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(ids, desc="eval", unit="img")
    for item in iterator:
        rgb, labels = dataset.load(item)
        pred = np.asarray(predict(resize_to_model(rgb, width, height)))
        if pred.shape != (height, width):
            raise EvaluationError(f"predict returned shape {pred.shape} for {item!r}; expected "
                                  f"({height}, {width})")
        cm.update(pred, resize_labels(labels, width, height))
    return cm.result(class_names, images=len(ids))
