"""The synthetic off-road world: procedural worlds with optional relief, a ray-casting renderer
with exact labels and depth, a LiDAR, top-down ground truth (classes and elevation), robot
trajectories and rosbag2 writing. See docs/synthetic_world.md."""

from offroad_training.synth.depth import decode_depth, depth_to_points, encode_depth
from offroad_training.synth.lidar import LidarScan, LidarSpec, render_lidar
from offroad_training.synth.relief import RELIEF_PRESETS, HeightField, ReliefSpec
from offroad_training.synth.render import SyntheticFrame, default_camera, render_frame
from offroad_training.synth.topdown import (
    DEFAULT_TOPDOWN,
    TopDownMap,
    TopDownSpec,
    render_topdown,
)
from offroad_training.synth.world import Appearance, Obstacle, SyntheticWorld

__all__ = [
    "DEFAULT_TOPDOWN",
    "RELIEF_PRESETS",
    "Appearance",
    "HeightField",
    "LidarScan",
    "LidarSpec",
    "Obstacle",
    "ReliefSpec",
    "SyntheticFrame",
    "SyntheticWorld",
    "TopDownMap",
    "TopDownSpec",
    "decode_depth",
    "default_camera",
    "depth_to_points",
    "encode_depth",
    "render_frame",
    "render_lidar",
    "render_topdown",
]
