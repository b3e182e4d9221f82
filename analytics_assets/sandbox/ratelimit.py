"""Split-style rate limiting: sliding one-second windows, one Org bucket and one per IP.

contract §1.4: Split limits per organisation and per client IP separately, and says which
bucket is exhausted through `X-RateLimit-Remaining-{Org,IP}` and
`X-RateLimit-Reset-Seconds-{Org,IP}` (integer seconds). Every sandbox API response carries
the Remaining headers; a 429 also carries both Reset headers.

Choice made here: a rejected (429) request does not consume quota, so a client that waits
the advertised seconds is let through.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 1.0
UNLIMITED_REMAINING = 1_000_000
"""What the Remaining headers say when no limit is configured."""


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one admission check, with the header values to send."""

    allowed: bool
    remaining_org: int
    remaining_ip: int
    reset_org: int = 0
    reset_ip: int = 0

    def headers(self, retry_after: bool = False) -> list[tuple[str, str]]:
        headers = [
            ("X-RateLimit-Remaining-Org", str(self.remaining_org)),
            ("X-RateLimit-Remaining-IP", str(self.remaining_ip)),
        ]
        if not self.allowed:
            headers += [
                ("X-RateLimit-Reset-Seconds-Org", str(self.reset_org)),
                ("X-RateLimit-Reset-Seconds-IP", str(self.reset_ip)),
            ]
            if retry_after:
                headers.append(("Retry-After", str(max(self.reset_org, self.reset_ip))))
        return headers


class SlidingWindowRateLimiter:
    """Admit at most ``limit`` requests per rolling second in the Org bucket and per IP."""

    def __init__(self, limit: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit or None
        self._clock = clock
        self._lock = threading.Lock()
        self._org: deque[float] = deque()
        self._by_ip: dict[str, deque[float]] = {}

    def _prune(self, bucket: deque[float], now: float) -> None:
        while bucket and bucket[0] <= now - WINDOW_SECONDS:
            bucket.popleft()

    def _reset_seconds(self, bucket: deque[float], now: float) -> int:
        """Seconds until the oldest request leaves the window: rounded up, at least 1."""
        if self.limit is None or len(bucket) < self.limit:
            return 0
        return max(1, math.ceil(bucket[0] + WINDOW_SECONDS - now))

    def acquire(self, client_ip: str) -> RateDecision:
        """Admit (and count) a request from ``client_ip``, or refuse it without counting."""
        if self.limit is None:
            return RateDecision(True, UNLIMITED_REMAINING, UNLIMITED_REMAINING)
        with self._lock:
            now = self._clock()
            ip_bucket = self._by_ip.setdefault(client_ip, deque())
            self._prune(self._org, now)
            self._prune(ip_bucket, now)
            if len(self._org) >= self.limit or len(ip_bucket) >= self.limit:
                return RateDecision(
                    allowed=False,
                    remaining_org=max(0, self.limit - len(self._org)),
                    remaining_ip=max(0, self.limit - len(ip_bucket)),
                    reset_org=self._reset_seconds(self._org, now),
                    reset_ip=self._reset_seconds(ip_bucket, now),
                )
            self._org.append(now)
            ip_bucket.append(now)
            return RateDecision(True, self.limit - len(self._org), self.limit - len(ip_bucket))
