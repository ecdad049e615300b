"""``offroad data synth``: synthetic frames in the unified dataset format and/or a rosbag2.

Dataset (``--out``): frame i comes from its own world (seed derived from ``--seed`` and i) seen
from a random pose on the track, so train and val never share a world. The last
``round(frames * val_fraction)`` frames form ``val``, the rest ``train``. Besides the unified
layout (images/, labels/, splits/, ontology.json, stats.json) it writes ``camera.json`` (the
camera every frame was rendered with), ``topdown/<id>.png`` (uint8 class map of the frame in its
base_link, 255 unknown) and ``topdown.json`` (resolution, origin, axis order, poses).
Re-running with the same options skips frames already written (files are written atomically);
other options on an existing dataset are refused unless ``--restart``.

Bag (``--bag``): ``--frames`` frames of one world (``--seed``) driving the track at ``--speed``
m/s, sampled at ``--rate`` Hz, with the depth image and camera cloud (``--no-depth`` to leave
them out; ``--depth-encoding``) and a LiDAR scan (``--no-lidar``; ``--lidar-*``) per frame
(topics: :mod:`offroad_training.synth.bag`).

Relief (``--relief``, both outputs): ``flat`` (default: the ground plane, as before relief
existed), or a preset of :data:`offroad_training.synth.relief.RELIEF_PRESETS` (``gentle``,
``rugged``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

TOPDOWN_DIR = "topdown"
SYNTH_FILE = "synth.json"


def add_parser(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` to the ``offroad data`` subcommands."""
    p = data_subparsers.add_parser(
        "synth", help="render the synthetic off-road world (unified dataset and/or rosbag2)",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, help="unified dataset root to write")
    p.add_argument("--frames", type=int, required=True, help="number of frames")
    p.add_argument("--size", default="640x544", help="WxH of the rendered frames")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the frames in the val split (dataset)")
    p.add_argument("--hfov", type=float, default=90.0, help="horizontal field of view (deg)")
    p.add_argument("--camera-height", type=float, default=1.0, help="m above the ground")
    p.add_argument("--pitch", type=float, default=12.0, help="camera pitch down (deg)")
    p.add_argument("--topdown-resolution", type=float, default=0.05, help="m per cell")
    p.add_argument("--workers", type=int, default=0, help="processes (0: min(2, CPUs))")
    p.add_argument("--restart", action="store_true", help="discard an existing dataset")
    p.add_argument("--bag", type=Path, help="also write a rosbag2 sequence here")
    p.add_argument("--rate", type=float, default=10.0, help="bag frame rate (Hz)")
    p.add_argument("--speed", type=float, default=1.5, help="bag robot speed (m/s)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    p.add_argument("--relief", default="flat",
                   help="flat (default), gentle or rugged: the world's height field")
    p.add_argument("--no-depth", action="store_true",
                   help="bag without /camera/depth/image_raw and /camera/depth/points")
    p.add_argument("--depth-encoding", choices=("16UC1", "32FC1"), default="16UC1",
                   help="bag depth image: 16UC1 millimetres (default) or 32FC1 metres")
    p.add_argument("--no-lidar", action="store_true",
                   help="bag without /lidar/points and /ground_truth/lidar_points")
    p.add_argument("--lidar-rings", type=int, default=32, help="LiDAR rings (default 32)")
    p.add_argument("--lidar-resolution", type=float, default=0.2,
                   help="LiDAR azimuth step (deg; 0.1125 gives 102400 beams with 32 rings)")
    p.add_argument("--lidar-height", type=float, default=1.2,
                   help="LiDAR height above base_link (m)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    """Entry point of ``offroad data synth``; returns the exit code."""
    from offroad_training.data.unified import parse_size

    try:
        size = parse_size(args.size)
        if size is None:
            raise ValueError("--size must be WxH (there is no native size)")
        if args.frames <= 0:
            raise ValueError("--frames must be > 0")
        if not 0.0 <= args.val_fraction < 1.0:
            raise ValueError("--val-fraction must be in [0, 1)")
        if args.out is None and args.bag is None:
            raise ValueError("give --out DIR and/or --bag PATH")
        from offroad_training.synth.lidar import LidarSpec
        from offroad_training.synth.relief import relief_spec
        from offroad_training.synth.render import TopDownSpec, default_camera

        relief_spec(args.relief)  # a bad name fails here, before anything is written
        camera = default_camera(size[0], size[1], args.hfov, args.camera_height, args.pitch)
        lidar = None if args.no_lidar else LidarSpec(
            z=args.lidar_height, rings=args.lidar_rings,
            azimuth_resolution_deg=args.lidar_resolution)
        spec = TopDownSpec(resolution=args.topdown_resolution)
        spec_shape = spec.shape
        if min(spec_shape) <= 0:
            raise ValueError("--topdown-resolution is too coarse")
        if args.out is not None:
            n = write_dataset(args.out, args.frames, camera, args.seed, args.val_fraction,
                              spec, workers=args.workers or min(2, os.cpu_count() or 1),
                              restart=args.restart, progress=not args.no_progress,
                              relief=args.relief)
            print(f"wrote {n} new frames ({args.frames} total) to {args.out}")
        if args.bag is not None:
            n = write_sequence_bag(args.bag, args.frames, camera, args.seed, args.rate,
                                   args.speed, args.storage, spec, progress=not args.no_progress,
                                   relief=args.relief, depth=not args.no_depth, lidar=lidar,
                                   depth_encoding=args.depth_encoding)
            print(f"wrote {n} frames to {args.bag} ({args.storage})")
    except (ValueError, FileExistsError) as exc:
        print(f"offroad data synth: {exc}", file=sys.stderr)
        return 2
    return 0


def frame_id(seed: int, index: int) -> str:
    """Dataset id of frame ``index`` of a dataset generated with ``seed``."""
    return f"synth{seed}_{index:06d}"


DATASET_WORLD = {"length": 160.0, "half_width": 40.0}


def frame_recipe(seed: int, index: int, relief: str = "flat"):
    """(world seed, world, robot pose) of dataset frame ``index``."""
    from offroad_training.synth.trajectory import random_track_pose
    from offroad_training.synth.world import SyntheticWorld

    world_seed = int(np.random.SeedSequence([seed, index, 0xD47A]).generate_state(1)[0])
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 0x9053]))
    world = SyntheticWorld.generate(world_seed, **DATASET_WORLD, relief=relief)
    return world_seed, world, random_track_pose(world, rng, (0.0, DATASET_WORLD["length"] - 50))


def _render_one(task: tuple) -> tuple[str, np.ndarray, dict]:
    """Worker: render and write frame ``index`` unless present; returns (id, label histogram,
    recipe record)."""
    import cv2

    from offroad_core.atomic import atomic_path
    from offroad_training.data.unified import UnifiedWriter, label_histogram, read_label
    from offroad_training.synth.render import render_frame

    root, seed, index, camera, spec, relief = task
    writer = UnifiedWriter(root)
    item = frame_id(seed, index)
    top_path = Path(root) / TOPDOWN_DIR / f"{item}.png"
    world_seed, world, pose = frame_recipe(seed, index, relief)
    if writer.has(item) and top_path.is_file():
        labels = read_label(writer.label_path(item))
    else:
        frame = render_frame(world, camera, seed=index, robot_pose=pose, topdown=spec,
                             depth=False)
        with atomic_path(top_path) as tmp:
            if not cv2.imwrite(str(tmp), frame.topdown.classes):
                raise OSError(f"could not write {top_path}")
        labels = writer.write_pair(item, frame.rgb, frame.labels)
    record = {"id": item, "world_seed": world_seed, "robot_pose": [float(v) for v in pose]}
    return item, label_histogram(labels), record


def write_dataset(root: Path, frames: int, camera, seed: int, val_fraction: float, spec,
                  workers: int = 1, restart: bool = False, progress: bool = True,
                  relief: str = "flat") -> int:
    """Write ``frames`` synthetic frames as a unified dataset under ``root``; returns the number
    of frames rendered (frames already present are skipped). ``relief`` is a preset name."""
    from offroad_core.atomic import atomic_write_text
    from offroad_training.data.unified import UnifiedWriter, split_stats
    from offroad_training.synth.bag import camera_to_dict

    root = Path(root)
    options = {"generator": "offroad_training.synth", "seed": seed, "frames": frames,
               "val_fraction": val_fraction, "camera": camera_to_dict(camera),
               "topdown": {"resolution": spec.resolution, "origin_x": spec.origin_x,
                           "origin_y": spec.origin_y, "size_x": spec.size_x,
                           "size_y": spec.size_y}, "world": DATASET_WORLD}
    if relief != "flat":  # flat datasets keep the options (and resume) they had before relief
        options["relief"] = relief
    marker = root / SYNTH_FILE
    if restart and root.exists():
        shutil.rmtree(root)
    if marker.exists():
        previous = json.loads(marker.read_text())
        if previous != options:
            raise ValueError(f"{root} was generated with other options ({marker}); use "
                             "--restart to discard it or another --out")
    elif root.exists() and any(root.iterdir()):
        raise ValueError(f"{root} exists and is not a synthetic dataset; use another --out")
    writer = UnifiedWriter(root)
    (root / TOPDOWN_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(options, indent=2) + "\n")
    atomic_write_text(root / "camera.json", json.dumps(options["camera"], indent=2) + "\n")

    todo = [i for i in range(frames) if not (writer.has(frame_id(seed, i)) and (
        root / TOPDOWN_DIR / f"{frame_id(seed, i)}.png").is_file())]
    tasks = [(root, seed, i, camera, spec, relief) for i in range(frames)]
    histograms, records = {}, []
    new_ids = {frame_id(seed, i) for i in todo}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=frames, desc="synth", unit="frame", initial=frames - len(todo))
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers, initializer=_quiet_worker)
        results = pool.imap(_render_one, tasks, chunksize=1)
    else:
        pool, results = None, map(_render_one, tasks)
    try:
        for item, hist, record in results:
            histograms[item] = hist
            records.append(record)
            if bar is not None and item in new_ids:
                bar.update(1)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if bar is not None:
            bar.close()

    n_val = round(frames * val_fraction)
    ids = [frame_id(seed, i) for i in range(frames)]
    splits = {"train": ids[:frames - n_val], "val": ids[frames - n_val:]}
    for split, members in splits.items():
        writer.write_split(split, members)
    writer.write_ontology()
    top_meta = {"frame_id": "base_link", "resolution": spec.resolution,
                "origin_x": spec.origin_x, "origin_y": spec.origin_y,
                "width": spec.shape[1], "height": spec.shape[0],
                "axes": "topdown/<id>.png pixel [row, col]: col along +x (forward), row along +y "
                        "(left); origin = outer corner of cell (row 0, col 0) in base_link of "
                        "the frame; as nav_msgs/OccupancyGrid data",
                "values": "class ids 0..6, 255 unknown",
                "frames": {r["id"]: {"world_seed": r["world_seed"], "robot_pose_xyyaw":
                                     r["robot_pose"]} for r in records}}
    atomic_write_text(root / "topdown.json", json.dumps(top_meta, indent=2) + "\n")
    stats = {"dataset": "synthetic", **split_stats(histograms, splits), "unknown_labels": {},
             "skipped": [], "options": options}
    writer.write_stats(stats)
    return len(todo)


def _quiet_worker() -> None:
    """Pool initialiser: one thread per worker (the workers already use every core)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


def write_sequence_bag(path: Path, frames: int, camera, seed: int, rate_hz: float,
                       speed: float, storage: str, spec, progress: bool = True,
                       relief: str = "flat", depth: bool = True, lidar=None,
                       depth_encoding: str = "16UC1") -> int:
    """Render a drive along the track of world ``seed`` (``relief`` preset) into a rosbag2,
    with depth (``depth``) and the scans of ``lidar`` (a ``LidarSpec`` or None); returns the
    number of frames written."""
    from offroad_training.synth.bag import write_bag
    from offroad_training.synth.render import render_frame
    from offroad_training.synth.trajectory import drive_along_track
    from offroad_training.synth.world import SyntheticWorld

    if not rate_hz > 0 or not speed >= 0:
        raise ValueError("--rate must be > 0 and --speed >= 0")
    distance = speed * frames / rate_hz
    length = max(240.0, math.ceil(distance) + 60.0)
    world = SyntheticWorld.generate(seed, length=length, relief=relief)
    states = drive_along_track(world, frames, rate_hz, speed)
    rendered = (render_frame(world, camera, seed=i, robot_pose=s.pose, time=s.time,
                             topdown=spec, depth=depth, lidar=lidar)
                for i, s in enumerate(states))
    info = {"world_seed": seed, "length": length, "half_width": 50.0, "relief": relief,
            "relief_amounts": world.relief.to_dict() if world.relief is not None else None,
            "speed": speed, "rate_hz": rate_hz,
            "regenerate": "SyntheticWorld.generate(world_seed, length=length, "
                          "half_width=half_width, relief=relief)"}
    return write_bag(path, rendered, storage=storage, rate_hz=rate_hz, progress=progress,
                     depth_encoding=depth_encoding, sidecars={"world.json": info})
