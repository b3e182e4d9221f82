"""Request counters for ``GET /_sandbox/stats``: what a client actually asked for."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any


class RequestStats:
    """Counts API requests by endpoint (table name) and status, faults and rate limiting.

    Only ``/internal/api`` requests are counted, so the total can be compared with the
    minimal request count of the ground truth.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests_total = 0
            self.in_flight = 0
            self.in_flight_max = 0
            self.by_endpoint: dict[str, Counter[str]] = defaultdict(Counter)
            self.faults: Counter[str] = Counter()
            self.rate_limited = 0

    def started(self) -> None:
        with self._lock:
            self.requests_total += 1
            self.in_flight += 1
            self.in_flight_max = max(self.in_flight_max, self.in_flight)

    def finished(self, endpoint: str, outcome: str) -> None:
        """Record how a request ended: its status code, or ``dropped`` for a cut connection."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            self.by_endpoint[endpoint][outcome] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests_total": self.requests_total,
                "in_flight": self.in_flight,
                "in_flight_max": self.in_flight_max,
                "by_endpoint": {
                    endpoint: {"requests": sum(statuses.values()), "by_status": dict(statuses)}
                    for endpoint, statuses in sorted(self.by_endpoint.items())
                },
                "faults": dict(self.faults),
                "rate_limited": self.rate_limited,
            }
