"""Pacing under Split's rate limit, and waiting out 429s together (contract §1.4).

``RequestPacer`` keeps request starts under the limit for every thread of a sync.
``InFlightLimit`` keeps enough requests in flight to reach that limit, and no more.
``FlowControl`` turns a 429 that says when to come back into one shared pause: every
request in flight that meets the same burst waits for the same moment, once, and the pause
counts against the sync's rate-limit wait budget, not against any request's retries.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

from analytics_assets.split_source.errors import SplitRateLimitError

Sleep = Callable[[float], None]


class Start:
    """One request's place in the rate-limit window, from ``RequestPacer.acquire``.

    Pending until the transport reports the request written to its socket (``sent``): only
    then does the server see it, and a request can wait long after it was let go (for a
    free in-flight place, a new connection's handshake, or a busy interpreter)."""

    __slots__ = ("waited", "at", "refused")

    def __init__(self, waited: float) -> None:
        self.waited = waited
        """Seconds ``acquire`` waited for this start."""
        self.at: float | None = None
        """When the request was sent (``time.monotonic()``); None while pending."""
        self.refused = False
        """The server answered 429: it did not count this request against the limit."""

    def sent(self) -> None:
        if self.at is None:
            self.at = time.monotonic()

    settle = sent
    """Called once the attempt is over, sent or not: a request that failed before the hook
    saw it sent counts as sent now, the cautious reading."""


class RequestPacer:
    """Keeps request starts under the rate limit, shared by every thread of a sync.

    With a configured limit R it books start slots 1/R apart, so several requests can be in
    flight at once (needed when R x latency > 1) without exceeding R per second; a limit
    below 1 (0.5: one request every two seconds) is the same spacing. Without one, it learns
    the limit from ``X-RateLimit-Remaining-*``: an answer's remaining + this client's requests
    sent in the second before that request was sent is what the server's window leaves this
    client (the median of recent estimates). Requests of other clients of the same org count
    against ``remaining``, so the estimate already leaves them their share.

    The estimate counts requests by when they were *sent*, as the server counts them when
    they arrive. Counting answers by when they came back overshot once many requests were in
    flight: answers bunch (a busy server or client delays some and then hands over several
    at once), so one second of answers held more than one second of the server's window, the
    estimate rose above the limit and the pacer caused the 429s it was meant to avoid (6 in
    80 requests behind a gateway that hands answers back once a second). Refused requests
    (429) are not counted: counting them raised the estimate after every 429, and if a
    server does count them against the limit, leaving them out errs low, which only slows
    the sync.

    The window is kept on the moments requests were *sent*, not let go: a request let go on
    time but sent late (it waited for an in-flight place or for the interpreter) reaches the
    server late, and the requests after it, counted from its earlier moment, would reach it
    inside the same window: 4 to 13 429s a demo sync through Dagster at 20/s, whose loads
    keep the interpreter busy. Requests let go and not yet sent count as inside the window.
    """

    WINDOW_SECONDS = 1.0
    # Split counts requests in a sliding one-second window; starting R requests a little more
    # than a second apart absorbs network jitter that would squeeze R + 1 into one window.
    JITTER = 0.03
    PENDING_POLL_SECONDS = 0.02
    """How often a start that waits on requests let go but not yet sent looks again."""
    ESTIMATES_KEPT = 21
    HISTORY_SECONDS = 10.0
    """How long sent requests are remembered: an answer can come back seconds after its
    request was sent, and its estimate needs the second before that."""

    def __init__(self, max_requests_per_second: float | None, sleep: Sleep = time.sleep) -> None:
        self._configured = max_requests_per_second
        self._sleep = sleep
        self._estimates: deque[int] = deque(maxlen=self.ESTIMATES_KEPT)
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._booked: deque[float] = deque()
        self._starts: list[Start] = []
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        """Requests per second in force: the configured limit, else the learned one."""
        if self._configured:
            return self._configured
        if self._estimates:
            return max(1.0, float(statistics.median_low(self._estimates)))
        return None

    def acquire(self) -> Start:
        """Block until this request may start; the caller reports it sent (``Start.sent``)
        and, whatever happened, settled (``Start.settle``)."""
        waited = self._sleep_until(self.reserve())
        # A stalled machine can wake several sleeping threads at once: check the starts
        # themselves too, so a burst never puts R + 1 requests into one window.
        while True:
            with self._lock:
                now = time.monotonic()
                delay = max(self._start_delay(now), self._paused_until - now)
                if delay <= 0:
                    start = Start(waited)
                    self._starts.append(start)
                    return start
            waited += self._sleep_until(now + delay)

    def reserve(self) -> float:
        """Book the next start time (``time.monotonic()`` scale) without waiting for it."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._paused_until)
            rate = self.rate
            if rate:
                slot = max(slot, self._next_slot)
                slot += max(0.0, self._window_delay(self._booked, slot))
                self._next_slot = slot + 1.0 / rate
            self._booked.append(slot)
            self._prune(self._booked, slot - 2 * self.WINDOW_SECONDS)
        return slot

    def _window_delay(self, starts: deque[float], at: float) -> float:
        """How much later than ``at`` a start must be to keep R starts per sliding window."""
        rate = self.rate
        allowed = int(rate) if rate else 0
        if allowed < 1 or len(starts) < allowed:
            return 0.0  # below one a second, the 1/R spacing of the slots is the whole rule
        return starts[-allowed] + self.WINDOW_SECONDS + self.JITTER - at

    def _start_delay(self, now: float) -> float:
        """How long a request must still wait so that, counting the requests sent in the
        last window and those let go but not sent yet, it is at most the R-th."""
        rate = self.rate
        allowed = int(rate) if rate else 0
        horizon = now - self.HISTORY_SECONDS
        self._starts = [s for s in self._starts if s.at is None or s.at >= horizon]
        if allowed < 1:
            return 0.0
        pending = sum(1 for s in self._starts if s.at is None)
        room = allowed - pending  # how many sent requests the window may still hold
        if room < 1:
            return self.PENDING_POLL_SECONDS
        recent = now - 2 * self.WINDOW_SECONDS
        sent = sorted(s.at for s in self._starts if s.at is not None and s.at >= recent)
        if len(sent) < room:
            return 0.0
        return sent[-room] + self.WINDOW_SECONDS + self.JITTER - now

    @staticmethod
    def _prune(times: deque[float], before: float) -> None:
        while times and times[0] < before:
            times.popleft()

    def _sleep_until(self, moment: float) -> float:
        wait = moment - time.monotonic()
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0

    def observe(self, response: requests.Response, start: Start) -> None:
        """Learn from Split's headers on any answer to the request ``start`` let go."""
        if response.status_code == 429:
            start.refused = True
        remaining = _min_header(response, "X-RateLimit-Remaining-Org", "X-RateLimit-Remaining-IP")
        if remaining is None or remaining >= 1_000_000:  # huge means "unlimited": do not pace
            return
        with self._lock:
            sent_at = start.at if start.at is not None else time.monotonic()
            # The requests the server's window held when this one arrived, this one included
            # unless refused: every request of this client sent in the second before it.
            counted = sum(
                1
                for other in self._starts
                if other.at is not None
                and not other.refused
                and sent_at - self.WINDOW_SECONDS < other.at <= sent_at
            )
            if start not in self._starts and not start.refused:
                counted += 1
            self._estimates.append(remaining + counted)

    def pause_until(self, moment: float) -> float:
        """Hold every request back until ``moment``; returns how much later the pause now
        ends than before (0 when another thread's pause already covered it)."""
        with self._lock:
            extension = max(0.0, moment - max(self._paused_until, time.monotonic()))
            self._paused_until = max(self._paused_until, moment)
        return extension


RESET_HEADERS = ("X-RateLimit-Reset-Seconds-Org", "X-RateLimit-Reset-Seconds-IP", "Retry-After")


def server_wait(response: requests.Response) -> tuple[float, str] | None:
    """How long the server asks to wait after a 429, and the header that says so.

    Split sends ``X-RateLimit-Reset-Seconds-Org`` / ``-IP`` and clients should wait the larger
    (contract §1.4); ``Retry-After`` in seconds is honoured too. A value that is not a
    non-negative number (a date, garbage, a negative count) says nothing: None.
    """
    waits: list[tuple[float, str]] = []
    for name in RESET_HEADERS:
        raw = response.headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if value >= 0 and value == value and value != float("inf"):
            waits.append((value, name))
    return max(waits) if waits else None


class FlowControl:
    """The 429 waits of one sync: shared, capped per answer and budgeted in total."""

    def __init__(self, pacer: RequestPacer, *, max_server_wait: float, wait_budget: float) -> None:
        self._pacer = pacer
        self._max_server_wait = max_server_wait
        self._wait_budget = wait_budget
        self._spent = 0.0
        self._lock = threading.Lock()

    @property
    def spent_seconds(self) -> float:
        return self._spent

    def hold(self, seconds: float, header: str, where: str) -> float:
        """Pause every request for ``seconds`` (at least a moment); returns the extension of
        the shared pause. Raises ``SplitRateLimitError`` past the caps."""
        if seconds > self._max_server_wait:
            raise SplitRateLimitError(
                f"Split API {where} answered 429 and asked to wait {seconds:.0f}s"
                f" ({header}), more than SPLIT_MAX_SERVER_WAIT={self._max_server_wait:.0f}s."
                " The organisation's rate limit is used up (another client of the same"
                " organisation may be using it); run the sync later, or raise"
                " SPLIT_MAX_SERVER_WAIT to wait that long."
            )
        # A reset of 0 still means "not now": come back after the window has moved on.
        moment = time.monotonic() + max(seconds, 0.25)
        extension = self._pacer.pause_until(moment)
        with self._lock:
            self._spent += extension
            spent = self._spent
        if spent > self._wait_budget:
            raise SplitRateLimitError(
                f"Split API {where}: this sync has waited {spent:.0f}s for rate limits in all,"
                f" more than SPLIT_RATE_LIMIT_WAIT_BUDGET={self._wait_budget:.0f}s. Another"
                " client of the organisation is probably using its rate limit; run the sync"
                " later, lower SPLIT_MAX_REQUESTS_PER_SECOND, or raise the budget."
            )
        return extension


def _min_header(response: requests.Response, *names: str) -> int | None:
    values = []
    for name in names:
        raw = response.headers.get(name)
        if raw is None:
            continue
        try:
            values.append(int(float(raw)))
        except ValueError:
            continue
    return min(values) if values else None


class InFlightLimit:
    """How many requests may be in flight at once: enough to reach the rate limit.

    Requests started every 1/R seconds that take L seconds each keep R x L in flight, so a
    fixed bound below that caps throughput (20 requests a second at 400 ms need 8). Unless
    the user fixes the number (``SPLIT_MAX_CONCURRENT_REQUESTS``), the bound follows the
    pacer's rate times the observed latency, with headroom, between ``FLOOR`` and
    ``CEILING``; the pacer, not this bound, keeps the rate.
    """

    FLOOR = 4
    CEILING = 16
    HEADROOM = 1.25
    SMOOTHING = 0.2  # weight of the newest latency in the moving average

    def __init__(self, pacer: RequestPacer, fixed: int | None = None) -> None:
        self._pacer = pacer
        self._fixed = fixed
        self._latency: float | None = None
        self._in_flight = 0
        self._changed = threading.Condition()

    @property
    def workers(self) -> int:
        """Threads worth giving a pool of requests: the most that may ever be in flight."""
        return self._fixed or self.CEILING

    @property
    def limit(self) -> int:
        if self._fixed:
            return self._fixed
        rate = self._pacer.rate
        if rate is None or self._latency is None:
            return self.FLOOR
        wanted = math.ceil(rate * self._latency * self.HEADROOM)
        return max(self.FLOOR, min(self.CEILING, wanted))

    @property
    def latency(self) -> float | None:
        """The moving average of answered requests' latency, in seconds (None: none yet)."""
        return self._latency

    def enter(self, check: Callable[[], None]) -> None:
        """Wait for a free place; ``check`` runs while waiting (it raises on cancellation)."""
        with self._changed:
            while self._in_flight >= self.limit:
                self._changed.wait(timeout=0.25)
                check()
            self._in_flight += 1

    def leave(self, latency: float | None) -> None:
        """A request ended; ``latency`` is how long its answer took (None: it failed)."""
        with self._changed:
            self._in_flight -= 1
            if latency is not None:
                self._latency = (
                    latency
                    if self._latency is None
                    else self.SMOOTHING * latency + (1 - self.SMOOTHING) * self._latency
                )
            self._changed.notify_all()


class RateLimiter:
    """The pacer, the in-flight limit and the 429 flow control of the requests that share
    one rate limit.

    One per Dagster run: every scope the run loads paces against the same learned limit and
    spends the same rate-limit wait budget (``SPLIT_RATE_LIMIT_WAIT_BUDGET``).
    """

    def __init__(
        self,
        max_requests_per_second: float | None,
        *,
        max_server_wait: float,
        wait_budget: float,
        max_in_flight: int | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.pacer = RequestPacer(max_requests_per_second, sleep=sleep)
        self.in_flight = InFlightLimit(self.pacer, fixed=max_in_flight)
        self.flow = FlowControl(
            self.pacer, max_server_wait=max_server_wait, wait_budget=wait_budget
        )
        self.answered = threading.Event()
        """Set by the first HTTP answer of the run: from then on the address is known to be
        right, and a refused connection is a fault to ride out (see the transport)."""

    MAX_SCOPES_AT_ONCE = 6

    def scopes_at_once(self) -> int:
        """How many scopes are worth fetching at once to keep the rate limit busy.

        A scope reads most of its pages one after another, so it keeps about one request in
        flight: R x L scopes (with the in-flight headroom) keep R requests a second going.
        At 8 requests a second and 20 ms that is one scope, and a kill then costs at most the
        scope in flight; at 20/s and 400 ms it is the ceiling. Before the first answer the
        latency is unknown: one scope. Without any known limit, only the latency bounds
        throughput: the ceiling (the in-flight limit still bounds the requests).
        """
        latency = self.in_flight.latency
        if latency is None:
            return 1
        rate = self.pacer.rate
        if rate is None:
            return self.MAX_SCOPES_AT_ONCE
        wanted = math.ceil(rate * latency * InFlightLimit.HEADROOM)
        return max(1, min(self.MAX_SCOPES_AT_ONCE, wanted))

    @classmethod
    def for_settings(cls, settings: Any, sleep: Sleep = time.sleep) -> RateLimiter:
        return cls(
            settings.max_requests_per_second,
            max_server_wait=settings.max_server_wait,
            wait_budget=settings.rate_limit_wait_budget,
            max_in_flight=settings.max_concurrent_requests,
            sleep=sleep,
        )
