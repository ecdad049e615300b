"""The parameter mechanism both nodes share: one table of :class:`ParamSpec` per node.

A node declares every parameter of its table in one block (:func:`descriptor` gives the
``ParameterDescriptor``: description, allowed values, range, read-only), validates the values
with :func:`check_values` plus its own cross-field checks, and applies runtime changes through
the same checks (``offroad_core.node_runtime``). Problems are collected, never raised one at a
time, so a user sees every mistake of a params file at once. No ROS import at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Parameters rclpy declares on every node by itself.
BUILTIN_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})


class ConfigError(ValueError):
    """Invalid parameters; the message lists every problem."""

    def __init__(self, problems: list[str] | str) -> None:
        """Keep the individual problems; the message joins them."""
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid parameters: " + "; ".join(self.problems))


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: default value, description, allowed values or range.

    ``dynamic`` parameters can be changed at runtime (validated like at start, then applied);
    every other parameter is declared read-only and refused at runtime with that reason.
    """

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    dynamic: bool = False


def check_values(specs: tuple[ParamSpec, ...], values: dict[str, Any]) -> tuple[dict[str, Any],
                                                                             list[str]]:
    """Type, choices and range of every value; unknown names are problems too.

    Returns every parameter's value (defaults filled in, ints promoted to float where the
    default is a float) and the list of problems (empty when all is well).
    """
    problems: list[str] = []
    checked: dict[str, Any] = {}
    for spec in specs:
        value = values.get(spec.name, spec.default)
        if type(spec.default) is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(spec.default):
            problems.append(f"{spec.name}: expected {type(spec.default).__name__}, got "
                            f"{value!r}")
            continue
        if isinstance(value, float) and value != value:  # NaN passes every range comparison
            problems.append(f"{spec.name}: NaN is not a value")
            continue
        if spec.choices and value not in spec.choices:
            problems.append(f"{spec.name}: {value!r} is not one of {', '.join(spec.choices)}")
        if (spec.low is not None and value < spec.low) or (
                spec.high is not None and value > spec.high):
            problems.append(f"{spec.name}: {value} is outside [{spec.low}, {spec.high}]")
        checked[spec.name] = value
    unknown = sorted(set(values) - {s.name for s in specs} - BUILTIN_PARAMETERS)
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)} (known: see the node's "
                        "README or `--ros-args --help`)")
    return checked, problems


def descriptor(spec: ParamSpec) -> Any:
    """``rcl_interfaces/ParameterDescriptor`` with the description, choices, range, read-only."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = spec.description if spec.dynamic else (
        f"{spec.description} [read-only at runtime: restart the node to change it]")
    desc = ParameterDescriptor(description=text, read_only=not spec.dynamic)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.low is not None and isinstance(spec.default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                        to_value=float(spec.high))]
    elif spec.low is not None and isinstance(spec.default, int) and not isinstance(
            spec.default, bool):
        desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high),
                                           step=1)]
    return desc


def load_params_file(path: str | Path, node_name: str) -> dict[str, Any]:
    """A node's ``ros__parameters`` from a ROS params YAML file, as ``--params-file`` reads it.

    Sections ``/**``, ``/**/<node>``, ``/<node>`` and ``<node>`` are merged, the more specific
    winning; ``use_sim_time`` is kept (a built-in parameter). Raises :class:`ConfigError` for an
    unreadable file or a file without a section for the node.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read params file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"params file {path}: not a mapping of node sections")
    merged: dict[str, Any] = {}
    found = False
    for key in ("/**", f"/**/{node_name}", f"/{node_name}", node_name):
        section = data.get(key)
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            merged.update(section["ros__parameters"])
            found = True
    if not found:
        raise ConfigError(f"params file {path}: no '{node_name}: ros__parameters:' section")
    return merged
