"""Readers for RELLIS-3D, RUGD and GOOSE exactly as distributed.

An adapter finds the labelled image/label pairs of a dataset root and their split
(:meth:`Adapter.scan`), and decodes a label file to ontology ids (:meth:`Adapter.decode_labels`),
counting every label value that is in no mapping table (mapped to 255, never to a class).

Layouts (``--root`` may be the directory shown or its parent):

RELLIS-3D
    ``Rellis-3D/<seq>/pylon_camera_node/<stem>.jpg`` with
    ``Rellis-3D/<seq>/pylon_camera_node_label_id/<stem>.png`` (uint8 ids). Split: the official
    ``train.lst``/``val.lst``/``test.lst`` (lines ``image_path label_path``, relative to
    ``Rellis-3D/``), looked for in the root, ``Rellis-3D/``, ``split/`` and
    ``Rellis_3D_image_split/``; labelled frames they do not list are reported, not converted.
    Without split files (stated rule): per sequence, frames sorted by name, the first 70 %
    train, next 15 % val, last 15 % test (contiguous blocks, so near-identical neighbouring
    frames rarely straddle splits). Id: ``<seq>_<stem>``.
RUGD
    ``RUGD_frames-with-annotations/<seq>/<seq>_NNNNN.png`` with colour labels
    ``RUGD_annotations/<seq>/<seq>_NNNNN.png`` and ``RUGD_annotation-colormap.txt`` (in the root
    or ``RUGD_annotations/``; the built-in published table otherwise). Split by sequence
    (:data:`RUGD_SPLITS`); a sequence in no list is reported and skipped. Id: the file stem.
GOOSE / GOOSE-Ex
    ``images/<split>/<scenario>/<stem>_windshield_vis.png`` (GOOSE-Ex: ``_camera_left``) with
    ``labels/<split>/<scenario>/<stem>_labelids.png`` and ``goose_label_mapping.csv``. Splits
    ``train`` and ``val`` (test labels are not released: test images are counted as
    unlabelled). Id: the stem, prefixed with ``<scenario>_`` unless it already starts with it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from offroad_core.ontology import IGNORE_INDEX
from offroad_training.data.mappings import DatasetMapping, SourceClass, get_mapping
from offroad_training.data.mappings.goose import LABEL_MAPPING_FILE
from offroad_training.data.mappings.rugd import COLORMAP_FILE

DATASETS = ("rellis3d", "rugd", "goose")
UNKNOWN = 254  # LUT sentinel for "value in no table" (never an ontology id)

RUGD_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("park-2", "trail", "trail-3", "trail-4", "trail-6", "trail-9", "trail-10",
              "trail-11", "trail-12", "trail-14", "trail-15", "village"),
    "val": ("park-8", "trail-5"),
    "test": ("creek", "park-1", "trail-7", "trail-13"),
}
RELLIS_SPLIT_RULE = (0.70, 0.15, 0.15)


class AdapterError(ValueError):
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


def _problem(item: str, path: Path, reason: str) -> dict[str, str]:
    return {"id": item, "path": str(path), "reason": reason}


class Adapter:
    """Base class: a LUT from raw label keys to ontology ids (``UNKNOWN`` = in no table)."""

    name = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise AdapterError(f"{self.root}: dataset root does not exist")
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
        return _finish(lut[raw], raw, str)


def _finish(mapped: np.ndarray, raw_keys: np.ndarray,
            fmt: Any) -> tuple[np.ndarray, dict[str, int]]:
    """Replace the UNKNOWN sentinel by 255 and count the raw values it came from."""
    unknown_mask = mapped == UNKNOWN
    unknown: dict[str, int] = {}
    if unknown_mask.any():
        values, counts = np.unique(raw_keys[unknown_mask], return_counts=True)
        unknown = {fmt(int(v)): int(n) for v, n in zip(values, counts, strict=True)}
        mapped[unknown_mask] = IGNORE_INDEX
    return mapped, unknown


def _rgb_hex(key: int) -> str:
    return f"#{key:06x}"


class Rellis3D(Adapter):
    """RELLIS-3D image labels (label-id PNGs)."""

    name = "rellis3d"
    SPLIT_NAMES = ("train", "val", "test")

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.base = self.root / "Rellis-3D" if (self.root / "Rellis-3D").is_dir() else self.root
        self.lut = self._id_lut([*self.mapping.classes, *self.mapping.extra])

    def _split_files(self) -> dict[str, Path]:
        for d in (self.root, self.base, self.root / "split", self.base / "split",
                  self.root / "Rellis_3D_image_split"):
            found = {s: d / f"{s}.lst" for s in self.SPLIT_NAMES if (d / f"{s}.lst").is_file()}
            if found:
                return found
        return {}

    def _resolve(self, rel: str, list_file: Path) -> Path:
        for base in (self.base, self.root, list_file.parent):
            if (base / rel).exists():
                return base / rel
        return self.base / rel

    def _all_frames(self) -> dict[tuple[str, str], tuple[Path, Path | None]]:
        frames: dict[tuple[str, str], tuple[Path, Path | None]] = {}
        seqs = sorted(p for p in self.base.iterdir()
                      if p.is_dir() and (p / "pylon_camera_node").is_dir())
        if not seqs:
            raise AdapterError(f"{self.base}: no RELLIS-3D sequences (expected "
                               "Rellis-3D/<seq>/pylon_camera_node/*.jpg)")
        for seq in seqs:
            for img in sorted((seq / "pylon_camera_node").glob("*.jpg")):
                label = seq / "pylon_camera_node_label_id" / f"{img.stem}.png"
                frames[(seq.name, img.stem)] = (img, label if label.is_file() else None)
        return frames

    def scan(self) -> ScanResult:
        """Pairs with the official split if present, else the per-sequence 70/15/15 rule."""
        result = ScanResult(pairs=[])
        split_files = self._split_files()
        if split_files:
            result.notes["split_source"] = "official: " + ", ".join(
                str(p) for p in split_files.values())
            listed: set[tuple[str, str]] = set()
            for split, list_file in split_files.items():
                for n, line in enumerate(list_file.read_text().splitlines(), 1):
                    parts = line.split()
                    if not parts:
                        continue
                    if len(parts) != 2:
                        result.problems.append(_problem(
                            f"{list_file.name}:{n}", list_file,
                            "line is not 'image_path label_path'"))
                        continue
                    img = self._resolve(parts[0], list_file)
                    label = self._resolve(parts[1], list_file)
                    seq = img.parent.parent.name
                    item = f"{seq}_{img.stem}"
                    listed.add((seq, img.stem))
                    if not img.is_file() or not label.is_file():
                        missing = img if not img.is_file() else label
                        result.problems.append(_problem(item, missing,
                                                        f"listed in {list_file.name}, missing"))
                        continue
                    result.pairs.append(SourcePair(item, split, img, label))
            if self.base.is_dir():
                extra = [k for k, (_, lab) in self._all_frames().items()
                         if lab is not None and k not in listed]
                result.notes["labelled_not_in_official_split"] = len(extra)
            return result
        a, b, _ = RELLIS_SPLIT_RULE
        result.notes["split_source"] = ("rule: per sequence, frames sorted by name, first 70% "
                                        "train, next 15% val, last 15% test")
        by_seq: dict[str, list[tuple[str, Path, Path]]] = {}
        unlabelled = 0
        for (seq, stem), (img, label) in self._all_frames().items():
            if label is None:
                unlabelled += 1
                continue
            by_seq.setdefault(seq, []).append((stem, img, label))
        for seq, frames in sorted(by_seq.items()):
            n = len(frames)
            cut1, cut2 = round(n * a), round(n * (a + b))
            for i, (stem, img, label) in enumerate(frames):
                split = "train" if i < cut1 else "val" if i < cut2 else "test"
                result.pairs.append(SourcePair(f"{seq}_{stem}", split, img, label))
        result.notes["unlabelled_images"] = unlabelled
        return result

    def decode_labels(self, path: Path) -> tuple[np.ndarray, dict[str, int]]:
        """Label-id PNG -> ontology ids."""
        return self._decode_ids(path, self.lut)


def read_rugd_colormap(path: Path) -> list[tuple[int, str, tuple[int, int, int]]]:
    """Parse ``RUGD_annotation-colormap.txt`` lines ``index name r g b``."""
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            index, name = int(parts[0]), " ".join(parts[1:-3])
            rgb = (int(parts[-3]), int(parts[-2]), int(parts[-1]))
        except (ValueError, IndexError):
            raise AdapterError(f"{path}:{n}: expected 'index name r g b', got {line!r}") from None
        if not name:
            raise AdapterError(f"{path}:{n}: expected 'index name r g b', got {line!r}")
        entries.append((index, name, rgb))
    return entries


class Rugd(Adapter):
    """RUGD colour labels through the published colormap (exact RGB match)."""

    name = "rugd"
    FRAMES = "RUGD_frames-with-annotations"
    ANNOTATIONS = "RUGD_annotations"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        classes = list(self.mapping.classes)
        self.colormap_source = "built-in published table"
        for candidate in (self.root / COLORMAP_FILE, self.root / self.ANNOTATIONS / COLORMAP_FILE):
            if candidate.is_file():
                by_name = self.mapping.by_name()
                classes = []
                for index, name, rgb in read_rugd_colormap(candidate):
                    known = by_name.get(name)
                    if known is None:
                        self.unmapped_classes.append(name)
                    classes.append(SourceClass(index, name, known.target if known else None, rgb))
                self.colormap_source = str(candidate)
                break
        self.lut = np.full(1 << 24, UNKNOWN, dtype=np.uint8)
        for c in classes:
            assert c.rgb is not None
            r, g, b = c.rgb
            self.lut[(r << 16) | (g << 8) | b] = self.mapping.target_id(c.target)

    def scan(self) -> ScanResult:
        """Pairs of every sequence, split by :data:`RUGD_SPLITS`."""
        frames, labels = self.root / self.FRAMES, self.root / self.ANNOTATIONS
        if not frames.is_dir() or not labels.is_dir():
            raise AdapterError(f"{self.root}: expected {self.FRAMES}/ and {self.ANNOTATIONS}/")
        seq_split = {seq: split for split, seqs in RUGD_SPLITS.items() for seq in seqs}
        result = ScanResult(pairs=[], notes={
            "split_source": "rule: RUGD sequence split " + "; ".join(
                f"{s}: {', '.join(q)}" for s, q in RUGD_SPLITS.items()),
            "colormap": self.colormap_source, "unmapped_classes": self.unmapped_classes})
        unlabelled = 0
        for seq in sorted(p for p in frames.iterdir() if p.is_dir()):
            split = seq_split.get(seq.name)
            if split is None:
                result.problems.append(_problem(seq.name, seq, "sequence in no RUGD split list"))
                continue
            for img in sorted(seq.glob("*.png")):
                label = labels / seq.name / img.name
                if not label.is_file():
                    unlabelled += 1
                    continue
                result.pairs.append(SourcePair(img.stem, split, img, label))
        result.notes["unlabelled_images"] = unlabelled
        return result

    def decode_labels(self, path: Path) -> tuple[np.ndarray, dict[str, int]]:
        """Colour PNG -> ontology ids (exact RGB match, anything else unknown)."""
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise AdapterError(f"{path}: label file is corrupt or not an image")
        keys = ((bgr[..., 2].astype(np.int32) << 16) | (bgr[..., 1].astype(np.int32) << 8)
                | bgr[..., 0])
        return _finish(self.lut[keys], keys, _rgb_hex)


def read_goose_mapping(path: Path) -> list[tuple[int, str]]:
    """Parse ``goose_label_mapping.csv`` (``class_name,label_key,...``) to (id, name) pairs."""
    with open(path, newline="") as f:
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
    IMAGE_SUFFIXES = ("_windshield_vis", "_camera_left")
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

    def _image_for(self, images: Path, scenario: str, stem: str) -> Path | None:
        for suffix in self.IMAGE_SUFFIXES:
            for ext in (".png", ".jpg"):
                path = images / scenario / f"{stem}{suffix}{ext}"
                if path.is_file():
                    return path
        return None

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
                result.problems.append(_problem(label.stem, label, "label without an image"))
        result.notes["unlabelled_images"] = unlabelled
        return result

    def decode_labels(self, path: Path) -> tuple[np.ndarray, dict[str, int]]:
        """Label-id PNG -> ontology ids."""
        return self._decode_ids(path, self.lut)


ADAPTERS: dict[str, type[Adapter]] = {"rellis3d": Rellis3D, "rugd": Rugd, "goose": Goose}


def get_adapter(dataset: str, root: str | Path) -> Adapter:
    """Return the adapter of ``dataset`` (one of :data:`DATASETS`) over ``root``."""
    try:
        cls = ADAPTERS[dataset]
    except KeyError:
        raise AdapterError(f"unknown dataset {dataset!r}; choose one of "
                           f"{', '.join(DATASETS)}") from None
    return cls(root)
