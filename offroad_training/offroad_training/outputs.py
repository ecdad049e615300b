"""Checks of output paths, made before a command does its work (so a bad ``--out`` costs no
export or evaluation and leaves nothing behind)."""

from __future__ import annotations

from pathlib import Path

from offroad_core.exit_codes import CommandError


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """Refuse a file path that cannot be written: a directory, or under a file."""
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{flag} {path} is a directory; name the file to write")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise CommandError(f"{flag} {path}: {parent} is a file, not a directory")
    return path
