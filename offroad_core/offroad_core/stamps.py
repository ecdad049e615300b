"""ROS time stamps (``builtin_interfaces/Time`` or any object with ``sec`` and ``nanosec``)."""

from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def stamp_ns(stamp: Any) -> int:
    """A stamp in integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_seconds(stamp: Any) -> float:
    """A stamp in seconds."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9
