"""``offroad data convert``: one source dataset -> the unified format, in parallel, resumable.

Per pair a worker decodes the image and the label file, maps labels through the dataset's table
(unknown values -> 255, counted), checks that image and labels have the same size, resizes both
to the base size (image area/bilinear, labels nearest) and writes ``images/<id>.jpg`` then
``labels/<id>.png`` atomically. Corrupt or size-mismatched pairs are reported (log and
``stats.json``) and skipped; the run goes on.

Resume semantics (decided): ``OUT/.convert/progress.jsonl`` gets one JSON line per finished
pair (written by the parent after the worker wrote both files, flushed at once). A re-run skips
every pair whose line is there *and* whose two files exist, and reuses its recorded
statistics, so ``stats.json`` is the same as after an uninterrupted run. A pair that was being
written when the run died has no line (or only an image): it is converted again. Skipped
(corrupt) pairs are retried on every run, so a fixed file is picked up. The options that change
outputs (dataset, base size, JPEG quality) are stored in ``OUT/.convert/params.json``; a re-run
with different ones is refused unless ``--restart`` (which forgets the progress log and rewrites
every pair).

Base size (decided): default 1280x1088 = twice the model input (640x544). Training resizes
each frame to the model size and zooms 0.5-2x, so 2x keeps every zoom at source detail while
RELLIS-3D's 1920x1200 frames shrink 1.6x on disk, and libjpeg's 1/2 reduced decode yields the
model size directly. ``--base-size native`` keeps each source's size.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2

from offroad_core.atomic import atomic_write_text
from offroad_core.exit_codes import CommandError
from offroad_training.data.adapters import Adapter, AdapterError, SourcePair, get_adapter
from offroad_training.data.unified import (
    DEFAULT_JPEG_QUALITY,
    DatasetError,
    UnifiedWriter,
    label_histogram,
    split_stats,
)

LOG = logging.getLogger(__name__)
DEFAULT_BASE_SIZE = (1280, 1088)
STATE_DIR = ".convert"
PROGRESS_FILE = "progress.jsonl"
PARAMS_FILE = "params.json"


class ConvertError(CommandError, ValueError):
    """The conversion cannot start (bad root, changed options on resume, duplicate ids)."""


_WORKER: dict[str, Any] = {}


def _init_worker(dataset: str, root: str, out: str, base_size: tuple[int, int] | None,
                 jpeg_quality: int) -> None:
    cv2.setNumThreads(1)  # one frame per process; no oversubscription of the cores
    _WORKER["adapter"] = get_adapter(dataset, root)
    _WORKER["writer"] = UnifiedWriter(out, jpeg_quality=jpeg_quality, base_size=base_size)


def convert_pair(adapter: Adapter, writer: UnifiedWriter, pair: SourcePair) -> dict[str, Any]:
    """Convert one pair; return its progress record (``status`` ``ok`` or ``skipped``)."""
    record: dict[str, Any] = {"id": pair.item_id, "split": pair.split}

    def skipped(reason: str) -> dict[str, Any]:
        record.update(status="skipped", reason=reason, image=str(pair.image),
                      label=str(pair.label))
        return record

    bgr = cv2.imread(str(pair.image), cv2.IMREAD_COLOR)
    if bgr is None:
        return skipped(f"{pair.image}: image file is corrupt or not an image")
    try:
        labels, unknown = adapter.decode_labels(pair.label)
    except AdapterError as exc:
        return skipped(str(exc))
    if labels.shape != bgr.shape[:2]:
        return skipped(f"size mismatch: image {bgr.shape[1]}x{bgr.shape[0]}, labels "
                       f"{labels.shape[1]}x{labels.shape[0]}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    try:
        written = writer.write_pair(pair.item_id, rgb, labels)
    except DatasetError as exc:
        return skipped(str(exc))
    record.update(status="ok", hist=label_histogram(written).tolist(), unknown=unknown,
                  source_size=[int(bgr.shape[1]), int(bgr.shape[0])])
    return record


def _work(pair: SourcePair) -> dict[str, Any]:
    return convert_pair(_WORKER["adapter"], _WORKER["writer"], pair)


def _read_progress(path: Path) -> dict[str, dict[str, Any]]:
    """Last ``ok`` record per id (a torn last line from a killed run is ignored)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("status") == "ok":
            done[record["id"]] = record
    return done


def _check_params(state: Path, params: dict[str, Any], restart: bool) -> None:
    path = state / PARAMS_FILE
    if restart:
        (state / PROGRESS_FILE).unlink(missing_ok=True)
    elif path.is_file():
        old = json.loads(path.read_text())
        changed = {k: (old.get(k), v) for k, v in params.items() if old.get(k) != v}
        if changed:
            detail = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changed.items())
            raise ConvertError(f"{state.parent} was converted with other options ({detail}); "
                               "use the same options to resume, another --out, or --restart "
                               "to rewrite everything")
    atomic_write_text(path, json.dumps(params, indent=2) + "\n")


def _sum_unknown(records: Iterable[dict[str, Any]]) -> tuple[dict[str, int], int]:
    total: dict[str, int] = {}
    frames = 0
    for r in records:
        if r.get("unknown"):
            frames += 1
            for k, v in r["unknown"].items():
                total[k] = total.get(k, 0) + int(v)
    return dict(sorted(total.items())), frames


