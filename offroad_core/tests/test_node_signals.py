"""offroad_core.node_signals in this process: a deferred SIGINT/SIGTERM is recorded, never
raised, and restoring puts the previous handlers back (the process-level behaviour under
traffic is tests/test_shutdown.py)."""

import os
import signal
import time

from offroad_core import node_signals


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the Python-level handler runs at the next bytecode boundary


def test_deferred_signals_are_requests_and_restore_undoes_them():
    before = {s: signal.getsignal(s) for s in node_signals.STOP_SIGNALS}
    previous = node_signals.defer_stop_signals()
    try:
        assert set(previous) == set(node_signals.STOP_SIGNALS)
        assert node_signals.defer_stop_signals() == {}  # nested: nothing replaced again
        assert node_signals.stop_requested() is None
        _deliver(signal.SIGTERM)  # would kill the process undeferred
        _deliver(signal.SIGINT)  # would raise KeyboardInterrupt
        assert node_signals.stop_requested() == signal.SIGTERM  # the first one counts
        node_signals.restore_signals({})  # an inner caller's restore changes nothing
        assert node_signals.stop_requested() == signal.SIGTERM
    finally:
        node_signals.restore_signals(previous)
    assert node_signals.stop_requested() is None
    assert {s: signal.getsignal(s) for s in node_signals.STOP_SIGNALS} == before
