"""ament_python build of offroad_seg_node."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "offroad_seg_node"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Off-road perception maintainers",
    maintainer_email="maintainers@offroad-perception.invalid",
    description="Camera image to traversability labels on the Hexagon NPU.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "segmentation_node = offroad_seg_node:main",
        ],
    },
)
