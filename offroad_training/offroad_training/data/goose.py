"""GOOSE / GOOSE-Ex as distributed (reader; the class table is :mod:`.mappings.goose`).

GOOSE / GOOSE-Ex
    ``images/<split>/<scenario>/<stem><camera>.png`` with camera suffix ``_windshield_vis``,
    ``_front``, ``_camera_left`` or ``_realsense`` (the suffixes the official devkit strips) and
    ``labels/<split>/<scenario>/<stem>_labelids.png``; ``goose_label_mapping.csv`` (UTF-8, a
    byte-order mark is accepted). Splits ``train`` and ``val`` (test labels are not released:
    test images are counted as unlabelled). Id: the stem, prefixed with ``<scenario>_`` unless
    it already starts with it.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from offroad_training.data.adapters import (
    Adapter,
    AdapterError,
    ScanResult,
    SourcePair,
    layout_problem,
)
from offroad_training.data.mappings import SourceClass
from offroad_training.data.mappings.goose import LABEL_MAPPING_FILE


def read_goose_mapping(path: Path) -> list[tuple[int, str]]:
    """Parse ``goose_label_mapping.csv`` (``class_name,label_key,...``) to (id, name) pairs."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: accept a byte-order mark
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"class_name", "label_key"} <= set(reader.fieldnames):
            raise AdapterError(f"{path}: expected columns class_name,label_key,has_instance,hex")
        try:
            return [(int(row["label_key"]), row["class_name"].strip()) for row in reader]
        except (TypeError, ValueError) as exc:
            raise AdapterError(f"{path}: bad label_key: {exc}") from None


class Goose(Adapter):
    """GOOSE / GOOSE-Ex label-id PNGs."""

    name = "goose"
    IMAGE_SUFFIXES = ("_windshield_vis", "_front", "_camera_left", "_realsense")
    LABEL_SUFFIX = "_labelids"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        classes = list(self.mapping.classes)
        self.mapping_source = "built-in published table"
        csv_path = self.root / LABEL_MAPPING_FILE
        if csv_path.is_file():
            by_name = self.mapping.by_name()
            classes = []
            for key, name in read_goose_mapping(csv_path):
                known = by_name.get(name)
                if known is None:
                    self.unmapped_classes.append(name)
                classes.append(SourceClass(key, name, known.target if known else None))
            self.mapping_source = str(csv_path)
        self.lut = self._id_lut(classes)

    def scan(self) -> ScanResult:
        """Pairs of ``labels/{train,val}``; test images counted as unlabelled."""
        if not (self.root / "images").is_dir() or not (self.root / "labels").is_dir():
            raise AdapterError(f"{self.root}: expected images/<split>/ and labels/<split>/ "
                               "(GOOSE layout)")
        result = ScanResult(pairs=[], notes={
            "split_source": "GOOSE train/ and val/ directories (test labels not released)",
            "label_mapping": self.mapping_source, "unmapped_classes": self.unmapped_classes})
        suffix_re = re.compile("(" + "|".join(self.IMAGE_SUFFIXES) + r")\.(png|jpg)$")
        unlabelled = 0
        for split_dir in sorted(p for p in (self.root / "images").iterdir() if p.is_dir()):
            split = split_dir.name
            label_dir = self.root / "labels" / split
            for img in sorted(split_dir.glob("*/*")):
                if not suffix_re.search(img.name):
                    continue
                stem = suffix_re.sub("", img.name)
                scenario = img.parent.name
                label = label_dir / scenario / f"{stem}{self.LABEL_SUFFIX}.png"
                if not label.is_file():
                    unlabelled += 1
                    continue
                item = stem if stem.startswith(scenario) else f"{scenario}_{stem}"
                result.pairs.append(SourcePair(item, split, img, label))
        labelled_images = {(p.split, p.label) for p in result.pairs}
        for label in sorted((self.root / "labels").glob(f"*/*/*{self.LABEL_SUFFIX}.png")):
            split = label.parent.parent.name
            if (split, label) not in labelled_images:
                result.problems.append(layout_problem(label.stem, label, "label without an image"))
        result.notes["unlabelled_images"] = unlabelled
        return result

    def decode_labels(self, path: Path) -> tuple[np.ndarray, dict[str, int]]:
        """Label-id PNG -> ontology ids."""
        return self._decode_ids(path, self.lut)
