"""One request to the Admin API, made reliably: paced, bounded in time, retried, explained.

``SplitTransport.fetch(context, url, params, interpret)`` returns ``interpret(json_body)``
of a successful answer, or raises a ``SplitSourceError`` that names the endpoint and scope.
What it adds to ``requests``, and why:

- **A whole-request deadline.** requests' timeout is per socket read, so a body that drips a
  byte a second never times out by itself. A timer closes the request's socket when
  ``request_deadline`` runs out, whatever phase it is in; the per-read timeout stays too.
- **Stopping.** Cancelling the sync's ``Cancellation`` closes the socket of every request in
  flight and wakes every wait, so a stop never waits for a stalled server.
- **Flow control is not failure.** A 429 that says when to come back is waited out by every
  request together (``FlowControl``) and uses no retry. Other transient faults (5xx, drops,
  timeouts, a body that is not JSON or not the documented shape) back off exponentially
  with full jitter, up to ``max_retries``.
- **Shape checks before data.** ``interpret`` raises ``UnexpectedShape`` on a body that is not
  the endpoint's documented form (a 200 ``{"message": ...}``, ``null``, a missing records
  key); that is retried like a 5xx, and never taken as an empty page.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from analytics_assets.split_source.auth import api_key_auth
from analytics_assets.split_source.cancellation import Cancellation
from analytics_assets.split_source.errors import (
    SplitConfigurationError,
    SplitUnavailableError,
    api_error_for,
)
from analytics_assets.split_source.pacing import RateLimiter, server_wait
from analytics_assets.split_source.paging import UnexpectedShape
from analytics_assets.split_source.settings import DEFAULT_BASE_URL, Endpoint, SplitSettings
from analytics_assets.split_source.stats import RequestStats

logger = logging.getLogger("analytics_assets.split_source")

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class RequestContext:
    """What a request is for: its endpoint row and its scope, carried with it for messages,
    counters and the endpoint's rules (404 means empty, refused means skip)."""

    endpoint: Endpoint
    path: str
    """The endpoint's path with its placeholders filled in."""
    scope: tuple[tuple[str, str], ...] = ()
    """(kind, value) pairs, e.g. (("workspace", id), ("status", "ACTIVE"))."""

    def describe_scope(self) -> str:
        return ", ".join(f"{kind} {value}" for kind, value in self.scope) or "organisation"

    @property
    def where(self) -> str:
        return f"GET /{self.path} ({self.describe_scope()})"


