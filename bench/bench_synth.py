"""Benchmark of the synthetic renderer (``offroad data synth`` renders one frame per call).

    python bench/bench_synth.py [--frames 6] [--size 1280x1080] [--reliefs flat,gentle,rugged]

Every path runs in this process, one thread, on the same worlds and poses (robot on the track),
for each relief (``flat``: the ground plane; presets of ``synth.RELIEF_PRESETS``: the height
field, ray-marched):

- synth: ``render_frame`` as shipped (rays cached per camera, obstacles ray-tested only inside
  their projected pixel boxes, top-down class and elevation maps, depth included).
- naive baseline: the same renderer with every obstacle within range ray-tested against the
  whole image (no pixel-box culling), i.e. what a straightforward per-object ray caster does.
- LiDAR: ``render_lidar`` with 32 rings x 0.2 deg (57 600 beams, the bag default) and x
  0.1125 deg (102 400 beams).
- depth products: 16UC1 encoding and the organised camera cloud of one frame.

World generation is timed separately (``offroad data synth`` makes one world per frame).
Target: >= 2 frames/s at 1280x1080 and several frames/s at 640x544 on flat worlds; relief
costs the ray march on top (reported, not a target).
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import cv2

from offroad_training import synth
from offroad_training.synth import render


def _full_boxes(obstacles, camera, rays, pose, base_z=0.0, max_range=render.OBSTACLE_RANGE):
    culled = _ORIGINAL(obstacles, camera, rays, pose, base_z, max_range)
    h, w = camera.intrinsics.height, camera.intrinsics.width
    return [(k, (0, h, 0, w)) for k, _ in culled]


_ORIGINAL = render._obstacle_boxes


def _median(fn, items) -> float:
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_relief(relief: str, frames: int, cam) -> None:
    """Print the figures of one relief."""
    t = time.perf_counter()
    worlds = [synth.SyntheticWorld.generate(i, relief=relief) for i in range(frames)]
    gen = (time.perf_counter() - t) / frames
    poses = [(20.0 + 7 * i, float(wd.track_centre(20.0 + 7 * i)),
              float(wd.track_heading(20.0 + 7 * i))) for i, wd in enumerate(worlds)]
    items = list(zip(worlds, poses, strict=True))
    synth.render_frame(worlds[0], cam, robot_pose=poses[0])  # ray cache, mip-map

    def frame(item):
        return synth.render_frame(item[0], cam, seed=1, robot_pose=item[1])

    fast = _median(frame, items)
    with mock.patch.object(render, "_obstacle_boxes", _full_boxes):
        naive = _median(frame, items)
    lidar = {}
    for step in (0.2, 0.1125):
        spec = synth.LidarSpec(azimuth_resolution_deg=step)
        lidar[spec.rings * spec.columns] = _median(
            lambda item, spec=spec: synth.render_lidar(item[0], item[1], spec, seed=1), items)
    depth = synth.render_frame(worlds[0], cam, robot_pose=poses[0]).depth
    products = _median(lambda _: (synth.encode_depth(depth, "16UC1"),
                                  synth.depth_to_points(depth, cam)), range(frames))
    print(f"--- relief {relief}")
    print(f"world generation      {gen * 1000:8.1f} ms/world")
    print(f"synth render_frame    {fast * 1000:8.1f} ms/frame  {1 / fast:6.2f} frames/s")
    print(f"naive (no culling)    {naive * 1000:8.1f} ms/frame  {1 / naive:6.2f} frames/s")
    print(f"speed-up vs naive     {naive / fast:8.1f}x")
    for beams, seconds in lidar.items():
        print(f"render_lidar {beams:6d}  {seconds * 1000:8.1f} ms/scan")
    print(f"16UC1 + camera cloud  {products * 1000:8.1f} ms/frame")
    print(f"with a new world each frame: {1 / (fast + gen):.2f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", default="1280x1080")
    parser.add_argument("--reliefs", default="flat,gentle,rugged")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    cv2.setNumThreads(1)
    cam = synth.default_camera(w, h)
    print(f"size {w}x{h}, {args.frames} frames, 1 thread")
    for relief in args.reliefs.split(","):
        bench_relief(relief.strip(), args.frames, cam)


if __name__ == "__main__":
    main()
