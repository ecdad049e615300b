"""The unified dataset format: one on-disk layout for every source (RELLIS-3D, RUGD, GOOSE,
the synthetic world, merged sets), read by training and evaluation.

Layout::

    ROOT/images/<id>.jpg        RGB JPEG (any size; the converters write the base size)
    ROOT/labels/<id>.png        uint8 single channel, same size as the image,
                                ids 0..6 of offroad_core.ontology, 255 = ignore
    ROOT/splits/<split>.txt     one id per line (train, val, test ...), sorted
    ROOT/ontology.json          offroad_core.ontology.export()
    ROOT/stats.json             counts, class pixel frequencies per split, unknown labels, skipped
    (synthetic only: camera.json, topdown/<id>.png, topdown.json; see offroad_training.synth)

Ids are flat file stems: no ``/``, no whitespace, not starting with ``.``.

Reading: ``UnifiedDataset(root, split)`` with ``.ids``, ``.image_path(id)``, ``.label_path(id)``
and ``.load(id) -> (rgb uint8 (H, W, 3), labels uint8 (H, W))``. Every problem (missing root,
missing split file, missing or corrupt image/label, size mismatch, label value outside
0..6/255) raises :class:`DatasetError` naming the path and the cause.

Writing (used by ``offroad data convert|merge|synth``)::

    writer = UnifiedWriter(root, jpeg_quality=95, base_size=(1280, 1088))  # or base_size=None
    if not writer.has(item_id):                 # resume: both files already written
        writer.write_pair(item_id, rgb, labels)  # atomic; resized to base_size if set
    writer.write_split("train", ids)            # sorted, de-duplicated, atomic
    writer.write_ontology()
    writer.write_stats(stats_dict)              # any JSON-able dict; see split_stats()

``write_pair`` writes the image first and the label second, each atomically (temporary file +
rename), so "the label file exists" means "the pair is complete": :meth:`UnifiedWriter.has`
checks both. Images are resized with area interpolation (bilinear when enlarging), labels with
nearest neighbour, so no label value is ever invented. :func:`label_histogram` and
:func:`split_stats` build the per-split class pixel statistics of ``stats.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from offroad_core import ontology
from offroad_core.atomic import atomic_write_bytes, atomic_write_text
from offroad_core.exit_codes import CommandError
from offroad_core.ontology import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES

IMAGES_DIR = "images"
LABELS_DIR = "labels"
SPLITS_DIR = "splits"
IMAGE_SUFFIX = ".jpg"
LABEL_SUFFIX = ".png"
ONTOLOGY_FILE = "ontology.json"
STATS_FILE = "stats.json"
DEFAULT_JPEG_QUALITY = 95
PNG_COMPRESSION = 1  # labels compress ~as well at level 1 as at 9, several times faster

_ID_RE = re.compile(r"^[^/\\\s.][^/\\\s]*$")
_VALID_LABELS = np.zeros(256, dtype=bool)
_VALID_LABELS[:NUM_CLASSES] = True
_VALID_LABELS[IGNORE_INDEX] = True


class DatasetError(CommandError, ValueError):
    """A unified dataset file or split is missing or unusable (the message names path + cause)."""


def check_id(item_id: str) -> str:
    """Return ``item_id`` if it is a valid flat id, else raise :class:`DatasetError`."""
    if not isinstance(item_id, str) or not _ID_RE.match(item_id):
        raise DatasetError(f"invalid dataset id {item_id!r}: ids are flat file stems without "
                           "'/', whitespace or a leading '.'")
    return item_id


def available_splits(root: str | Path) -> list[str]:
    """Return the split names of ``root`` (the stems of ``splits/*.txt``), sorted."""
    return sorted(p.stem for p in (Path(root) / SPLITS_DIR).glob("*.txt"))


def read_split(root: str | Path, split: str) -> list[str]:
    """Return the ids listed in ``root/splits/<split>.txt`` (blank lines ignored)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist or is not a directory")
    path = root / SPLITS_DIR / f"{split}.txt"
    if not path.is_file():
        have = ", ".join(available_splits(root)) or "none"
        raise DatasetError(f"{path}: split {split!r} not found (splits present: {have})")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    for item_id in ids:
        try:
            check_id(item_id)
        except DatasetError as exc:
            raise DatasetError(f"{path}: {exc}") from None
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{path}: split lists an id more than once")
    return ids


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 (H, W, 3); :class:`DatasetError` if missing/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: image file missing")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"{path}: image file is corrupt or not an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """Decode a unified label PNG to uint8 (H, W); :class:`DatasetError` if missing/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: label file missing")
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise DatasetError(f"{path}: label file is corrupt or not an image")
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise DatasetError(f"{path}: label image must be uint8 single channel, got "
                           f"{labels.dtype} with shape {labels.shape}")
    return labels


class UnifiedDataset:
    """One split of a unified dataset (the dataset protocol of training and evaluation)."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = split
        self.ids: list[str] = read_split(self.root, split)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"UnifiedDataset({str(self.root)!r}, {self.split!r}, {len(self.ids)} items)"

    def image_path(self, item_id: str) -> Path:
        """Path of the RGB JPEG of ``item_id``."""
        return self.root / IMAGES_DIR / f"{item_id}{IMAGE_SUFFIX}"

    def label_path(self, item_id: str) -> Path:
        """Path of the label PNG of ``item_id``."""
        return self.root / LABELS_DIR / f"{item_id}{LABEL_SUFFIX}"

    def load(self, item_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(rgb uint8 (H, W, 3), labels uint8 (H, W))`` of ``item_id``.

        Raises :class:`DatasetError` on a missing or corrupt file, an image/label size
        mismatch or a label value that is neither a class id nor 255.
        """
        rgb = read_image(self.image_path(item_id))
        label_path = self.label_path(item_id)
        labels = read_label(label_path)
        if labels.shape != rgb.shape[:2]:
            raise DatasetError(f"{label_path}: label size {labels.shape[1]}x{labels.shape[0]} "
                               f"differs from image size {rgb.shape[1]}x{rgb.shape[0]}")
        bad = ~_VALID_LABELS[labels]
        if bad.any():
            values = sorted(int(v) for v in np.unique(labels[bad]))
            raise DatasetError(f"{label_path}: label values {values} are neither class ids "
                               f"0..{NUM_CLASSES - 1} nor {IGNORE_INDEX}")
        return rgb, labels


def parse_size(text: str) -> tuple[int, int] | None:
    """Parse ``"WxH"`` to ``(width, height)``; ``"native"`` gives ``None`` (keep source size)."""
    if text.strip().lower() == "native":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise ValueError(f"size must be WxH with positive integers or 'native', got {text!r}")
    return int(m.group(1)), int(m.group(2))


def resize_pair(rgb: np.ndarray, labels: np.ndarray,
                size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (area/bilinear) and its labels (nearest) to ``size = (W, H)``."""
    if size is None or (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb, labels
    w, h = size
    shrink = w <= rgb.shape[1] and h <= rgb.shape[0]
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return rgb, labels


def encode_jpeg(rgb: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """Encode RGB uint8 (H, W, 3) as JPEG bytes."""
    ok, buf = cv2.imencode(IMAGE_SUFFIX, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DatasetError("JPEG encoding failed")
    return buf.tobytes()


def encode_label_png(labels: np.ndarray) -> bytes:
    """Encode uint8 (H, W) labels as a single-channel PNG."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise DatasetError(f"labels must be uint8 (H, W), got {labels.dtype} {labels.shape}")
    ok, buf = cv2.imencode(LABEL_SUFFIX, labels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise DatasetError("PNG encoding failed")
    return buf.tobytes()


def label_histogram(labels: np.ndarray) -> np.ndarray:
    """Return int64 pixel counts of length ``NUM_CLASSES + 1``: classes 0..6, then ignore.

    Any value that is not a class id counts as ignore.
    """
    counts = np.bincount(labels.ravel(), minlength=256).astype(np.int64)
    out = np.zeros(NUM_CLASSES + 1, dtype=np.int64)
    out[:NUM_CLASSES] = counts[:NUM_CLASSES]
    out[NUM_CLASSES] = counts.sum() - out[:NUM_CLASSES].sum()
    return out


def split_stats(histograms: Mapping[str, Iterable[int]],
                splits: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """Per-split counts and class pixel statistics for ``stats.json``.

    ``histograms`` maps id -> :func:`label_histogram`; ids of a split missing from it are
    ignored (e.g. skipped pairs). Returns ``{"counts": {split: n}, "class_pixels": {split:
    {class: n, "ignore": n}}, "class_frequency": {split: {class: fraction of labelled
    (non-ignore) pixels}}}``.
    """
    counts: dict[str, int] = {}
    pixels: dict[str, dict[str, int]] = {}
    freq: dict[str, dict[str, float]] = {}
    for split in sorted(splits):
        ids = [i for i in splits[split] if i in histograms]
        total = np.zeros(NUM_CLASSES + 1, dtype=np.int64)
        for item_id in ids:
            total += np.asarray(histograms[item_id], dtype=np.int64)
        labelled = int(total[:NUM_CLASSES].sum())
        counts[split] = len(ids)
        pixels[split] = {name: int(total[i]) for i, name in enumerate(CLASS_NAMES)}
        pixels[split]["ignore"] = int(total[NUM_CLASSES])
        freq[split] = {name: (int(total[i]) / labelled if labelled else 0.0)
                       for i, name in enumerate(CLASS_NAMES)}
    return {"counts": counts, "class_pixels": pixels, "class_frequency": freq}


class UnifiedWriter:
    """Writes a unified dataset under ``root`` (atomically, resumable); see the module doc."""

    def __init__(self, root: str | Path, jpeg_quality: int = DEFAULT_JPEG_QUALITY,
                 base_size: tuple[int, int] | None = None) -> None:
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        self.root = Path(root)
        self.jpeg_quality = int(jpeg_quality)
        self.base_size = tuple(base_size) if base_size is not None else None
        for sub in (IMAGES_DIR, LABELS_DIR, SPLITS_DIR):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def image_path(self, item_id: str) -> Path:
        """Path of the JPEG of ``item_id``."""
        return self.root / IMAGES_DIR / f"{check_id(item_id)}{IMAGE_SUFFIX}"

    def label_path(self, item_id: str) -> Path:
        """Path of the label PNG of ``item_id``."""
        return self.root / LABELS_DIR / f"{check_id(item_id)}{LABEL_SUFFIX}"

    def has(self, item_id: str) -> bool:
        """True if both files of ``item_id`` exist (the label is written last)."""
        return self.label_path(item_id).is_file() and self.image_path(item_id).is_file()

    def write_pair(self, item_id: str, rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Resize to the base size, write image then labels atomically; return the labels
        as written (for statistics)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise DatasetError(f"{item_id}: image must be uint8 (H, W, 3), got "
                               f"{rgb.dtype} {rgb.shape}")
        if labels.shape != rgb.shape[:2]:
            raise DatasetError(f"{item_id}: label shape {labels.shape} differs from image "
                               f"shape {rgb.shape[:2]}")
        rgb, labels = resize_pair(rgb, labels, self.base_size)
        atomic_write_bytes(self.image_path(item_id), encode_jpeg(rgb, self.jpeg_quality))
        atomic_write_bytes(self.label_path(item_id), encode_label_png(labels))
        return labels

    def write_split(self, split: str, ids: Iterable[str]) -> Path:
        """Write ``splits/<split>.txt`` with the ids sorted and de-duplicated (deterministic
        whatever order workers finished in)."""
        check_id(split)
        unique = sorted({check_id(i) for i in ids})
        path = self.root / SPLITS_DIR / f"{split}.txt"
        atomic_write_text(path, "".join(f"{i}\n" for i in unique))
        return path

    def write_ontology(self) -> Path:
        """Write ``ontology.json`` (the ontology this dataset's label ids refer to)."""
        return ontology.export(self.root / ONTOLOGY_FILE)

    def write_stats(self, stats: Mapping[str, Any]) -> Path:
        """Write ``stats.json`` (indented, keys in the given order)."""
        return atomic_write_text(self.root / STATS_FILE, json.dumps(stats, indent=2) + "\n")