class _Fault(Exception):
    """A transient failure of one attempt; its message is the reason in words."""

    def __init__(self, reason: str, *, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable
        """Nothing answered at the address: the host is unknown or refused the connection."""


UNREACHABLE_RETRIES = 2
"""Retries of an address that is unknown or refuses connections, while the API has not
answered this run yet. That is how a wrong SPLIT_API_BASE_URL fails: in seconds, not after
every retry's backoff (minutes). Once the API has answered, a refusal is a fault like any
other and gets every retry: an incident is ridden out, a typo is not waited on."""


def _unreachable_reason(exc: BaseException) -> str | None:
    """ "connection refused" or "host name not found" when that is what ``exc`` comes from:
    requests wraps urllib3's error, which holds the socket's as its reason or cause."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        cause = pending.pop()
        if not isinstance(cause, BaseException) or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        pending += [*cause.args, getattr(cause, "reason", None), cause.__cause__, cause.__context__]
    return None


# --- aborting a request in flight -----------------------------------------------------------
# urllib3 gives no handle on the socket of a request in flight, so connections register
# themselves per thread while they are used; closing that socket ends a blocked read at once.
# The same hook tells the pacer when a request has actually been written to its socket.
_connections: dict[int, HTTPConnection] = {}
_sending = threading.local()
"""``on_sent``: what to call once this thread's request is written (its pacer ``Start``)."""


class _Tracked:
    def connect(self) -> None:
        _connections[threading.get_ident()] = self  # type: ignore[assignment]
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        _connections[threading.get_ident()] = self  # type: ignore[assignment]
        super().request(*args, **kwargs)  # type: ignore[misc]
        on_sent = getattr(_sending, "on_sent", None)
        if on_sent is not None:
            on_sent()


class _TrackedHTTPConnection(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection  # type: ignore[assignment]


class _AbortableAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {  # type: ignore[attr-defined]
            "http": _TrackedHTTPPool,
            "https": _TrackedHTTPSPool,
        }


def _abort_connection_of(thread_id: int) -> None:
    connection = _connections.get(thread_id)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class SplitTransport:
    """Requests to one Admin API, shared by every resource and thread of one sync."""

    def __init__(
        self,
        settings: SplitSettings,
        stats: RequestStats | None = None,
        cancellation: Cancellation | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats if stats is not None else RequestStats()
        self.cancellation = cancellation or Cancellation()
        limiter = limiter or RateLimiter.for_settings(settings, sleep=self.cancellation.wait)
        self.pacer = limiter.pacer
        self.flow = limiter.flow
        self.in_flight = limiter.in_flight
        self.answered = limiter.answered
        self._auth = api_key_auth(settings)
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        self._session.headers["User-Agent"] = "analytics-assets (dlt)"
        # One pooled connection per concurrent request; retries are ours, not urllib3's.
        pool = self.in_flight.workers * 2
        adapter = _AbortableAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._jitter = random.Random()

    def __repr__(self) -> str:
        return f"<SplitTransport {self.settings.normalized_base_url}>"

    def url(self, path: str) -> str:
        return self.settings.normalized_base_url + path

    def fetch(
        self,
        context: RequestContext,
        params: Mapping[str, Any],
        interpret: Callable[[Any], T],
    ) -> T:
        """``interpret(body)`` of the first good answer; raises once retries are spent."""
        retries = 0
        first_failure_at: float | None = None
        while True:
            self.cancellation.check()
            start = self.pacer.acquire()
            self.stats.record(context.endpoint.table)
            self.stats.add(waited=start.waited)
            try:
                try:
                    _sending.on_sent = start.sent
                    response, body = self._attempt(context, params)
                finally:
                    _sending.on_sent = None
                    start.settle()
                self.pacer.observe(response, start)
                status = response.status_code
                if status == 429:
                    wait = server_wait(response)
                    if wait is not None:
                        extension = self.flow.hold(wait[0], wait[1], context.where)
                        self.stats.add(rate_limited=1, rate_limit_wait=extension)
                        logger.info(
                            "Split API %s: rate-limited, every request waits %.1fs (%s)",
                            context.where,
                            wait[0],
                            wait[1],
                        )
                        continue  # flow control: no retry used
                    raise _Fault("HTTP 429 without a reset header")
                if status in RETRYABLE_STATUSES:
                    raise _Fault(f"HTTP {status}")
                if status >= 400:
                    raise api_error_for(status, body, context, self.settings)
                return interpret(_parse_json(body, response))
            except UnexpectedShape as exc:
                failure = f"a {response.status_code} answer of the wrong shape: {exc}"
            except _Fault as exc:
                failure = str(exc)
                if (
                    exc.unreachable
                    and not self.answered.is_set()
                    and retries >= min(UNREACHABLE_RETRIES, self.settings.max_retries)
                ):
                    raise SplitConfigurationError(
                        f"Split API {context.where}: nothing answers at"
                        f" {self.settings.normalized_base_url} ({failure}, {retries + 1}"
                        f" attempts). Check SPLIT_API_BASE_URL (the Split API is"
                        f" {DEFAULT_BASE_URL}) and the network."
                    ) from None
            first_failure_at = first_failure_at or time.monotonic()
            if retries >= self.settings.max_retries:
                raise SplitUnavailableError(
                    f"Split API {context.where} still failing after {retries} retries over"
                    f" {time.monotonic() - first_failure_at:.0f}s ({failure}). Check the API's"
                    " status, the network and SPLIT_API_BASE_URL, then re-run the sync: what"
                    " was loaded is kept. SPLIT_MAX_RETRIES sets how long it keeps trying.",
                    status=None,
                    endpoint=context.where,
                    scope=context.describe_scope(),
                ) from None
            delay = self._backoff(retries)
            retries += 1
            logger.warning(
                "Split API %s: %s; retry %d of %d in %.1fs",
                context.where,
                failure,
                retries,
                self.settings.max_retries,
                delay,
            )
            self.stats.add(retries=1, waited=delay)
            self.cancellation.wait(delay)

    def _attempt(
        self, context: RequestContext, params: Mapping[str, Any]
    ) -> tuple[requests.Response, bytes]:
        """One attempt: the response and its whole body, within the deadline."""
        self.in_flight.enter(self.cancellation.check)
        started = time.monotonic()
        latency: float | None = None
        thread_id = threading.get_ident()
        deadline_passed = threading.Event()

        def on_deadline() -> None:
            deadline_passed.set()
            _abort_connection_of(thread_id)

        timer = threading.Timer(self.settings.request_deadline, on_deadline)
        timer.daemon = True
        unregister = self.cancellation.on_cancel(lambda: _abort_connection_of(thread_id))
        timer.start()
        try:
            response = self._session.get(
                self.url(context.path),
                params=dict(params),
                auth=self._auth,
                timeout=(
                    min(CONNECT_TIMEOUT, self.settings.request_timeout),
                    self.settings.request_timeout,
                ),
                stream=True,
            )
            try:
                body = response.content
            finally:
                response.close()
            self.answered.set()
            latency = time.monotonic() - started
            return response, body
        except TRANSPORT_ERRORS as exc:
            self.cancellation.check()
            if deadline_passed.is_set():
                raise _Fault(
                    f"no complete answer within SPLIT_REQUEST_DEADLINE="
                    f"{self.settings.request_deadline:g}s (the server stalled or sent its body"
                    " too slowly)"
                ) from None
            if isinstance(exc, requests.Timeout):
                raise _Fault(
                    f"no data for SPLIT_REQUEST_TIMEOUT={self.settings.request_timeout:g}s"
                ) from None
            unreachable = _unreachable_reason(exc)
            if unreachable:
                raise _Fault(unreachable, unreachable=True) from None
            raise _Fault(type(exc).__name__) from None
        finally:
            timer.cancel()
            unregister()
            _connections.pop(thread_id, None)
            self.in_flight.leave(latency)

    def _backoff(self, retries: int) -> float:
        """Full jitter: uniform between 0 and the capped exponential step."""
        step = min(self.settings.max_backoff, self.settings.backoff_factor * (2**retries))
        return self._jitter.uniform(0, step)


def _parse_json(body: bytes, response: requests.Response) -> Any:
    if not body:
        raise _Fault(f"an empty {response.status_code} body")
    try:
        return json.loads(body)
    except ValueError:
        content_type = response.headers.get("Content-Type", "?")
        raise _Fault(
            f"a {response.status_code} body that is not valid JSON (content type"
            f" {content_type}; a proxy page or a cut connection)"
        ) from None
