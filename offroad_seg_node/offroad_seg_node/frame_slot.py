"""Latest-frame-only hand-over between the subscription callback and the processing thread."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestFrameSlot(Generic[T]):
    """A one-element mailbox: a new item replaces the pending one, which counts as dropped.

    A slow model therefore never builds a queue: the worker always takes the newest frame, at
    most one camera period old when the worker becomes free.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> bool:
        """Store ``item``; return True if it replaced a pending (now dropped) item."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """Wait up to ``timeout`` s for an item and remove it; None on timeout or when closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> bool:
        """Discard the pending item; return True if there was one."""
        with self._cond:
            had, self._item = self._item is not None, None
            return had

    def close(self) -> None:
        """Wake every waiting :meth:`take` (it returns None from now on unless an item is put)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Undo :meth:`close` (a lifecycle node is activated again)."""
        with self._cond:
            self._closed = False
