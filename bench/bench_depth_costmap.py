"""Depth mode of the costmap: accuracy on relief worlds (both modes side by side) and speed.

    python bench/bench_depth_costmap.py [--worlds 3] [--poses 4] [--frames 30] [--skip-accuracy]

Accuracy (issue 16 item 6): synthetic worlds with relief (``offroad_training.synth``: hills,
grades, ditches, steps, banks; ``rugged`` and ``gentle`` presets), several track poses and
headings each. Per frame, from the renderer's exact labels, depth image and LiDAR scan:

- flat: the flat-ground projection (``CostmapPipeline`` without depth inputs);
- depth: the depth image painted with the labels;
- depth+lidar: the depth image and the LiDAR cloud (painted, occlusion against the depth).

Truth per 0.1 m cell within 8 m of the camera: the worse of the top-down class map's category
and of the terrain's own geometry (computed here from the exact elevation map, independently of
the costmap code: a height change above ``max_step`` to a 4-neighbour, or a grade over 0.4 m
above ``max_slope_deg``). Figures: agreement over the cells known in both, coverage (of the
known truth cells), unsafe cells (truth BLOCKED/HAZARD, ours FREE) and those of them not next
to one of our lethal cells (Nav2's inflation covers the others), false lethal cells (ours
BLOCKED/HAZARD, truth FREE/CAUTION, more than one cell from any truth lethal cell), obstacle
position error (distance of our lethal cells to the nearest truth lethal cell, median / 95th
percentile). Agreement of depth+lidar counts the LiDAR-only cells too, whose category is
geometry-only (CAUTION where the truth is mostly FREE): its own line says how it does inside
the camera's view.

Speed (item 7): a 640x544 depth image plus a 100k-point LiDAR cloud per frame through
``DepthCostmap.process`` (median over ``--frames``; thinning on, the default, and off), against
a naive per-point Python loop doing the same job (back-projection, painting with the depth test,
worst level per cell, step rule) in the same process, and the median time of each stage
(``DepthCostmap.timings``). The load average is printed before and after: on a shared machine
the figures move with it.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import cv2
import numpy as np

from offroad_core.camera import Camera
from offroad_core.costmap.categories import CategoryValues, LabelTable, model_categories
from offroad_core.costmap.depthmap import DepthCostmap, DepthSettings
from offroad_core.costmap.extrinsics import FrameTable, Rigid, optical_rigid
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, ModelInfo
from offroad_core.costmap.pointcloud import pack_cloud
from offroad_core.costmap.sensors import CloudMessage, DepthMessage, Paired
from offroad_core.costmap.terrain import TerrainRules
from offroad_core.ontology import CLASS_NAMES
from offroad_training.synth import (
    LidarSpec,
    SyntheticWorld,
    TopDownSpec,
    default_camera,
    render_frame,
)
from offroad_training.synth.trajectory import random_track_pose

IDS = tuple(range(len(CLASS_NAMES)))
TABLE = LabelTable.build(IDS, CLASS_NAMES, model_categories(CLASS_NAMES, (), {}))
RES, MAX_RANGE, MAX_STEP, MAX_SLOPE_DEG = 0.1, 8.0, 0.15, 25.0
PARAMS = {"resolution": RES, "camera_x": 0.3, "camera_z": 1.0, "camera_pitch": math.radians(12),
          "max_range": MAX_RANGE}
LIDAR = LidarSpec(z=1.2, rings=32)


def messages(depth: np.ndarray, pts: np.ndarray, stamp: float = 0.0):
    """(depth message, LiDAR cloud message) of a synthetic frame, as a robot would send them."""
    mm = np.nan_to_num(depth * 1000.0, nan=0.0).clip(0, 65535).astype(np.uint16)
    h, w = depth.shape
    dmsg = DepthMessage(stamp, "camera_optical_frame", "16UC1", h, w, 2 * w, mm.tobytes())
    fields, step, data = pack_cloud([("x", pts[:, 0]), ("y", pts[:, 1]), ("z", pts[:, 2])])
    cmsg = CloudMessage(stamp, "lidar_link", tuple(fields), len(pts), 1, step, step * len(pts),
                        data, False, "lidar/points")
    return dmsg, cmsg


def truth_levels(topdown) -> np.ndarray:
    """Severity level of every cell: class category, worsened by the terrain's geometry."""
    cls = topdown.classes
    level = TABLE.levels[cls].copy()
    z = topdown.elevation.astype(np.float64)
    step = np.zeros(z.shape, bool)
    step[1:] |= np.abs(z[1:] - z[:-1]) > MAX_STEP
    step[:-1] |= np.abs(z[1:] - z[:-1]) > MAX_STEP
    step[:, 1:] |= np.abs(z[:, 1:] - z[:, :-1]) > MAX_STEP
    step[:, :-1] |= np.abs(z[:, 1:] - z[:, :-1]) > MAX_STEP
    k = round(0.2 / RES)                       # grade over 0.4 m (central differences)
    gx = np.zeros_like(z)
    gy = np.zeros_like(z)
    gx[:, k:-k] = (z[:, 2 * k:] - z[:, :-2 * k]) / (4 * k * RES / 2)
    gy[k:-k] = (z[2 * k:] - z[:-2 * k]) / (4 * k * RES / 2)
    steep = np.hypot(gx, gy) > math.tan(math.radians(MAX_SLOPE_DEG))
    level[step | steep] = np.maximum(level[step | steep], 3)
    return level


