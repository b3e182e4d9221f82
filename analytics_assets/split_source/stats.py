"""Request counters of one sync, and live listeners for progress displays."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_request_listeners: list[Callable[[str], None]] = []


def add_request_listener(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call ``listener(table)`` on every request of this process (live progress displays).

    Process-wide on purpose: the CLI shows progress of the Dagster runs it executes in its
    own process, whose stats objects are created inside the runs. Returns a remover.
    """
    _request_listeners.append(listener)
    return lambda: _request_listeners.remove(listener)


@dataclass
class RequestStats:
    """Counters for one sync; read by the CLI summary, Dagster metadata and benchmarks."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    rate_limit_wait_seconds: float = 0.0
    """Wall time every request was held back by 429 answers (counted once for a burst)."""
    by_endpoint: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, table: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_endpoint[table] = self.by_endpoint.get(table, 0) + 1
        for listener in list(_request_listeners):
            listener(table)

    def add(
        self,
        *,
        retries: int = 0,
        rate_limited: int = 0,
        waited: float = 0.0,
        rate_limit_wait: float = 0.0,
    ) -> None:
        with self._lock:
            self.retries += retries
            self.rate_limited += rate_limited
            self.waited_seconds += waited
            self.rate_limit_wait_seconds += rate_limit_wait

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "waited_seconds": round(self.waited_seconds, 3),
                "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3),
                "by_endpoint": dict(self.by_endpoint),
            }
