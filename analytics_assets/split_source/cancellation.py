"""Stopping a sync on request: SIGTERM, Ctrl+C, a Dagster "Terminate".

A ``Cancellation`` is handed to the source (``split_source(..., cancellation=...)``). Every
wait of the client (pacing, backoff, a rate-limit pause) waits on it instead of sleeping, and
every request in flight registers a callback that closes its connection, so a request whose
server stalls ends at once instead of when its deadline runs out. Worker threads then raise
``SyncCancelled`` and dlt's extract pool can shut down: nothing is left blocking.

Signals are delivered to a process, not to one sync, so a signal handler calls
``cancel_all()``: it cancels every ``Cancellation`` alive in the process.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable

from analytics_assets.split_source.errors import SyncCancelled

_alive: weakref.WeakSet[Cancellation] = weakref.WeakSet()
_alive_lock = threading.Lock()


class Cancellation:
    """A one-way switch that stops every wait and request of one sync."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = "stopped"
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        with _alive_lock:
            _alive.add(self)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason

    def cancel(self, reason: str = "stopped") -> None:
        """Stop: wake every waiter and abort every request in flight. Idempotent."""
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            # closing a socket that is already gone is fine
            with contextlib.suppress(Exception):
                callback()

    def check(self) -> None:
        """Raise ``SyncCancelled`` if the sync was stopped."""
        if self._event.is_set():
            raise SyncCancelled(f"The sync was {self._reason}.")

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` unless cancelled first; raises ``SyncCancelled`` then."""
        self.check()
        if seconds > 0 and self._event.wait(seconds):
            self.check()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` when cancelled (at once if already); returns an unregister function."""
        with self._lock:
            if not self._event.is_set():
                token = self._next_id
                self._next_id += 1
                self._callbacks[token] = callback
                return lambda: self._callbacks.pop(token, None)
        callback()
        return lambda: None


def cancel_all(reason: str = "stopped") -> int:
    """Cancel every live ``Cancellation`` of this process (for signal handlers).

    Returns how many were cancelled.
    """
    with _alive_lock:
        alive = list(_alive)
    for cancellation in alive:
        cancellation.cancel(reason)
    return len(alive)
