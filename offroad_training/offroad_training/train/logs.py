"""The run's metric logs: ``train_log.csv`` (one row per step, with each parameter group's
learning rate), ``eval_log.csv`` (one row per evaluation) and TensorBoard when installed.

Rows are flushed at once (a SIGKILL loses nothing already written); on resume the rows a killed
run wrote after its last checkpoint are dropped, so the logs equal an uninterrupted run's.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offroad_core.atomic import atomic_write_text

TRAIN_LOG_FIELDS = ("step", "epoch", "loss", "lr", "lr_backbone", "seconds")
"""``lr``: the head group's learning rate (= the configured ``lr`` x schedule);
``lr_backbone``: the backbone group's (x ``backbone_lr_factor``)."""
EVAL_LOG_FIELDS = ("step", "epoch", "miou", "pixel_accuracy", "best_miou")


def rewrite_log(path: Path, fields: tuple[str, ...], keep: Callable[[dict], bool]) -> None:
    """Keep only the rows ``keep`` accepts (drop rows a killed run wrote after its checkpoint)."""
    rows: list[dict] = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if keep(r)]
    text = ",".join(fields) + "\n" + "".join(
        ",".join(str(r.get(k) or "") for k in fields) + "\n" for r in rows)
    atomic_write_text(path, text)


class CsvLog:
    """Append-only CSV log, flushed every row (survives SIGKILL up to the last row)."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        new = not path.exists()
        self.file = open(path, "a", newline="")  # closed by close()
        self.writer = csv.DictWriter(self.file, fieldnames=fields)
        if new:
            self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and flush it."""
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        """Close the file."""
        self.file.close()


class RunLogs:
    """Both CSV logs and the optional TensorBoard writer of one run (rank 0 only)."""

    def __init__(self, out: Path, step: int, tensorboard: bool) -> None:
        for name, fields in (("train_log.csv", TRAIN_LOG_FIELDS),
                             ("eval_log.csv", EVAL_LOG_FIELDS)):
            rewrite_log(out / name, fields, lambda r: int(r["step"]) <= step)
        self.train = CsvLog(out / "train_log.csv", TRAIN_LOG_FIELDS)
        self.eval = CsvLog(out / "eval_log.csv", EVAL_LOG_FIELDS)
        self.tb = _tensorboard(out) if tensorboard else None

    def step(self, row: dict[str, Any], lrs: dict[str, float]) -> None:
        """Log one optimizer step (loss and every group's learning rate)."""
        self.train.write(row)
        if self.tb:
            self.tb.add_scalar("train/loss", float(row["loss"]), row["step"])
            for name, lr in lrs.items():
                self.tb.add_scalar(f"lr/{name}", lr, row["step"])

    def evaluation(self, row: dict[str, Any]) -> None:
        """Log one evaluation."""
        self.eval.write(row)
        if self.tb:
            self.tb.add_scalar("val/miou", float(row["miou"]), row["step"])

    def close(self) -> None:
        """Close every writer."""
        self.train.close()
        self.eval.close()
        if self.tb:
            self.tb.close()


def _tensorboard(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))
