"""Test session setup shared by every package's tests.

Each pytest session gets its own ROS domain and localhost-only discovery, so concurrent test
runs on one machine (two developers, CI and a shell) never see each other's topics, and ROS
logs go to a temporary directory.
"""

import importlib
import os
import random
import tempfile

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="offroad-ros-log-"))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

# pytest's ``--import-mode=importlib`` names a ROS package's test modules ``<pkg>.test.*`` and
# registers the ament package directory ``<pkg>/`` as a namespace module ``<pkg>``, which hides
# the real Python package ``<pkg>/<pkg>``. Import the real packages first so they win.
for _package in ("offroad_seg_node", "offroad_costmap", "offroad_replay"):
    try:
        importlib.import_module(_package)
    except ImportError:
        pass  # not built yet: its tests fail with a clear import error
