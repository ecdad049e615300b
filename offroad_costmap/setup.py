"""ament_python build of offroad_costmap."""

import os
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "offroad_costmap"
# The repository's launch/ directory (perception + replay launch files and their params) is
# installed with this package, the top of the dependency chain: `ros2 launch offroad_costmap
# offroad_perception.launch.py`. data_files must be relative to this package's source directory
# (colcon links them from there); the glob resolves it, as colcon may run setup.py elsewhere.
SOURCE_DIR = Path(__file__).resolve().parent
LAUNCH_DIR = SOURCE_DIR.parent / "launch"


def _relative(pattern: str) -> list[str]:
    """Files matching ``pattern`` (absolute), relative to SOURCE_DIR, sorted."""
    return sorted(os.path.relpath(p, SOURCE_DIR) for p in glob(pattern))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*")),
        (f"share/{PACKAGE}/launch", _relative(str(LAUNCH_DIR / "*.launch.py"))),
        (f"share/{PACKAGE}/launch/config", _relative(str(LAUNCH_DIR / "config" / "*.yaml"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Off-road perception maintainers",
    maintainer_email="maintainers@offroad-perception.invalid",
    description="Traversability labels to a Nav2 OccupancyGrid.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "costmap_node = offroad_costmap.costmap_node:main",
        ],
        # `offroad evaluate-bag` (offroad_training.cli loads this group; no ROS import there).
        "offroad.commands": [
            "evaluate-bag = offroad_costmap.bag_evaluation:register",
        ],
    },
)