VALUES = CategoryValues().level_lut()          # level -> grid value (-1 unknown)


def score(ours: np.ndarray, truth: np.ndarray, region: np.ndarray, near: np.ndarray) -> dict:
    """Per-frame counts: ``ours`` grid values, ``truth`` severity levels (0 = unknown);
    compared as grid values (BLOCKED and HAZARD are both 100) over ``region``; coverage against
    the truth within ``near``."""
    tv = VALUES[truth]
    known = region & (ours >= 0) & (truth > 0)
    lethal_t = truth >= 3
    dist = cv2.distanceTransform((~lethal_t).astype(np.uint8), cv2.DIST_L2, 5) * RES
    ours_lethal = region & (ours == 100)
    lethal_near = cv2.dilate((ours == 100).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    unsafe = region & lethal_t & (ours == 0)
    return {"agree": int((ours[known] == tv[known]).sum()), "known": int(known.sum()),
            "truth": int((near & (truth > 0)).sum()), "unsafe": int(unsafe.sum()),
            "unsafe_alone": int((unsafe & ~lethal_near).sum()),
            "false_lethal": int((ours_lethal & (dist > 1.5 * RES)).sum()),
            "errors": dist[ours_lethal & ~lethal_t].tolist() + [0.0] * int(
                (ours_lethal & lethal_t).sum())}


def robot_poses(world: SyntheticWorld, rng: np.random.Generator, n: int) -> list:
    """``n`` track poses where the robot does not stand inside an obstacle or a vehicle (the
    renderer sees through a prism from inside it: such a frame has no meaning)."""
    poses = []
    while len(poses) < n:
        x, y, yaw = random_track_pose(world, rng, (10.0, 150.0))
        gx, gy = np.meshgrid(np.linspace(-0.6, 0.9, 7), np.linspace(-0.6, 0.6, 7))
        c, s = math.cos(yaw), math.sin(yaw)
        inside = world.obstacle_class_map(x + c * gx - s * gy, y + s * gx + c * gy)
        if not np.isin(inside, [3, 5]).any():
            poses.append((x, y, yaw))
    return poses


MODES = ("flat", "depth", "depth+lidar", "depth+lidar in view")


def evaluate(n_worlds: int, n_poses: int) -> dict[str, dict]:
    """Summed counts of every mode over ``n_worlds`` x ``n_poses`` x 2 headings."""
    geom = GridGeometry.from_size(10, 10, RES, -2, -5)
    spec = TopDownSpec(RES, -2.0, -5.0, 10.0, 10.0)
    config = validate(PARAMS)
    camera = Camera(default_camera(640, 544).intrinsics, config.pose)
    flat = CostmapPipeline(config)
    flat.set_model_info(ModelInfo(IDS, CLASS_NAMES))
    flat.set_camera(camera.intrinsics)
    frames_table = FrameTable("base_link", {"camera_optical_frame": optical_rigid(config.pose),
                                            "lidar_link": Rigid.from_pose(LIDAR.pose)})
    depthmap = DepthCostmap(DepthSettings(TerrainRules(factor=1), max_range=MAX_RANGE), geom,
                            TABLE, CategoryValues(), IDS, CLASS_NAMES, frames_table)
    xs, ys = geom.cell_centres()
    near = np.hypot(xs - 0.3, ys) <= MAX_RANGE
    totals = {m: {"agree": 0, "known": 0, "truth": 0, "unsafe": 0, "unsafe_alone": 0,
                  "false_lethal": 0, "errors": [], "frames": 0} for m in MODES}
    n = 0
    for w in range(n_worlds):
        world = SyntheticWorld.generate(100 + w, relief="rugged" if w % 2 == 0 else "gentle")
        rng = np.random.default_rng(w)
        for x, y, yaw in robot_poses(world, rng, n_poses):
            for dyaw in (0.0, 0.6):                       # along the track, and off it
                frame = render_frame(world, camera, seed=n, robot_pose=(x, y, yaw + dyaw),
                                     topdown=spec, lidar=LIDAR)
                truth = truth_levels(frame.topdown)
                dmsg, cmsg = messages(frame.depth, frame.lidar.points)
                values = {"flat": flat.process(frame.labels, 0.0, 0.0).values}
                for mode, paired in (("depth", Paired(depth=dmsg)),
                                     ("depth+lidar", Paired(depth=dmsg, clouds=[cmsg]))):
                    values[mode] = depthmap.process(frame.labels, camera, None, paired, 0.0,
                                                    print).values
                values["depth+lidar in view"] = values["depth+lidar"]
                view = values["depth"] >= 0
                for mode, v in values.items():
                    region = near & view if mode == "depth+lidar in view" else near
                    for k, c in score(v, truth, region, near).items():
                        totals[mode][k] += c
                    totals[mode]["frames"] += 1
                n += 1
    return totals


def figures(t: dict) -> dict[str, float]:
    """Agreement and coverage (%), unsafe and false lethal cells, obstacle errors (m)."""
    err = np.asarray(t["errors"]) if t["errors"] else np.zeros(1)
    return {"agreement": 100 * t["agree"] / max(t["known"], 1),
            "coverage": 100 * t["known"] / max(t["truth"], 1), "unsafe": t["unsafe"],
            "unsafe_alone": t["unsafe_alone"], "false_lethal": t["false_lethal"],
            "error_p50": float(np.median(err)), "error_p95": float(np.percentile(err, 95))}


def accuracy(n_worlds: int, n_poses: int) -> None:
    """Print both modes' figures side by side."""
    totals = evaluate(n_worlds, n_poses)
    print(f"accuracy: {totals['flat']['frames']} frames ({n_worlds} relief worlds x {n_poses} "
          f"poses x 2 headings), 0.1 m cells within {MAX_RANGE:g} m, labels/depth 640x544 "
          f"(exact), terrain 0.1 m, LiDAR {LIDAR.rings} rings")
    for mode in MODES:
        f = figures(totals[mode])
        print(f"  {mode:20s} agreement {f['agreement']:6.2f} %  coverage {f['coverage']:5.1f} %"
              f"  unsafe {f['unsafe']:5d} ({f['unsafe_alone']} not next to our lethal)  false "
              f"lethal {f['false_lethal']:5d}  obstacle error median {f['error_p50']:.2f} m "
              f"p95 {f['error_p95']:.2f} m")


def naive(frame_depth: np.ndarray, labels: np.ndarray, camera: Camera, pts: np.ndarray,
          to_base: Rigid, geom: GridGeometry) -> np.ndarray:
    """Per-point Python loop: back-project, paint with the depth test, worst level, steps."""
    intr, pose = camera.intrinsics, camera.pose
    rot, org = pose.rotation_optical, pose.translation
    zmin: dict[int, float] = {}
    worst: dict[int, int] = {}
    entries = []
    h, w = labels.shape
    for v in range(h):
        for u in range(w):
            d = float(frame_depth[v, u])
            if not d > 0:
                continue
            p = org + rot @ np.array([(u - intr.cx) / intr.fx * d, (v - intr.cy) / intr.fy * d,
                                      d])
            entries.append((p, int(labels[v, u])))
    for q in pts:
        p = to_base.rotation @ q + to_base.translation
        o = rot.T @ (p - org)
        lab = 255
        if o[2] > 0.05:
            u, v = int(intr.fx * o[0] / o[2] + intr.cx + 0.5), int(intr.fy * o[1] / o[2]
                                                                   + intr.cy + 0.5)
            if 0 <= u < w and 0 <= v < h:
                d = frame_depth[v, u]
                if not d > 0 or o[2] <= d + max(0.15, 0.03 * d):
                    lab = int(labels[v, u])
        entries.append((p, lab))
    cells = []
    for p, lab in entries:
        c = int(geom.cell_index(np.array([p[0]]), np.array([p[1]]))[0])
        if c >= 0:
            zmin[c] = min(zmin.get(c, math.inf), float(p[2]))
            cells.append((c, float(p[2]), lab))
    for c, z, lab in cells:
        level = int(TABLE.levels[lab]) or 2
        if z - zmin[c] > MAX_STEP and not TABLE.vertical[lab]:
            level = max(level, 3)
        worst[c] = max(worst.get(c, 0), level)
    out = np.zeros(geom.num_cells, np.uint8)
    for c, level in worst.items():
        out[c] = level
    return out


def speed(n_frames: int) -> None:
    world = SyntheticWorld.generate(7, relief="rugged")
    camera = default_camera(640, 544)
    lidar = LidarSpec(z=1.2, rings=64, azimuth_resolution_deg=0.2)   # 64 x 1800 beams
    frame = render_frame(world, camera, seed=1, robot_pose=(40.0, float(
        world.track_centre(np.array([40.0]))[0]), 0.0), topdown=None, lidar=lidar)
    pts = frame.lidar.points
    reps = math.ceil(100_000 / len(pts))
    pts = np.concatenate([pts] * reps)[:100_000]                     # exactly 100k points
    dmsg, cmsg = messages(frame.depth, pts)
    geom = GridGeometry.from_size(10, 10, 0.05, -2, -5)
    config = validate({**PARAMS, "resolution": 0.05})
    table = FrameTable("base_link", {"camera_optical_frame": optical_rigid(config.pose),
                                     "lidar_link": Rigid.from_pose(lidar.pose)})
    cam = Camera(camera.intrinsics, config.pose)
    paired = Paired(depth=dmsg, clouds=[cmsg])
    load_before = os.getloadavg()[0]
    results, stages = {}, {}
    for thinning in (True, False):
        dm = DepthCostmap(DepthSettings(TerrainRules(factor=2), max_range=MAX_RANGE,
                                        thinning=thinning), geom, TABLE, CategoryValues(), IDS,
                          CLASS_NAMES, table)
        t0 = time.perf_counter()
        dm.process(frame.labels, cam, None, paired, 0.0, print)
        build = time.perf_counter() - t0
        times, laps = [], []
        for _ in range(n_frames):
            t0 = time.perf_counter()
            dm.process(frame.labels, cam, None, paired, 0.0, print)
            times.append(time.perf_counter() - t0)
            laps.append(dm.timings)
        results[thinning] = (statistics.median(times), np.percentile(times, 90), build,
                             len(dm.projector.kept))
        stages[thinning] = {k: statistics.median(lap[k] for lap in laps) for k in laps[0]}
    med = results[True][0]
    t0 = time.perf_counter()
    naive(frame.depth, frame.labels, cam, pts, Rigid.from_pose(lidar.pose), geom)
    base = time.perf_counter() - t0
    print(f"speed: 640x544 depth image + {len(pts)} LiDAR points -> 200x200 cells at 0.05 m "
          f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on "
          f"{os.cpu_count()} cores)")
    for thinning, (m, p90, build, kept) in results.items():
        print(f"  depth mode, thinning {'on ' if thinning else 'off'} ({kept} of "
              f"{640 * 544} pixels)  median {m * 1e3:7.2f} ms  p90 {p90 * 1e3:.2f} ms "
              f"({n_frames} frames; first frame with tables {build * 1e3:.0f} ms)")
        print("    stages (median ms): " + ", ".join(
            f"{k} {v * 1e3:.2f}" for k, v in stages[thinning].items()))
    print(f"  naive per-point loop  {base * 1e3:7.0f} ms (one frame)   ratio {base / med:6.0f}x")
    print("  targets: <= 5 ms median, >= 20x the naive loop")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", type=int, default=3)
    ap.add_argument("--poses", type=int, default=4)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    if not args.skip_accuracy:
        accuracy(args.worlds, args.poses)
    speed(args.frames)


if __name__ == "__main__":
    main()
