"""The ``offroad`` command line.

Subcommands live next to the code they drive; each command module exposes
``register(subparsers)`` that adds its parsers and sets ``func`` (called with the parsed
arguments, returning an exit code). Command modules import only light modules at import time so
``offroad --help`` stays fast; heavy imports (torch, onnxruntime) happen inside ``func``.
``offroad data synth`` joins the ``data`` group here (:data:`DATA_EXTENSIONS`), so the data
layer never imports the synthetic world.

ROS packages add commands (``replay``, ``evaluate-bag``) through the ``offroad.commands`` entry
point group, so this package never imports ROS.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import entry_points

COMMAND_MODULES = (
    "offroad_training.data.commands",
    "offroad_training.train.commands",
    "offroad_training.deploy.commands",
)
DATA_EXTENSIONS = ("offroad_training.synth.commands",)
"""Modules whose ``add_parser(data_subparsers)`` adds a command to ``offroad data``."""
ENTRY_POINT_GROUP = "offroad.commands"


def _optional_module(name: str):  # a module, or None when that part is not installed
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="offroad",
        description="Off-road perception: data, training, evaluation and deployment to the "
                    "Dragonwing IQ-9075 NPU.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}
    for name in COMMAND_MODULES:
        module = _optional_module(name)
        if module is not None:  # else that command group is not part of this installation
            groups[name] = module.register(subparsers)
    data_sub = groups.get("offroad_training.data.commands")
    for name in DATA_EXTENSIONS if data_sub is not None else ():
        module = _optional_module(name)
        if module is not None:
            module.add_parser(data_sub)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``offroad`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
