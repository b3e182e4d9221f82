"""A small HTTP server that misbehaves the way real APIs and proxies do, on a script.

Each test gives a ``script(path, query, attempt) -> Answer`` function: what the server answers
to the ``attempt``-th request of that path and query. An ``Answer`` can stall after its
headers, drip its body a byte at a time, or send any status, headers and body.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    """JSON-serialisable, or bytes sent as they are."""
    headers: dict[str, str] = field(default_factory=dict)
    stall_seconds: float = 0.0
    """Hold the body back this long after the headers."""
    drip_seconds: float = 0.0
    """Pause between single bytes of the body."""


Script = Callable[[str, dict[str, str], int], Answer]


@dataclass
class Server:
    url: str
    requests: Counter = field(default_factory=Counter)
    headers_seen: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def misbehaving_server(script: Script, port: int = 0) -> Iterator[Server]:
    lock = threading.Lock()
    server = Server(url="")
    open_connections: set[socket.socket] = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with lock:
                open_connections.add(self.connection)

        def finish(self) -> None:
            with lock:
                open_connections.discard(self.connection)
            super().finish()

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            fingerprint = parts.path + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))
            with lock:
                server.requests[fingerprint] += 1
                attempt = server.requests[fingerprint]
                server.headers_seen.append(dict(self.headers))
            answer = script(parts.path, query, attempt)
            body = (
                answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
            )
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.flush()
                if answer.stall_seconds:
                    time.sleep(answer.stall_seconds)
                if answer.drip_seconds:
                    for index in range(len(body)):
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(answer.drip_seconds)
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{httpd.server_port}/internal/api"
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        # A server that goes away takes its kept-alive connections with it.
        with lock:
            for connection in open_connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


def offset_page(items: list[dict[str, Any]], query: dict[str, str], total: int | None) -> Any:
    offset, limit = int(query.get("offset", 0)), int(query.get("limit", 50))
    body: dict[str, Any] = {
        "objects": items[offset : offset + limit],
        "offset": offset,
        "limit": limit,
    }
    if total is not None:
        body["totalCount"] = total
    return body
