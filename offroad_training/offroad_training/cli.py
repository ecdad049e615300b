"""The ``offroad`` command line.

Subcommands live next to the code they drive; each command module exposes
``register(subparsers)`` that adds its parsers and sets ``func`` (called with the parsed
arguments, returning an exit code). Command modules import only light modules at import time so
``offroad --help`` stays fast; heavy imports (torch, onnxruntime) happen inside ``func``.
``offroad data synth`` joins the ``data`` group here (:data:`DATA_EXTENSIONS`), so the data
layer never imports the synthetic world.

ROS packages add commands (``replay``, ``evaluate-bag``) through the ``offroad.commands`` entry
point group, so this package never imports ROS.

Exit codes (:mod:`offroad_core.exit_codes`): :func:`main` turns bad input into one line on
stderr (``offroad <command>: <what is wrong>``) and status 2: every
:class:`~offroad_core.exit_codes.CommandError` (the domain errors of data, model, train and
export derive from it), the core's domain errors in :data:`DOMAIN_ERRORS`, and an ``OSError``
naming a file (missing, unwritable, a directory where a file belongs). Anything else is a bug:
its traceback is printed and the status is 1. Ctrl-C gives 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import entry_points

from offroad_core.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, CommandError

COMMAND_MODULES = (
    "offroad_training.data.commands",
    "offroad_training.train.commands",
    "offroad_training.deploy.commands",
)
DATA_EXTENSIONS = ("offroad_training.synth.commands",)
"""Modules whose ``add_parser(data_subparsers)`` adds a command to ``offroad data``."""
ENTRY_POINT_GROUP = "offroad.commands"
DOMAIN_ERRORS = (("offroad_core.evaluation", "EvaluationError"),
                 ("offroad_core.engine", "EngineError"),
                 ("offroad_core.contract", "ContractError"))
"""Bad-input errors of modules outside this package (checked only once they are imported)."""


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


def _is_bad_input(exc: BaseException) -> bool:
    if isinstance(exc, CommandError):
        return True
    if isinstance(exc, OSError) and exc.filename is not None:
        return True
    for module, name in DOMAIN_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def one_line(exc: BaseException) -> str:
    """The exception as one line (a DataLoader worker's error: its original message)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip()
    if "Original Traceback" in text:  # re-raised in the main process by a DataLoader
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        text = last.split(": ", 1)[1] if ": " in last else last
    return text.splitlines()[0] if text else type(exc).__name__


def _command_name(args: argparse.Namespace) -> str:
    parts = [getattr(args, key, None) for key in ("command", "data_command", "format")]
    return " ".join(p for p in parts if isinstance(p, str))


def main(argv: list[str] | None = None) -> int:
    """Run the ``offroad`` command; returns the process exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not _is_bad_input(exc):
            raise  # a bug: traceback, exit status 1
        print(f"offroad {_command_name(args)}: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
