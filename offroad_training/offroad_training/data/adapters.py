"""Readers for RELLIS-3D, RUGD and GOOSE exactly as distributed.

An adapter finds the labelled image/label pairs of a dataset root and their split
(:meth:`Adapter.scan`), and decodes a label file to ontology ids (:meth:`Adapter.decode_labels`),
counting every label value that is in no mapping table (mapped to 255, never to a class).

The concrete readers, one module per dataset (layouts in their docstrings; ``--root`` may be
the directory shown or its parent): :mod:`offroad_training.data.rellis3d`,
:mod:`offroad_training.data.rugd`, :mod:`offroad_training.data.goose`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from offroad_core.exit_codes import CommandError
from offroad_core.ontology import IGNORE_INDEX
from offroad_training.data.mappings import DatasetMapping, SourceClass, get_mapping

DATASETS = ("rellis3d", "rugd", "goose")
ADAPTERS = {"rellis3d": "offroad_training.data.rellis3d:Rellis3D",
            "rugd": "offroad_training.data.rugd:Rugd",
            "goose": "offroad_training.data.goose:Goose"}
UNKNOWN = 254  # LUT sentinel for "value in no table" (never an ontology id)


class AdapterError(CommandError, ValueError):
    """A dataset root does not have the expected layout, or a label file is unreadable."""


@dataclass(frozen=True)
class SourcePair:
    """One labelled frame of a source dataset."""

    item_id: str
    split: str
    image: Path
    label: Path


@dataclass
class ScanResult:
    """What :meth:`Adapter.scan` found: pairs, problems (reported, not converted) and notes."""

    pairs: list[SourcePair]
    problems: list[dict[str, str]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def layout_problem(item: str, path: Path, reason: str) -> dict[str, str]:
    """A layout problem record for ``stats.json`` (``problems``)."""
    return {"id": item, "path": str(path), "reason": reason}


class Adapter:
    """Base class: a LUT from raw label keys to ontology ids (``UNKNOWN`` = in no table)."""

    name = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            kind = "is not a directory" if self.root.exists() else "does not exist"
            raise AdapterError(f"{self.root}: dataset root {kind}")
        self.mapping: DatasetMapping = get_mapping(self.name)
        self.unmapped_classes: list[str] = []

    def scan(self) -> ScanResult:
        """Find the labelled pairs and their splits."""
        raise NotImplementedError

    def decode_labels(self, path: Path) -> tuple[np.ndarray, dict[str, int]]:
        """Decode a label file to ontology ids; return ``(labels, {unknown value: pixels})``."""
        raise NotImplementedError

    def _id_lut(self, classes: list[SourceClass]) -> np.ndarray:
        lut = np.full(65536, UNKNOWN, dtype=np.uint8)
        for c in classes:
            lut[c.id] = self.mapping.target_id(c.target)
        return lut

    def _decode_ids(self, path: Path, lut: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise AdapterError(f"{path}: label file is corrupt or not an image")
        if raw.ndim == 3:
            if raw.shape[2] == 3 and np.array_equal(raw[..., 0], raw[..., 1]) \
                    and np.array_equal(raw[..., 0], raw[..., 2]):
                raw = raw[..., 0]  # a grey id image saved as RGB
            else:
                raise AdapterError(f"{path}: expected a single-channel label-id PNG, got "
                                   f"{raw.shape[2]} channels (a colour label image?)")
        if raw.dtype == np.uint8:
            # fast path: one cv2.LUT pass; unknown values found from the raw histogram
            final = np.where(lut[:256] == UNKNOWN, IGNORE_INDEX, lut[:256]).astype(np.uint8)
            counts = np.bincount(raw.ravel(), minlength=256)
            unknown = {str(v): int(counts[v]) for v in np.flatnonzero(counts)
                       if lut[v] == UNKNOWN}
            return cv2.LUT(raw, final), unknown
        if raw.dtype != np.uint16:
            raise AdapterError(f"{path}: label ids must be uint8/uint16, got {raw.dtype}")
        return finish_decode(lut[raw], raw, str)


def finish_decode(mapped: np.ndarray, raw_keys: np.ndarray,
                  fmt: Any) -> tuple[np.ndarray, dict[str, int]]:
    """Replace the UNKNOWN sentinel by 255 and count the raw values it came from."""
    unknown_mask = mapped == UNKNOWN
    unknown: dict[str, int] = {}
    if unknown_mask.any():
        values, counts = np.unique(raw_keys[unknown_mask], return_counts=True)
        unknown = {fmt(int(v)): int(n) for v, n in zip(values, counts, strict=True)}
        mapped[unknown_mask] = IGNORE_INDEX
    return mapped, unknown


def get_adapter(dataset: str, root: str | Path,
                split_file: str | Path | None = None) -> Adapter:
    """Return the adapter of ``dataset`` (one of :data:`DATASETS`) over ``root``.

    ``split_file`` (RUGD only): the sequence split to use instead of :data:`RUGD_SPLITS`.
    """
    try:
        module, name = ADAPTERS[dataset].split(":")
    except KeyError:
        raise AdapterError(f"unknown dataset {dataset!r}; choose one of "
                           f"{', '.join(DATASETS)}") from None
    cls = getattr(importlib.import_module(module), name)
    if split_file is not None:
        if dataset != "rugd":
            raise AdapterError(f"a sequence split file is for RUGD only; {dataset} has its own "
                               "split (see docs/data.md)")
        return cls(root, split_file)
    return cls(root)
