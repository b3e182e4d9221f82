"""Transient, reproducible fault injection for ``/internal/api`` requests.

Whether a request fails, and how, is a pure function of (seed, request fingerprint, attempt
number of that fingerprint), where the fingerprint is method + path + sorted query. So the
same client behaviour meets the same faults in every run. A fingerprint never fails more than
``max_consecutive_faults`` times in a row, so a client that retries that many times plus one
always gets through, and a fault never changes the data that is eventually served.

Kinds:

* ``500``, ``502``, ``503``, ``504``: a server or gateway error (JSON or plain text body);
* ``429``: a rate-limit answer with Split's reset headers (contract §1.4);
* ``html``: a 502 or 503 with a proxy's ``text/html`` error page;
* ``slow``: the real answer, after ``slow_ms`` (meant to exceed client timeouts);
* ``truncated``: a 200 whose JSON body is cut short, with a matching Content-Length;
* ``drop``: the real headers and part of the body, then the connection is closed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
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
        if config.fault_rate <= 0 or config.max_consecutive_faults == 0:
            return None
        with self._lock:
            self._attempts[fingerprint] += 1
            attempt = self._attempts[fingerprint]
            if self._consecutive[fingerprint] >= config.max_consecutive_faults:
                self._consecutive[fingerprint] = 0
                return None
            digest = hashlib.blake2b(
                f"{config.seed}|{fingerprint}|{attempt}".encode(), digest_size=8
            ).digest()
            draw = int.from_bytes(digest[:4], "big") / 2**32
            if draw >= config.fault_rate:
                self._consecutive[fingerprint] = 0
                return None
            self._consecutive[fingerprint] += 1
            return config.fault_kinds[int.from_bytes(digest[4:], "big") % len(config.fault_kinds)]


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
