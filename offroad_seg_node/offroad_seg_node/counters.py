"""Thread-safe frame counters and per-stage timing statistics of the segmentation node."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

STAGES = ("preprocess", "inference", "postprocess", "age")


@dataclass
class Snapshot:
    """A consistent copy of the counters at one instant."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    engine_errors: int = 0
    last_error: str = ""
    mean_ms: dict[str, float] = field(default_factory=dict)  # per stage, since last snapshot
    max_ms: dict[str, float] = field(default_factory=dict)
    window_processed: int = 0  # frames processed since the previous snapshot


class FrameCounters:
    """Counters shared by the callback thread (received, dropped) and the worker (the rest)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received = 0
        self._processed = 0
        self._dropped = 0
        self._rejected: Counter[str] = Counter()
        self._engine_errors = 0
        self._last_error = ""
        self._window: dict[str, list[float]] = {s: [] for s in STAGES}

    def received(self, dropped: bool) -> None:
        """Count a received frame, and the pending frame it replaced if ``dropped``."""
        with self._lock:
            self._received += 1
            self._dropped += int(dropped)

    def dropped(self, n: int = 1) -> None:
        """Count frames discarded without processing (e.g. pending at deactivation)."""
        with self._lock:
            self._dropped += n

    def rejected(self, reason: str, message: str) -> None:
        """Count a frame refused as bad input, by stable ``reason`` key."""
        with self._lock:
            self._rejected[reason] += 1
            self._last_error = message

    def engine_error(self, message: str) -> None:
        """Count a frame the engine failed on."""
        with self._lock:
            self._engine_errors += 1
            self._last_error = message

    def processed(self, stage_ms: dict[str, float]) -> None:
        """Count a processed frame with its stage durations (keys from :data:`STAGES`)."""
        with self._lock:
            self._processed += 1
            for stage, ms in stage_ms.items():
                self._window[stage].append(ms)

    @property
    def totals(self) -> tuple[int, int, int, int]:
        """(received, processed, dropped, rejected) totals."""
        with self._lock:
            return (self._received, self._processed, self._dropped,
                    sum(self._rejected.values()))

    def snapshot(self) -> Snapshot:
        """Return the counters and the timing window since the last snapshot (then reset it)."""
        with self._lock:
            window, self._window = self._window, {s: [] for s in STAGES}
            return Snapshot(
                received=self._received, processed=self._processed, dropped=self._dropped,
                rejected=sum(self._rejected.values()), rejected_by_reason=dict(self._rejected),
                engine_errors=self._engine_errors, last_error=self._last_error,
                mean_ms={s: sum(v) / len(v) for s, v in window.items() if v},
                max_ms={s: max(v) for s, v in window.items() if v},
                window_processed=len(window["inference"]))
