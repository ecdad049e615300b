"""Both nodes' parameter values for an offline run: one params file (the ``offroad_segmentation``
and ``offroad_costmap`` sections, read as ``--params-file`` reads them) plus command-line
overrides ``[node.]name=value``. Validation is the nodes' own, done by the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from offroad_core.costmap import params as costmap_params
from offroad_core.costmap.params import PARAMETERS as COSTMAP_PARAMETERS
from offroad_core.params import ConfigError, load_params_file
from offroad_core.segmentation.params import PARAMETERS as SEGMENTATION_PARAMETERS

SEGMENTATION_NODE = "offroad_segmentation"
COSTMAP_NODE = "offroad_costmap"
NODES = {SEGMENTATION_NODE: {s.name for s in SEGMENTATION_PARAMETERS},
         COSTMAP_NODE: {s.name for s in COSTMAP_PARAMETERS}}
# Live plumbing that has no meaning for per-frame grids scored against a base_link class map.
OFFLINE_COSTMAP = {"use_odom": False, "output_frame": "base_link", "fusion": "off"}


def read_sections(path: str | Path | None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each node's values from ``path`` (empty without a file) and notes for the report.

    A file must have a section for at least one node; a missing one means that node's
    defaults (noted, not an error: e.g. ``offroad_costmap/config/costmap.yaml``).
    """
    values: dict[str, dict[str, Any]] = {node: {} for node in NODES}
    if path is None:
        return values, []
    problems: list[str] = []
    missing = []
    for node in NODES:
        try:
            values[node] = load_params_file(path, node)
        except ConfigError as exc:
            missing.append(node)
            problems += [p for p in exc.problems if p not in problems]
    if len(missing) == len(NODES):
        raise ConfigError(problems)
    return values, [f"{path} has no {node} section: that node's defaults" for node in missing]


def apply_overrides(values: dict[str, dict[str, Any]], items: list[str]) -> None:
    """Apply ``node.name=value`` (or ``name=value`` when one node alone has ``name``); values
    are YAML scalars, as in a params file."""
    import yaml

    for item in items:
        key, sep, text = item.partition("=")
        node, _, name = key.strip().rpartition(".")
        if not sep or not name:
            raise ConfigError(f"--set {item!r}: expected [node.]name=value")
        if node and node not in NODES:
            raise ConfigError(f"--set {item!r}: node must be {' or '.join(NODES)}")
        if not node:
            owners = [n for n, names in NODES.items() if name in names]
            if len(owners) != 1:
                which = "both nodes have" if owners else "no node has"
                raise ConfigError(f"--set {item!r}: {which} a parameter {name!r}; write "
                                  f"{SEGMENTATION_NODE}.{name}=... or {COSTMAP_NODE}.{name}=...")
            node = owners[0]
        try:
            values[node][name] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: not a YAML value ({exc})") from None


def offline_costmap_config(values: dict[str, Any]) -> tuple[costmap_params.CostmapConfig,
                                                            str | None]:
    """The costmap node's validation, then per-frame grids in ``base_link`` (no odometry);
    also a note when that changed the file's setting."""
    config = costmap_params.validate(values)
    note = None
    if config.use_odom or config.output_frame != "base_link":
        note = (f"use_odom {config.use_odom} / output_frame {config.output_frame} not replayed "
                "offline: every frame is scored as its own grid in base_link (no fusion)")
    return costmap_params.validate({**config.values, **OFFLINE_COSTMAP}), note
