"""The HTTP layer under dlt's RESTClient: auth, pacing, retries, errors, and counters.

dlt's rest_api takes a ``requests`` session (``client.session``), so this module extends that
session rather than replacing any of dlt's machinery. What it adds, and why:

- Split rate-limits with its own headers (contract §1.4): a 429 carries
  ``X-RateLimit-Reset-Seconds-Org`` / ``-IP`` and usually no ``Retry-After``; every response
  carries ``X-RateLimit-Remaining-*``. dlt's retry only honours ``Retry-After`` and has no
  client-side pacing, so the session paces itself and waits what Split asks.
- A 200 with a truncated or non-JSON body (a proxy error page) is a transient fault, not data:
  the body is parsed once here, and a bad one is retried like a 5xx.
- Errors leave as ``SplitApiError`` subclasses that name the endpoint, scope and status, and
  never the key.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from dlt.sources.helpers.rest_client.paginators import (
    JSONResponseCursorPaginator,
    OffsetPaginator,
)
from requests.adapters import HTTPAdapter
from requests.hooks import default_hooks, dispatch_hook

from analytics_assets.split_source.errors import (
    SplitApiError,
    SplitAuthError,
    SplitNotFoundError,
    SplitUnavailableError,
)
from analytics_assets.split_source.settings import ENDPOINTS, SplitSettings

logger = logging.getLogger("analytics_assets.split_source")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


_request_listeners: list[Callable[[str], None]] = []


def add_request_listener(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call ``listener(table)`` on every request of this process (live progress displays).

    Returns a function that removes the listener again.
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
    by_endpoint: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, endpoint: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        for listener in _request_listeners:
            listener(endpoint)

    def add(self, *, retries: int = 0, rate_limited: int = 0, waited: float = 0.0) -> None:
        with self._lock:
            self.retries += retries
            self.rate_limited += rate_limited
            self.waited_seconds += waited

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "waited_seconds": round(self.waited_seconds, 3),
                "by_endpoint": dict(self.by_endpoint),
            }


class RequestPacer:
    """Keeps request starts under the rate limit, shared by every thread of a sync.

    With a configured limit R it books start slots 1/R apart, so several requests can be in
    flight at once (needed when R x latency > 1) without exceeding R per second. Without one,
    it learns the limit from ``X-RateLimit-Remaining-*``: remaining + the responses of the
    last second is what the server's window leaves this client (the median of recent
    estimates). Requests of other clients of the same org count against ``remaining``, so
    the estimate already leaves them their share; a fractional headroom on top would cost a
    whole request per window at Split's small limits (4 of 5 per second is 20 % slower). A
    429 holds every thread back until the reset time.
    """

    WINDOW_SECONDS = 1.0
    # Split counts requests in a sliding one-second window; starting R requests a little more
    # than a second apart absorbs network jitter that would squeeze R + 1 into one window.
    JITTER = 0.03
    ESTIMATES_KEPT = 21

    def __init__(self, max_requests_per_second: float | None) -> None:
        self._configured = max_requests_per_second
        self._estimates: deque[int] = deque(maxlen=self.ESTIMATES_KEPT)
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._booked: deque[float] = deque()
        self._started: deque[float] = deque()
        self._answered: deque[float] = deque()
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        """Requests per second in force: the configured limit, else the learned one."""
        if self._configured:
            return self._configured
        if self._estimates:
            return max(1.0, float(statistics.median_low(self._estimates)))
        return None

    def acquire(self) -> float:
        """Block until this request may start; returns the seconds waited."""
        waited = self._sleep_until(self.reserve())
        # A stalled machine can wake several sleeping threads at once: check the real start
        # times too, so a burst never puts R + 1 requests into one window.
        while True:
            with self._lock:
                now = time.monotonic()
                delay = self._window_delay(self._started, now)
                if delay <= 0:
                    self._started.append(now)
                    self._prune(self._started, now - 2 * self.WINDOW_SECONDS)
                    return waited
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
        if not rate or len(starts) < int(rate):
            return 0.0
        return starts[-int(rate)] + self.WINDOW_SECONDS + self.JITTER - at

    @staticmethod
    def _prune(times: deque[float], before: float) -> None:
        while times and times[0] < before:
            times.popleft()

    @staticmethod
    def _sleep_until(moment: float) -> float:
        wait = moment - time.monotonic()
        if wait > 0:
            time.sleep(wait)
            return wait
        return 0.0

    def observe(self, response: requests.Response) -> None:
        """Learn from Split's headers on any response."""
        remaining = _min_header(response, "X-RateLimit-Remaining-Org", "X-RateLimit-Remaining-IP")
        if remaining is None:
            return
        with self._lock:
            now = time.monotonic()
            self._answered.append(now)
            self._prune(self._answered, now - self.WINDOW_SECONDS)
            window = remaining + len(self._answered)
            if window < 1_000_000:  # a huge value means "unlimited": do not pace
                self._estimates.append(window)

    def pause(self, seconds: float) -> None:
        """Hold every request back (after a 429) until the server's reset time."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


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


def rate_limit_wait_seconds(response: requests.Response) -> float | None:
    """How long Split asks to wait after a 429 (contract §1.4): the larger reset header."""
    waits = []
    for name in ("X-RateLimit-Reset-Seconds-Org", "X-RateLimit-Reset-Seconds-IP", "Retry-After"):
        raw = response.headers.get(name)
        if raw is None:
            continue
        try:
            waits.append(float(raw))
        except ValueError:
            continue  # Retry-After as an HTTP date is not something Split sends
    return max(waits) if waits else None


def describe_request(url: str) -> tuple[str, str]:
    """(endpoint, scope) in words for messages, from the URL path only (never headers)."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    marker = "/internal/api/"
    endpoint = path.split(marker, 1)[1] if marker in path else path.lstrip("/")
    segments = endpoint.split("/")
    scope = []
    if "ws" in segments:
        scope.append(f"workspace {segments[segments.index('ws') + 1]}")
    if "environments" in segments and segments.index("environments") + 1 < len(segments):
        scope.append(f"environment {segments[segments.index('environments') + 1]}")
    if endpoint.startswith("v2/segments/") and endpoint.endswith("/keys"):
        scope = [f"environment {segments[2]}", f"segment {'/'.join(segments[3:-1])}"]
    for name in ("wsId", "workspace_id", "status"):
        for pair in parts.query.split("&"):
            if pair.startswith(name + "="):
                scope.append(f"{name}={unquote(pair.split('=', 1)[1])}")
    return "GET /" + endpoint, ", ".join(scope) or "organisation"


