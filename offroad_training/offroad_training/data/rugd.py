"""RUGD as distributed (reader; the class and colour table is :mod:`.mappings.rugd`).

RUGD
    ``RUGD_frames-with-annotations/<seq>/<seq>_NNNNN.png`` with colour labels
    ``RUGD_annotations/<seq>/<seq>_NNNNN.png`` and ``RUGD_annotation-colormap.txt`` (in the root
    or ``RUGD_annotations/``; the built-in published table otherwise). Split by sequence:
    :data:`RUGD_SPLITS`, or a YAML file ``{split: [sequence, ...]}`` given as ``split_file``
    (the val/test lists differ between public sources; the one used is recorded in the
    stats). A sequence in no list is reported and skipped. Id: the file stem.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from offroad_training.data.adapters import (
    UNKNOWN,
    Adapter,
    AdapterError,
    ScanResult,
    SourcePair,
    finish_decode,
    layout_problem,
)
from offroad_training.data.mappings import SourceClass
from offroad_training.data.mappings.rugd import COLORMAP_FILE

RUGD_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("park-2", "trail", "trail-3", "trail-4", "trail-6", "trail-9", "trail-10",
              "trail-11", "trail-12", "trail-14", "trail-15", "village"),
    "val": ("park-8", "trail-5"),
    "test": ("creek", "park-1", "trail-7", "trail-13"),
}


def _rgb_hex(key: int) -> str:
    return f"#{key:06x}"


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

    def __init__(self, root: str | Path, split_file: str | Path | None = None) -> None:
        super().__init__(root)
        self.splits = RUGD_SPLITS if split_file is None else read_sequence_split(split_file)
        self.split_source = ("built-in RUGD sequence split" if split_file is None
                             else f"split file {split_file}")
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
        seq_split = {seq: split for split, seqs in self.splits.items() for seq in seqs}
        result = ScanResult(pairs=[], notes={
            "split_source": f"{self.split_source}: " + "; ".join(
                f"{s}: {', '.join(q)}" for s, q in self.splits.items()),
            "colormap": self.colormap_source, "unmapped_classes": self.unmapped_classes})
        unlabelled = 0
        for seq in sorted(p for p in frames.iterdir() if p.is_dir()):
            split = seq_split.get(seq.name)
            if split is None:
                result.problems.append(layout_problem(seq.name, seq,
                                                      "sequence in no RUGD split list"))
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
        return finish_decode(self.lut[keys], keys, _rgb_hex)


def read_sequence_split(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Read a sequence split file: YAML ``{split: [sequence, ...]}``; a sequence at most once."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AdapterError(f"split file {path}: cannot read it ({reason})") from None
    if not isinstance(data, dict) or not data or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(q, str) for q in v)
            for k, v in data.items()):
        raise AdapterError(f"split file {path}: expected a mapping of split name to a list of "
                           "sequence names, e.g. 'val: [park-8, trail-5]'")
    seen: dict[str, str] = {}
    for split, seqs in data.items():
        for seq in seqs:
            if seq in seen:
                raise AdapterError(f"split file {path}: sequence {seq!r} is in both "
                                   f"{seen[seq]!r} and {split!r}")
            seen[seq] = split
    return {split: tuple(seqs) for split, seqs in data.items()}
