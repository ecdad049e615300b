"""Benchmark of the synthetic renderer (``offroad data synth`` renders one frame per call).

    python bench/bench_synth.py [--frames 6] [--size 1280x1080]

Both paths run in this process, one thread, on the same worlds and poses (robot on the track):

- synth: ``render_frame`` as shipped (rays cached per camera, obstacles ray-tested only inside
  their projected pixel boxes, top-down map included).
- naive baseline: the same renderer with every obstacle within range ray-tested against the
  whole image (no pixel-box culling), i.e. what a straightforward per-object ray caster does.

World generation is timed separately (``offroad data synth`` makes one world per frame).
Target: >= 2 frames/s at 1280x1080 and several frames/s at 640x544.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", default="1280x1080")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    cv2.setNumThreads(1)
    cam = synth.default_camera(w, h)
    t = time.perf_counter()
    worlds = [synth.SyntheticWorld.generate(i) for i in range(args.frames)]
    gen = (time.perf_counter() - t) / args.frames
    poses = [(20.0 + 7 * i, float(wd.track_centre(20.0 + 7 * i)),
              float(wd.track_heading(20.0 + 7 * i))) for i, wd in enumerate(worlds)]
    synth.render_frame(worlds[0], cam, robot_pose=poses[0])  # ray cache

    def run() -> list[float]:
        times = []
        for world, pose in zip(worlds, poses, strict=True):
            t0 = time.perf_counter()
            synth.render_frame(world, cam, seed=1, robot_pose=pose)
            times.append(time.perf_counter() - t0)
        return times

    fast = run()
    with mock.patch.object(render, "_obstacle_boxes", _full_boxes):
        naive = run()
    f, n = statistics.median(fast), statistics.median(naive)
    print(f"size {w}x{h}, {args.frames} frames, 1 thread")
    print(f"world generation      {gen * 1000:8.1f} ms/world")
    print(f"synth render_frame    {f * 1000:8.1f} ms/frame  {1 / f:6.2f} frames/s")
    print(f"naive (no culling)    {n * 1000:8.1f} ms/frame  {1 / n:6.2f} frames/s")
    print(f"speed-up vs naive     {n / f:8.1f}x")
    print(f"with a new world each frame: {1 / (f + gen):.2f} frames/s")


if __name__ == "__main__":
    main()
