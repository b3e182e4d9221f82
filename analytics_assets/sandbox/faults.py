"""Transient, reproducible fault injection for ``/internal/api`` requests.

Whether a request fails, and how, is a pure function of (seed, request fingerprint, attempt
number of that fingerprint), where the fingerprint is method + path + sorted query. So the
same client behaviour meets the same faults in every run. By default each attempt fails with
probability ``fault_rate`` whatever happened before, as on a real network: a request can fail
any number of times in a row. ``max_consecutive_faults`` caps that, for tests that need a
bound. A fault never changes the data that is eventually served.

An *incident* (``incident_until``) fails every request until that moment, as an API outage
does; its faults are drawn from ``fault_kinds`` the same way.

Kinds:

* ``500``, ``502``, ``503``, ``504``: a server or gateway error (JSON or plain text body);
* ``429``: a rate-limit answer with Split's reset headers (contract §1.4);
* ``html``: a 502 or 503 with a proxy's ``text/html`` error page;
* ``slow``: the real answer, after ``slow_ms`` (meant to exceed client timeouts);
* ``truncated``: a 200 whose JSON body is cut short, with a matching Content-Length;
* ``drop``: the real headers and part of the body, then the connection is closed;
* ``shape``: a 200 with valid JSON of the wrong shape (the records key missing or null, a
  ``{"message": ...}`` object, JSON ``null``), as a misconfigured proxy or API gateway sends;
* ``stall``: the real headers, then no body for ``stall_ms``, then the connection is closed;
* ``drip``: the real answer, one byte a second.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qsl, urlencode

from analytics_assets.sandbox.config import SandboxConfig

Headers = list[tuple[bytes, bytes]]


def request_fingerprint(method: str, path: str, query_string: bytes) -> str:
    """Method + path + query with parameters sorted, so parameter order does not matter."""
    pairs = sorted(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    return f"{method.upper()} {path}?{urlencode(pairs)}"


class FaultInjector:
    """Decides, per request, whether to inject a fault; remembers attempts per fingerprint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = defaultdict(int)
        self._consecutive: dict[str, int] = defaultdict(int)

    def reset(self) -> None:
        with self._lock:
            self._attempts.clear()
            self._consecutive.clear()

    def decide(self, config: SandboxConfig, fingerprint: str) -> str | None:
        """The fault kind for this attempt of ``fingerprint``, or None to serve normally."""
        in_incident = config.incident_until > time.time()
        cap = config.max_consecutive_faults
        if not in_incident and (config.fault_rate <= 0 or cap == 0):
            return None
        with self._lock:
            self._attempts[fingerprint] += 1
            attempt = self._attempts[fingerprint]
            digest = hashlib.blake2b(
                f"{config.seed}|{fingerprint}|{attempt}".encode(), digest_size=8
            ).digest()
            kind = config.fault_kinds[int.from_bytes(digest[4:], "big") % len(config.fault_kinds)]
            if in_incident:
                return kind
            if cap is not None and self._consecutive[fingerprint] >= cap:
                self._consecutive[fingerprint] = 0
                return None
            draw = int.from_bytes(digest[:4], "big") / 2**32
            if draw >= config.fault_rate:
                self._consecutive[fingerprint] = 0
                return None
            self._consecutive[fingerprint] += 1
            return kind


def _json_body(status: int, message: str) -> bytes:
    return json.dumps(
        {"code": status, "message": message, "details": "", "transactionId": "sandbox-fault"}
    ).encode()


_HTML_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def error_fault_response(kind: str, fingerprint: str) -> tuple[int, Headers, bytes]:
    """Status, headers and body for the faults that replace the answer entirely."""
    if kind == "html":
        # Alternate between the two proxy errors, reproducibly per fingerprint.
        status = (
            502 if hashlib.blake2b(fingerprint.encode(), digest_size=1).digest()[0] % 2 else 503
        )
        reason = "Bad Gateway" if status == 502 else "Service Temporarily Unavailable"
        body = _HTML_PAGE.format(status=status, reason=reason).encode()
        return status, [(b"content-type", b"text/html")], body
    if kind == "500":
        return (
            500,
            [(b"content-type", b"application/json")],
            _json_body(500, "Internal Server Error"),
        )
    if kind == "503":
        return 503, [(b"content-type", b"application/json")], _json_body(503, "Service Unavailable")
    if kind == "502":
        body = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"
        return 502, [(b"content-type", b"text/plain")], body
    if kind == "504":
        return 504, [(b"content-type", b"text/plain")], b"upstream request timeout"
    if kind == "429":
        return 429, [(b"content-type", b"application/json")], _json_body(429, "Too Many Requests")
    raise ValueError(f"fault kind {kind!r} does not replace the response")


REPLACING_KINDS = frozenset({"500", "502", "503", "504", "429", "html"})
"""Kinds answered without running the API at all."""


def wrong_shape_body(real_body: bytes, fingerprint: str) -> bytes:
    """A valid JSON body of the wrong shape, derived from the real one (the ``shape`` fault).

    Which of the wrong shapes is served is reproducible per fingerprint.
    """
    try:
        real: Any = json.loads(real_body)
    except ValueError:
        real = None
    choice = hashlib.blake2b(f"shape|{fingerprint}".encode(), digest_size=1).digest()[0] % 4
    message: Any = {"message": "Service temporarily degraded, please retry"}
    if choice == 0 or not isinstance(real, dict):
        wrong = message if choice != 1 else None
    elif choice == 1:
        wrong = None
    else:
        lists = [key for key, value in real.items() if isinstance(value, list)]
        wrong = dict(real)
        for key in lists:
            if choice == 2:
                del wrong[key]  # the records key is missing
            else:
                wrong[key] = {"items": real[key]}  # an object where the list belongs
    return json.dumps(wrong).encode()


STREAMING_KINDS = frozenset({"stall", "drip"})
"""Kinds that serve the real headers and then misbehave in the body."""
