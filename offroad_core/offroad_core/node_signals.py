"""SIGINT and SIGTERM as a request to stop a node process, never as an exception.

Python turns SIGINT into ``KeyboardInterrupt`` raised at whatever bytecode the main thread
runs: inside rclpy's conversion of a message being taken it surfaces as ``RuntimeError: Unable
to convert call argument``, during cleanup or interpreter teardown as death by signal (exit
-2), and SIGTERM (launch's escalation) kills the process outright (-15). Launch reports all of
these as a crash. With :func:`defer_stop_signals` both signals only record the request; rclpy's
own handler (installed by ``rclpy.init``, it chains to ours) shuts the context down and wakes
the executor, so ``spin`` returns and the node stops cleanly. :func:`ignore_stop_signals` is for
the process's last moments: ``SIG_IGN`` is the one disposition Python keeps through interpreter
teardown, so a late second signal cannot turn a clean exit into a death by signal.

Only a signal in the first moments of a process (interpreter start, before the console script
calls :func:`defer_stop_signals`) still ends it the default way: no Python code can run sooner.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


def defer_stop_signals() -> dict[int, Any]:
    """From now on SIGINT/SIGTERM only record a stop request. Returns the handlers it replaced
    (for :func:`restore_signals`); nothing happens outside the main thread (signal handlers
    can only be set there)."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not _record:
                previous[signum] = signal.signal(signum, _record)
    return previous


def restore_signals(previous: dict[int, Any]) -> None:
    """Undo :func:`defer_stop_signals` (for code that runs inside a longer-lived process, e.g.
    a command called in-process) and forget the stop request; nothing if that call replaced
    nothing (signals were deferred already, by an outer caller)."""
    if previous:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()


def stop_requested() -> int | None:
    """The first stop signal received since :func:`defer_stop_signals`, or None."""
    return _received[0] if _received else None


def ignore_stop_signals() -> None:
    """Ignore SIGINT/SIGTERM for the rest of the process (its exit status is decided)."""
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def _record(signum: int, _frame: Any) -> None:
    if not _received:
        _received.append(signum)
