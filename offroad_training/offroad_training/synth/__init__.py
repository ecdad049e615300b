"""The synthetic off-road world: procedural worlds, a ray-casting renderer with exact labels and
top-down ground truth, robot trajectories and rosbag2 writing. See docs/synthetic_world.md."""

from offroad_training.synth.render import (
    DEFAULT_TOPDOWN,
    SyntheticFrame,
    TopDownMap,
    TopDownSpec,
    default_camera,
    render_frame,
    render_topdown,
)
from offroad_training.synth.world import Appearance, Obstacle, SyntheticWorld

__all__ = [
    "DEFAULT_TOPDOWN",
    "Appearance",
    "Obstacle",
    "SyntheticFrame",
    "SyntheticWorld",
    "TopDownMap",
    "TopDownSpec",
    "default_camera",
    "render_frame",
    "render_topdown",
]