def convert(dataset: str, root: str | Path, out: str | Path,
            base_size: tuple[int, int] | None = DEFAULT_BASE_SIZE,
            jpeg_quality: int = DEFAULT_JPEG_QUALITY, workers: int | None = None,
            restart: bool = False, progress: bool = True,
            split_file: str | Path | None = None) -> dict[str, Any]:
    """Convert ``dataset`` at ``root`` into the unified format at ``out``; return the stats.

    ``workers`` processes (default: all cores; 1 = in this process). ``split_file``: RUGD's
    sequence split (YAML ``{split: [sequence, ...]}``) instead of the built-in one. Raises
    :class:`ConvertError` (or :class:`~offroad_training.data.adapters.AdapterError`) when the
    conversion cannot start; bad pairs never raise, they are skipped and listed in the stats.
    """
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConvertError(f"--out {out} is a file, not a directory")
    created = not out.exists()
    adapter = get_adapter(dataset, root, split_file)
    scan = adapter.scan()
    for p in scan.problems:
        LOG.warning("%s: %s (%s)", p["id"], p["reason"], p["path"])
    ids = [p.item_id for p in scan.pairs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ConvertError(f"{root}: the same id appears twice ({', '.join(dup)}); "
                           "is a sequence present twice under the root?")
    if not scan.pairs:
        raise ConvertError(f"{root}: no labelled {dataset} image/label pairs found")
    writer = UnifiedWriter(out, jpeg_quality=jpeg_quality, base_size=base_size)
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    params = {"dataset": dataset, "base_size": list(base_size) if base_size else "native",
              "jpeg_quality": int(jpeg_quality)}
    _check_params(state, params, restart)
    done = _read_progress(state / PROGRESS_FILE)
    wanted = {p.item_id: p for p in scan.pairs}
    records = {i: r for i, r in done.items()
               if i in wanted and r.get("split") == wanted[i].split and writer.has(i)}
    todo = [p for p in scan.pairs if p.item_id not in records]
    resumed = len(records)
    if resumed:
        LOG.info("resuming: %d of %d pairs already converted", resumed, len(scan.pairs))
    workers = max(1, workers or os.cpu_count() or 1)
    skipped: list[dict[str, Any]] = []
    with open(state / PROGRESS_FILE, "a") as log:
        for record in _run(todo, dataset, root, out, base_size, jpeg_quality, workers, progress):
            if record["status"] == "ok":
                records[record["id"]] = record
                log.write(json.dumps(record) + "\n")
                log.flush()
            else:
                skipped.append(record)
                LOG.warning("skipped %s: %s", record["id"], record["reason"])
    if not records:
        if created:  # leave no empty dataset skeleton behind
            shutil.rmtree(out, ignore_errors=True)
        first = skipped[0]["reason"] if skipped else "no pair"
        raise ConvertError(f"{root}: none of the {len(scan.pairs)} pairs could be converted "
                           f"(first: {first}); nothing written to {out}")
    splits: dict[str, list[str]] = {}
    for pair in scan.pairs:
        if pair.item_id in records:
            splits.setdefault(pair.split, []).append(pair.item_id)
    for split, split_ids in splits.items():
        writer.write_split(split, split_ids)
    writer.write_ontology()
    unknown, unknown_frames = _sum_unknown(records.values())
    stats: dict[str, Any] = {
        "dataset": dataset,
        "source_root": str(Path(root).resolve()),
        "base_size": params["base_size"],
        "jpeg_quality": int(jpeg_quality),
        **split_stats({i: r["hist"] for i, r in records.items()}, splits),
        "unknown_labels": unknown,
        "unknown_label_frames": unknown_frames,
        "skipped": sorted(skipped, key=lambda r: r["id"]),
        "problems": scan.problems,
        "notes": scan.notes,
        "converted_this_run": len(todo) - len(skipped),
        "resumed": resumed,
        "seconds_this_run": round(time.perf_counter() - started, 3),
    }
    writer.write_stats(stats)
    return stats


def _run(todo: list[SourcePair], dataset: str, root: str | Path, out: Path,
         base_size: tuple[int, int] | None, jpeg_quality: int, workers: int,
         progress: bool) -> Iterable[dict[str, Any]]:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="frame", desc=f"convert {dataset}", disable=not progress)
    args = (dataset, str(root), str(out), base_size, int(jpeg_quality))
    try:
        if workers == 1 or len(todo) <= 1:
            _init_worker(*args)
            for pair in todo:
                yield _work(pair)
                bar.update()
            return
        chunk = max(1, min(8, len(todo) // (workers * 8)))
        # spawn, not fork: a fork after OpenCV's thread pool has run in this process can
        # inherit a held lock and deadlock the workers (seen with fork on Linux)
        with multiprocessing.get_context("spawn").Pool(workers, _init_worker, args) as pool:
            for record in pool.imap_unordered(_work, todo, chunksize=chunk):
                yield record
                bar.update()
    finally:
        bar.close()


def summary(stats: dict[str, Any]) -> str:
    """Human-readable one-paragraph summary of convert stats."""
    counts = ", ".join(f"{k} {v}" for k, v in stats["counts"].items())
    lines = [f"{stats['dataset']}: {counts} (resumed {stats['resumed']}, converted "
             f"{stats['converted_this_run']} in {stats['seconds_this_run']:.1f} s)"]
    if stats["skipped"]:
        lines.append(f"skipped {len(stats['skipped'])} pairs (see stats.json 'skipped')")
    if stats["unknown_labels"]:
        top = sorted(stats["unknown_labels"].items(), key=lambda kv: -kv[1])[:5]
        lines.append(f"unknown label values in {stats['unknown_label_frames']} frames "
                     f"(mapped to 255): " + ", ".join(f"{k}: {v} px" for k, v in top))
    if stats["problems"]:
        lines.append(f"{len(stats['problems'])} layout problems (see stats.json 'problems')")
    return "\n".join(lines)

