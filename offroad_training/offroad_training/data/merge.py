"""``offroad data merge``: converted datasets -> one training set plus the seed's validation set.

Output (a unified dataset):

* ``train``: the ``--train-splits`` (default ``train,val``) of every source, except the split
  chosen as validation;
* ``val``: the ``--val`` split (default ``rellis3d:test``, the seed's validation set);
* ``<source>_<split>`` for every split of every source, so each dataset can still be evaluated
  on its own (e.g. ``rugd_test``, ``goose_val``).

Ids are ``<source>_<id>`` (unique across datasets). The source name is ``NAME=DIR`` on the
command line, else the ``dataset`` field of the source's ``stats.json``.

Link vs copy (decided): files are hard-linked (no extra disk for ~19k images; converters
replace files by rename, so re-converting a source never alters the merged set's files), and
copied when linking is impossible (other filesystem) or ``--copy`` is given. Re-running merge
skips files that are already the same file (link) or the same size (copy); it is cheap and
idempotent. The merged ``stats.json`` sums the sources' per-split class pixel counts (no label
file is re-read) and lists what went where.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from offroad_core import ontology
from offroad_core.atomic import atomic_path
from offroad_core.exit_codes import CommandError
from offroad_core.ontology import CLASS_NAMES
from offroad_training.data.unified import (
    IMAGE_SUFFIX,
    IMAGES_DIR,
    LABEL_SUFFIX,
    LABELS_DIR,
    ONTOLOGY_FILE,
    STATS_FILE,
    DatasetError,
    UnifiedWriter,
    available_splits,
    read_split,
)

DEFAULT_VAL = "rellis3d:test"
DEFAULT_TRAIN_SPLITS = ("train", "val")


class MergeError(CommandError, ValueError):
    """The sources cannot be merged (missing, other ontology, name clash, bad --val)."""


def parse_source(text: str) -> tuple[str | None, Path]:
    """``NAME=DIR`` -> (NAME, DIR); ``DIR`` -> (None, DIR)."""
    if "=" in text:
        name, _, path = text.partition("=")
        return name.strip(), Path(path)
    return None, Path(text)


def _source_name(name: str | None, root: Path) -> str:
    if name:
        return name
    stats = root / STATS_FILE
    if stats.is_file():
        dataset = json.loads(stats.read_text()).get("dataset")
        if dataset:
            return str(dataset)
    return root.name


def _place(src: Path, dst: Path, copy: bool) -> str:
    """Hard-link (or copy) ``src`` to ``dst`` atomically; return 'link', 'copy' or 'kept'."""
    if dst.exists():
        if os.path.samefile(src, dst) or (copy and dst.stat().st_size == src.stat().st_size):
            return "kept"
    if not copy:
        try:
            with atomic_path(dst) as tmp:
                tmp.unlink()
                os.link(src, tmp)
            return "link"
        except OSError:
            pass
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return "copy"


def _frequency(pixels: dict[str, int]) -> dict[str, float]:
    labelled = sum(int(pixels.get(c, 0)) for c in CLASS_NAMES)
    return {c: (int(pixels.get(c, 0)) / labelled if labelled else 0.0) for c in CLASS_NAMES}


def merge(sources: Sequence[tuple[str | None, Path]], out: str | Path, val: str = DEFAULT_VAL,
          train_splits: Sequence[str] = DEFAULT_TRAIN_SPLITS, copy: bool = False
          ) -> dict[str, Any]:
    """Merge converted ``sources`` (``(name or None, root)``) into ``out``; return the stats."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MergeError(f"--out {out} is a file, not a directory")
    expected_ontology = ontology.to_dict()
    named: dict[str, Path] = {}
    for name, root in sources:
        if not (root / "splits").is_dir():
            raise MergeError(f"{root}: not a unified dataset (no splits/); run "
                             "'offroad data convert' first")
        ont = root / ONTOLOGY_FILE
        if not ont.is_file() or json.loads(ont.read_text()) != expected_ontology:
            raise MergeError(f"{ont}: missing or from another ontology; re-convert the source")
        resolved = _source_name(name, root)
        if resolved in named:
            raise MergeError(f"two sources are named {resolved!r}; name them NAME=DIR")
        if "/" in resolved or not resolved:
            raise MergeError(f"bad source name {resolved!r}")
        named[resolved] = root
    val_source, _, val_split = val.partition(":")
    if val_source not in named or val_split not in available_splits(named[val_source]):
        have = ", ".join(f"{n}:{s}" for n, r in named.items() for s in available_splits(r))
        raise MergeError(f"--val {val}: no such source split (have {have})")
    writer = UnifiedWriter(out)
    splits: dict[str, list[str]] = {"train": [], "val": []}
    members: dict[str, list[str]] = {"train": [], "val": [val]}
    pixels: dict[str, dict[str, int]] = {}
    actions = {"link": 0, "copy": 0, "kept": 0}
    for name, root in named.items():
        stats = json.loads((root / STATS_FILE).read_text()) if (root / STATS_FILE).is_file() \
            else {}
        for split in available_splits(root):
            try:
                ids = read_split(root, split)
            except DatasetError as exc:
                raise MergeError(str(exc)) from None
            merged_ids = [f"{name}_{i}" for i in ids]
            for item, new in zip(ids, merged_ids, strict=True):
                for sub, suffix in ((IMAGES_DIR, IMAGE_SUFFIX), (LABELS_DIR, LABEL_SUFFIX)):
                    src = root / sub / f"{item}{suffix}"
                    if not src.is_file():
                        raise MergeError(f"{src}: listed in {split}.txt but missing")
                    actions[_place(src, out / sub / f"{new}{suffix}", copy)] += 1
            key = f"{name}_{split}"
            splits[key] = merged_ids
            pixels[key] = stats.get("class_pixels", {}).get(split, {})
            if f"{name}:{split}" == val:
                splits["val"] += merged_ids
            elif split in train_splits:
                splits["train"] += merged_ids
                members["train"].append(f"{name}:{split}")
    for split, ids in splits.items():
        writer.write_split(split, ids)
    writer.write_ontology()
    for target in ("train", "val"):
        total = {c: 0 for c in (*CLASS_NAMES, "ignore")}
        for member in members[target]:
            for c, v in pixels.get(member.replace(":", "_"), {}).items():
                total[c] = total.get(c, 0) + int(v)
        pixels[target] = total
    result: dict[str, Any] = {
        "dataset": "merged",
        "sources": {n: str(r.resolve()) for n, r in named.items()},
        "members": members,
        "counts": {s: len(set(ids)) for s, ids in sorted(splits.items())},
        "class_pixels": dict(sorted(pixels.items())),
        "class_frequency": {s: _frequency(p) for s, p in sorted(pixels.items())},
        "files": actions,
        "mode": "copy" if copy else "hard link (copy where linking fails)",
    }
    writer.write_stats(result)
    return result
