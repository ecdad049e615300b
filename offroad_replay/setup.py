"""ament_python build of offroad_replay."""

from setuptools import find_packages, setup

PACKAGE = "offroad_replay"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Off-road perception maintainers",
    maintainer_email="maintainers@offroad-perception.invalid",
    description="Bag replay into the ROS graph and offline evaluation of bags.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "replay = offroad_replay.replay_node:main",
        ],
        # `offroad replay` and `offroad evaluate-bag` (offroad_training.cli loads this group).
        "offroad.commands": [
            "replay = offroad_replay.replay_node:register",
            "evaluate-bag = offroad_replay.evaluate_bag:register",
        ],
    },
)
