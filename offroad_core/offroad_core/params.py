"""Parameter specifications shared by our nodes (segmentation and costmap).

Each node declares all its parameters in one block from a tuple of :class:`ParamSpec`; the
pure-Python ``params`` modules validate the values, and :func:`descriptor` turns a spec into
the ``ParameterDescriptor`` (description, allowed values, numeric range) the node declares it
with, so ``ros2 param describe`` shows the same text as the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: default value, description and allowed values/range."""

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


def descriptor(spec: ParamSpec) -> Any:
    """``rcl_interfaces/ParameterDescriptor`` with the description, choices and range."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = ParameterDescriptor(description=spec.description)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.low is not None and isinstance(spec.default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                        to_value=float(spec.high))]
    elif spec.low is not None and isinstance(spec.default, int):
        desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high),
                                           step=1)]
    return desc
