"""The ASGI middleware in front of every ``/internal/api`` route.

Cross-cutting behaviour lives here, in this order, so that handlers only deal with data:

1. request statistics (``/_sandbox/stats``);
2. added latency (``latency_ms``);
3. fault injection (:mod:`analytics_assets.sandbox.faults`) — the faults play a flaky
   network or proxy, so they sit in front of the API and do not consume rate-limit quota;
4. rate limiting (:mod:`analytics_assets.sandbox.ratelimit`), headers on every answer;
5. authentication (contract §1.2): ``Authorization: Bearer <key>`` or ``x-api-key``;
   failures are 401 with an empty body (contract §1.3, §5.6).

``/_sandbox/*`` control routes pass straight through.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analytics_assets.sandbox.endpoints import API_PREFIX
from analytics_assets.sandbox.faults import (
    REPLACING_KINDS,
    STREAMING_KINDS,
    error_fault_response,
    request_fingerprint,
    wrong_shape_body,
)
from analytics_assets.sandbox.pagination import ApiError
from analytics_assets.sandbox.ratelimit import RateDecision

if TYPE_CHECKING:
    from analytics_assets.sandbox.app import SandboxState

DROP_MESSAGE = "ASGI callable returned without completing response."


class IntentionalDropFilter(logging.Filter):
    """Hide uvicorn's error line for connections the 'drop' fault cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != DROP_MESSAGE


def presented_key(scope: Scope) -> str | None:
    """The API key a request carries, from `Authorization: Bearer` or `x-api-key`."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key":
            token = value.decode("latin-1").strip()
            if token:
                return token
    return None


def _encode_headers(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


async def _send_simple(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ApiGateway:
    """Statistics, latency, faults, rate limits and auth for the Admin API routes."""

    def __init__(
        self,
        app: ASGIApp,
        state: SandboxState,
        api_routes: list[Route],
        error_body: Callable[[ApiError], bytes],
    ) -> None:
        self.app = app
        self.state = state
        self.api_routes = api_routes
        self.error_body = error_body

    def endpoint_name(self, scope: Scope) -> str:
        """The logical table a request is for, or ``other`` for paths the API lacks."""
        for route in self.api_routes:
            match, _ = route.matches(scope)
            if match != Match.NONE:
                return route.name
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        stats = self.state.stats
        endpoint = self.endpoint_name(scope)
        outcome = {"status": "dropped", "complete": False}

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = str(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                outcome["complete"] = True
            await send(message)

        stats.started()
        try:
            await self._serve(scope, receive, observed_send)
        finally:
            stats.finished(endpoint, str(outcome["status"]) if outcome["complete"] else "dropped")

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        config = self.state.config
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        fingerprint = request_fingerprint(scope["method"], scope["path"], scope["query_string"])
        fault = self.state.faults.decide(config, fingerprint)
        if fault is None:
            await self._admit(scope, receive, send)
            return
        self.state.stats.fault(fault)
        if fault in REPLACING_KINDS:
            status, headers, body = error_fault_response(fault, fingerprint)
            if fault == "429":
                decision = RateDecision(False, 0, 0, reset_org=1, reset_ip=1)
                headers = [*headers, *_encode_headers(decision.headers(config.retry_after))]
            await _send_simple(send, status, headers, body)
        elif fault == "slow":
            await asyncio.sleep(config.slow_ms / 1000)
            await self._admit(scope, receive, send)
        elif fault in STREAMING_KINDS:
            await self._misbehave_in_body(fault, scope, receive, send)
        else:
            await self._cut_short(fault, fingerprint, scope, receive, send)

    async def _misbehave_in_body(
        self, fault: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The real status and headers at once, then a body that stalls or drips.

        A client whose timeout is per socket read never times out on a drip (every read
        gets a byte), and a stall past the headers is invisible to a connect timeout.
        """
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self._admit(scope, receive, capture)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send(
            {
                "type": "http.response.start",
                "status": start["status"],
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        if fault == "stall":
            await asyncio.sleep(self.state.config.stall_ms / 1000)
            return  # hang up without the body: the client sees an incomplete read
        for index in range(len(body)):
            await send(
                {
                    "type": "http.response.body",
                    "body": body[index : index + 1],
                    "more_body": index + 1 < len(body),
                }
            )
            if index + 1 < len(body):
                await asyncio.sleep(1.0)

    async def _cut_short(
        self, fault: str, fingerprint: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Serve the real answer truncated (valid HTTP), dropped mid-body, or wrong-shaped."""
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self._admit(scope, receive, capture)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if fault == "shape":
            status = start["status"]
            wrong = wrong_shape_body(body, fingerprint) if status == 200 else body
            await _send_simple(send, status, headers, wrong)
            return
        cut = body[: max(1, len(body) // 2)] if body else b""
        if fault == "truncated":
            await _send_simple(send, start["status"], headers, cut)
            return
        # drop: promise the whole body, send half, then end without completing; uvicorn then
        # closes the connection and the client sees an incomplete read.
        await send(
            {
                "type": "http.response.start",
                "status": start["status"],
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": cut, "more_body": True})

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rate limit, then authenticate, then run the API route."""
        config = self.state.config
        client = scope.get("client")
        decision = self.state.rate_limiter.acquire(client[0] if client else "unknown")
        rate_headers = _encode_headers(decision.headers(config.retry_after))
        if not decision.allowed:
            self.state.stats.limited()
            body = self.error_body(ApiError(429, "Too Many Requests"))
            await _send_simple(
                send, 429, [(b"content-type", b"application/json"), *rate_headers], body
            )
            return
        key = presented_key(scope)
        if key is None or (
            config.api_key is not None
            and not hmac.compare_digest(key.encode(), config.api_key.encode())
        ):
            await _send_simple(send, 401, rate_headers, b"")
            return
        if config.harness_mode and self.endpoint_name(scope) in ("users", "groups"):
            body = self.error_body(
                ApiError(403, "This endpoint is deprecated for accounts migrated to Harness.")
            )
            await _send_simple(
                send, 403, [(b"content-type", b"application/json"), *rate_headers], body
            )
            return

        async def send_with_rate_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *rate_headers]}
            await send(message)

        await self.app(scope, receive, send_with_rate_headers)