class _KeyAuth(requests.auth.AuthBase):
    """Adds the key header at send time; the key lives only here."""

    def __init__(self, api_key: str, scheme: str) -> None:
        self._api_key = api_key
        self._scheme = scheme

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._scheme == "x-api-key":
            request.headers["x-api-key"] = self._api_key
        else:
            request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def __repr__(self) -> str:
        return f"<{self._scheme} key: redacted>"


class SplitSession(requests.Session):
    """A requests session that paces, retries and explains, for dlt's RESTClient."""

    def __init__(self, settings: SplitSettings, stats: RequestStats | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.stats = stats or RequestStats()
        self.pacer = RequestPacer(settings.max_requests_per_second)
        self.auth = _KeyAuth(settings.api_key, settings.auth_scheme)
        self.headers["Accept"] = "application/json"
        self.headers["User-Agent"] = "analytics-assets (dlt rest_api)"
        # One pooled connection per concurrent request; retries are ours, not urllib3's.
        pool = max(4, settings.max_concurrent_requests * 2)
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self._in_flight = threading.BoundedSemaphore(settings.max_concurrent_requests)
        self._jitter = random.Random()

    def __repr__(self) -> str:
        return f"<SplitSession {self.settings.normalized_base_url}>"

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        # dlt attaches its response hooks (error raising, response_actions) to the request;
        # they must see the final response, not every retried attempt.
        hooks = request.hooks
        request.hooks = default_hooks()
        kwargs.setdefault("timeout", self.settings.request_timeout)
        endpoint, scope = describe_request(request.url or "")
        table = _table_for(endpoint)
        response = self._send_with_retries(request, kwargs, endpoint, scope, table)
        request.hooks = hooks
        try:
            return dispatch_hook("response", hooks, response, **kwargs)
        except requests.HTTPError:
            raise _error_for(response, endpoint, scope, self.settings) from None

    def _send_with_retries(
        self,
        request: requests.PreparedRequest,
        kwargs: dict[str, Any],
        endpoint: str,
        scope: str,
        table: str,
    ) -> requests.Response:
        max_retries = self.settings.max_retries
        retries = 0
        while True:
            waited = self.pacer.acquire()
            self.stats.record(table)
            failure: str
            try:
                with self._in_flight:
                    response = super().send(request, **kwargs)
                    self.pacer.observe(response)
                    if response.status_code < 400:
                        _parse_body_once(response)
                        self.stats.add(retries=retries, waited=waited)
                        return response
                    if response.status_code not in RETRYABLE_STATUSES:
                        self.stats.add(retries=retries, waited=waited)
                        return response
                    failure = f"HTTP {response.status_code}"
                    delay = self._backoff(retries)
                    if response.status_code == 429:
                        server_wait = rate_limit_wait_seconds(response)
                        # A 429 wait follows the server's headers; backoff only when it gave none.
                        delay = server_wait if server_wait is not None else delay
                        self.pacer.pause(delay)
                        self.stats.add(rate_limited=1)
            except TRANSPORT_ERRORS as exc:
                failure = type(exc).__name__
                response = None
                delay = self._backoff(retries)
            except _BadBody as exc:
                failure = str(exc)
                response = None
                delay = self._backoff(retries)
            if retries >= max_retries:
                self.stats.add(retries=retries, waited=waited)
                raise _unavailable(failure, response, endpoint, scope, retries) from None
            retries += 1
            logger.info(
                "Split API %s (%s): %s; retry %d of %d in %.1fs",
                endpoint,
                scope,
                failure,
                retries,
                max_retries,
                delay,
            )
            self.stats.add(waited=waited + delay)
            time.sleep(delay)
            waited = 0.0

    def _backoff(self, retries: int) -> float:
        base = self.settings.backoff_factor * (2**retries)
        return base * (0.75 + 0.5 * self._jitter.random())


class _BadBody(Exception):
    """A success status whose body is not the JSON the API promises (a transient fault)."""


def _parse_body_once(response: requests.Response) -> None:
    """Read and parse the body now, so a cut connection or a proxy page is retried here.

    The parsed value replaces ``response.json`` so dlt does not parse the page twice.
    """
    try:
        content = response.content
    except TRANSPORT_ERRORS:
        raise
    if not content:
        raise _BadBody("empty body")
    try:
        parsed = json.loads(content)
    except ValueError:
        content_type = response.headers.get("Content-Type", "?")
        raise _BadBody(f"body is not valid JSON (content type {content_type})") from None
    response.json = lambda **_: parsed  # type: ignore[method-assign]


# (path prefix before the first placeholder, path depth, table), longest prefix first.
_TABLE_PATTERNS = sorted(
    ((e.path.split("{", 1)[0], e.path.count("/"), e.table) for e in ENDPOINTS),
    key=lambda pattern: -len(pattern[0]),
)


def _table_for(endpoint: str) -> str:
    """The table an endpoint feeds, for per-table request counters."""
    path = endpoint.removeprefix("GET /").split("?", 1)[0]
    depth = path.count("/")
    for prefix, pattern_depth, table in _TABLE_PATTERNS:
        if pattern_depth == depth and path.startswith(prefix):
            return table
    return "other"


_HINTS = {
    401: "The API key was refused (missing, invalid or revoked). Set SPLIT_API_KEY to a valid"
    " Admin API key; for Harness-migrated accounts also set SPLIT_AUTH_SCHEME=x-api-key.",
    403: "The key lacks the role or scope for this endpoint. Use an Admin API key with"
    " access to this workspace/environment (users and groups need GLOBAL scope).",
    404: "The object no longer exists or the key cannot see it. If it was deleted in Split,"
    " the next sync of its parent removes it; re-run without selecting it.",
    400: "The API rejected the request parameters; this is a bug in the source, please report it.",
}


def _error_for(
    response: requests.Response, endpoint: str, scope: str, settings: SplitSettings
) -> SplitApiError:
    status = response.status_code
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("message"):
            detail = f": {body['message']}"
    except ValueError:
        pass
    detail = detail.replace(settings.api_key, "***") if settings.api_key else detail
    hint = _HINTS.get(status, "Check the API status and retry the sync.")
    message = f"Split API {endpoint} ({scope}) failed with HTTP {status}{detail}. {hint}"
    if status in (401, 403):
        return SplitAuthError(message, status=status, endpoint=endpoint, scope=scope)
    if status == 404:
        return SplitNotFoundError(message, status=status, endpoint=endpoint, scope=scope)
    return SplitApiError(message, status=status, endpoint=endpoint, scope=scope)


def _unavailable(
    failure: str, response: requests.Response | None, endpoint: str, scope: str, retries: int
) -> SplitUnavailableError:
    status = response.status_code if response is not None else None
    hint = (
        "The API kept rate-limiting; lower SPLIT_MAX_REQUESTS_PER_SECOND or raise"
        " SPLIT_MAX_RETRIES."
        if status == 429
        else "Check the network and SPLIT_API_BASE_URL, or raise SPLIT_MAX_RETRIES /"
        " SPLIT_REQUEST_TIMEOUT."
    )
    return SplitUnavailableError(
        f"Split API {endpoint} ({scope}) still failing after {retries} retries ({failure}). {hint}",
        status=status,
        endpoint=endpoint,
        scope=scope,
    )


class SplitOffsetPaginator(OffsetPaginator):
    """Offset paging that advances by the records received and stops at the total.

    Advancing by what came back (not by the requested limit) stays correct if the server
    clamps the limit (contract §5.3 leaves behaviour above the maximum undocumented).
    """

    def __init__(self, limit: int, total_key: str) -> None:
        super().__init__(limit=limit, total_path=total_key, stop_after_empty_page=True)
        self._total_key = total_key

    def update_state(self, response: requests.Response, data: list[Any] | None = None) -> None:
        received = len(data or [])
        total = response.json().get(self._total_key) if received else None
        if not received:
            self._has_next_page = False
            return
        self.current_value += received
        if total is None or self.current_value >= int(total):
            self._has_next_page = False


class SplitMarkerPaginator(JSONResponseCursorPaginator):
    """Marker paging (contract §1.5): send ``after=nextMarker`` until it is null.

    A marker that repeats would loop forever on a misbehaving server; that fails loudly.
    """

    def __init__(self) -> None:
        super().__init__(cursor_path="nextMarker", cursor_param="after")
        self._seen: set[str] = set()

    def update_state(self, response: requests.Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        marker = self._next_reference
        if marker is not None:
            if marker in self._seen:
                raise SplitApiError(
                    "Split API returned the same nextMarker twice for"
                    f" {response.url.split('?')[0]};"
                    " stopping to avoid an endless loop.",
                    status=response.status_code,
                    endpoint=response.url,
                    scope="",
                )
            self._seen.add(marker)
