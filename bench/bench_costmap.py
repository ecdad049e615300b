"""Benchmark of the costmap projection: 544x640 labels -> 10 m x 10 m grid at 0.05 m.

    python bench/bench_costmap.py [--frames 100] [--baseline-frames 20]

Both paths run in this process on the same label frames (ray-cast scenes with ground patches and
vertical obstacles, camera 1.0 m high, 15 deg down, 90 deg horizontal field of view):

- costmap: ``GroundProjector.project`` with tables built once (one gather of the ray samples,
  contact/occlusion on the sample grid, one bincount reduce). The one-off table build is
  reported separately.
- naive baseline: what a node does without lookup tables: every frame, every pixel's ray is
  computed (undistortion, rotation), intersected with the ground, binned into cells, and the
  worst category per cell is kept with ``np.maximum.at`` (flat-ground projection, no obstacle
  handling at all: it is also the wrong answer, see the README).

Targets: costmap median <= 2 ms per frame, >= 20x faster than the baseline median.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose
from offroad_core.costmap.categories import CategoryValues, LabelTable
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.projection import GroundProjector, ProjectionTables
from offroad_core.ontology import CATEGORY_OF, CLASS_NAMES

WIDTH, HEIGHT = 640, 544
SKY, OBSTACLE = 6, 3


def render_labels(camera: Camera, seed: int) -> np.ndarray:
    """Labels of a flat world with round class patches and box obstacles (ray cast)."""
    rng = np.random.default_rng(seed)
    rays = camera.pixel_rays_base(camera.intrinsics.pixel_grid())
    origin = camera.pose.translation
    down = rays[:, 2] < -1e-9
    t = np.where(down, -origin[2] / np.where(down, rays[:, 2], -1.0), np.inf)
    ground = origin[:2] + rays[:, :2] * np.where(down, t, 0.0)[:, None]
    labels = np.full(len(rays), SKY, np.uint8)
    labels[down] = 0
    for _ in range(10):
        cx, cy, r = rng.uniform(1, 10), rng.uniform(-5, 5), rng.uniform(0.5, 2.0)
        inside = down & ((ground[:, 0] - cx) ** 2 + (ground[:, 1] - cy) ** 2 <= r * r)
        labels[inside] = rng.choice([1, 2, 4])
    for _ in range(6):                      # vertical boxes: slab intersection per ray
        cx, cy = rng.uniform(2.5, 9), rng.uniform(-4, 4)
        hx, hy, height = rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.8), rng.uniform(0.3, 2.5)
        tmin, tmax = np.zeros(len(rays)), np.full(len(rays), np.inf)
        for axis, centre, half in ((0, cx, hx), (1, cy, hy)):
            d = np.where(np.abs(rays[:, axis]) > 1e-12, rays[:, axis], 1e-12)
            ta, tb = (centre - half - origin[axis]) / d, (centre + half - origin[axis]) / d
            tmin, tmax = np.maximum(tmin, np.minimum(ta, tb)), np.minimum(tmax, np.maximum(ta, tb))
        z = origin[2] + tmin * rays[:, 2]
        hit = (tmin <= tmax) & (tmin < t) & (z >= 0) & (z <= height)
        labels[hit] = rng.choice([OBSTACLE, 5])
        t = np.where(hit, tmin, t)
    return labels.reshape(HEIGHT, WIDTH)


def naive_project(camera: Camera, geometry: GridGeometry, labels: np.ndarray,
                  levels: np.ndarray, value_lut: np.ndarray, max_range: float) -> np.ndarray:
    """Per-frame, per-pixel flat-ground projection with a worst-wins scatter (the baseline)."""
    uv = camera.intrinsics.pixel_grid()
    xy, hits = camera.pixels_to_ground(uv, max_range)
    cell = geometry.cell_index(xy[:, 0], xy[:, 1])
    ok = hits & (cell >= 0)
    out = np.zeros(geometry.num_cells, np.uint8)
    np.maximum.at(out, cell[ok], levels[labels.ravel()[ok]])
    return value_lut[out].reshape(geometry.ny, geometry.nx)


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    """Run both paths and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--baseline-frames", type=int, default=20)
    args = parser.parse_args()

    camera = Camera(CameraIntrinsics.from_fov(WIDTH, HEIGHT, 90),
                    CameraPose(0.3, 0.0, 1.0, 0.0, math.radians(15), 0.0))
    geometry = GridGeometry.from_size(10.0, 10.0, 0.05, -2.0, -5.0)
    max_range = 8.0
    frames = [render_labels(camera, seed) for seed in range(8)]
    table = LabelTable.build(range(len(CLASS_NAMES)), CLASS_NAMES, dict(CATEGORY_OF))
    values = CategoryValues()

    t0 = time.perf_counter()
    tables = ProjectionTables.build(camera, geometry, max_range)
    build_ms = (time.perf_counter() - t0) * 1e3
    projector = GroundProjector(tables, table, values)
    lut = values.level_lut()
    for labels in frames[:3]:                         # warm-up
        projector.project(labels)
        naive_project(camera, geometry, labels, table.levels, lut, max_range)
    # Interleaved, so that load from other processes hits both paths alike.
    fast, naive = [], []
    every = max(1, args.frames // max(1, args.baseline_frames))
    for i in range(args.frames):
        labels = frames[i % len(frames)]
        fast.append(timed(projector.project, labels))
        if i % every == 0 and len(naive) < args.baseline_frames:
            naive.append(timed(naive_project, camera, geometry, labels, table.levels, lut,
                               max_range))

    fast_med, naive_med = statistics.median(fast), statistics.median(naive)
    print(f"labels {WIDTH}x{HEIGHT} -> grid {geometry.nx}x{geometry.ny} cells at "
          f"{geometry.resolution} m, max_range {max_range} m")
    print(f"tables (once per camera model + grid): {build_ms:.0f} ms, "
          f"{tables.shape[0]}x{tables.shape[1]} ray samples")
    print(f"costmap per frame  : median {fast_med:.2f} ms, p90 "
          f"{np.percentile(fast, 90):.2f} ms over {len(fast)} frames (target <= 2 ms)")
    print(f"naive per frame    : median {naive_med:.2f} ms over {len(naive)} frames")
    print(f"speed-up           : {naive_med / fast_med:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
