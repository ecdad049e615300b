"""Test session setup shared by every package's tests.

Each pytest session gets its own ROS domain and localhost-only discovery, so concurrent test
runs on one machine (two developers, CI and a shell) never see each other's topics, and ROS
logs go to a temporary directory.
"""

import os
import random
import tempfile

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="offroad-ros-log-"))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
