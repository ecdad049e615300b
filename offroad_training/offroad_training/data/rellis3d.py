"""RELLIS-3D as distributed (reader; the class table is :mod:`.mappings.rellis3d`).

RELLIS-3D
    ``Rellis-3D/<seq>/pylon_camera_node/<stem>.jpg`` (or ``.png``) with
    ``Rellis-3D/<seq>/pylon_camera_node_label_id/<stem>.png`` (uint8 ids). The download's zips
    extracted side by side are read as they are: every ``Rellis-3D/`` directory directly under
    the root (``Rellis_3D_pylon_camera_node/Rellis-3D/...``,
    ``Rellis_3D_pylon_camera_node_label_id/Rellis-3D/...``) contributes its sequences, so images
    and labels may live in different trees. Split: the official ``train.lst``/``val.lst``/
    ``test.lst`` (lines ``image_path label_path``, relative to ``Rellis-3D/``), looked for in the
    root, each ``Rellis-3D/``, ``split/`` and ``Rellis_3D_image_split/``; labelled frames they do
    not list are reported, not converted. Without split files (stated rule): per sequence,
    frames sorted by name, the first 70 % train, next 15 % val, last 15 % test (contiguous
    blocks, so near-identical neighbouring frames rarely straddle splits). Id: ``<seq>_<stem>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from offroad_training.data.adapters import (
    Adapter,
    AdapterError,
    ScanResult,
    SourcePair,
    layout_problem,
)

RELLIS_SPLIT_RULE = (0.70, 0.15, 0.15)



class Rellis3D(Adapter):
    """RELLIS-3D image labels (label-id PNGs), merged or as the download's zips extract."""

    name = "rellis3d"
    SPLIT_NAMES = ("train", "val", "test")
    IMAGES, LABELS = "pylon_camera_node", "pylon_camera_node_label_id"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.bases = self._find_bases()
        self.lut = self._id_lut([*self.mapping.classes, *self.mapping.extra])

    def _find_bases(self) -> list[Path]:
        """Directories holding ``<seq>/pylon_camera_node*``: the root, ``Rellis-3D/`` and every
        ``*/Rellis-3D/`` one level down (the zips extracted side by side)."""
        candidates = [self.root, self.root / "Rellis-3D",
                      *sorted(self.root.glob("*/Rellis-3D"))]
        bases = []
        for d in candidates:
            if d.is_dir() and any(q.is_dir() for q in d.glob(f"*/{self.IMAGES}*")):
                bases.append(d)
        return bases

    def _split_files(self) -> dict[str, Path]:
        dirs = [self.root, *self.bases, self.root / "split", self.root / "Rellis_3D_image_split",
                *[b / "split" for b in self.bases]]
        for d in dirs:
            found = {s: d / f"{s}.lst" for s in self.SPLIT_NAMES if (d / f"{s}.lst").is_file()}
            if found:
                return found
        return {}

    def _resolve(self, rel: str, list_file: Path) -> Path:
        """A list entry (relative to ``Rellis-3D/``) in whichever tree holds it."""
        tries = [b / rel for b in self.bases] + [b.parent / rel for b in self.bases]
        tries += [self.root / rel, list_file.parent / rel]
        return next((t for t in tries if t.exists()), tries[0] if tries else self.root / rel)

    def _sequence_dirs(self, sub: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for base in self.bases:
            for d in sorted(base.glob(f"*/{sub}")):
                if d.is_dir():
                    found.setdefault(d.parent.name, d)
        return found

    def _all_frames(self) -> dict[tuple[str, str], tuple[Path, Path | None]]:
        images, labels = self._sequence_dirs(self.IMAGES), self._sequence_dirs(self.LABELS)
        if not images:
            raise AdapterError(
                f"{self.root}: no RELLIS-3D sequences (expected Rellis-3D/<seq>/{self.IMAGES}/ "
                f"under the root, or the zips extracted side by side: "
                f"Rellis_3D_pylon_camera_node/Rellis-3D/<seq>/{self.IMAGES}/ and "
                f"Rellis_3D_pylon_camera_node_label_id/Rellis-3D/<seq>/{self.LABELS}/)")
        frames: dict[tuple[str, str], tuple[Path, Path | None]] = {}
        for seq, image_dir in sorted(images.items()):
            label_dir = labels.get(seq)
            for img in sorted(p for p in image_dir.iterdir()
                              if p.suffix.lower() in (".jpg", ".png")):
                label = label_dir / f"{img.stem}.png" if label_dir else None
                frames[(seq, img.stem)] = (img, label if label and label.is_file() else None)
        return frames

    def scan(self) -> ScanResult:
        """Pairs with the official split if present, else the per-sequence 70/15/15 rule."""
        result = ScanResult(pairs=[], notes={"trees": [str(b) for b in self.bases]})
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
                        result.problems.append(layout_problem(
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
                        result.problems.append(layout_problem(item, missing,
                                                        f"listed in {list_file.name}, missing"))
                        continue
                    result.pairs.append(SourcePair(item, split, img, label))
            if self.bases:
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
