"""A proxy in front of the sandbox that fails every request of one scope, persistently.

What the world does when one workspace or environment is gone or broken for a key while the
rest of the organisation answers: Split's 404 (``{"code": 404, "message": ...}``) or a 5xx,
on every request whose path names that scope's id, however often it is retried. Every other
request is forwarded to the sandbox unchanged, headers included (rate-limit headers too).
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class ScopeFaultProxy:
    """``failing`` (an id, or None) may be changed while the proxy runs."""

    def __init__(self, upstream_base_url: str, failing: str | None = None, status: int = 404):
        upstream = urlsplit(upstream_base_url)
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or 80
        self.api_path = upstream.path
        self.failing = failing
        self.status = status
        self.failed_requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                if proxy.failing and proxy.failing in self.path:
                    proxy.failed_requests += 1
                    body = json.dumps(
                        {"code": proxy.status, "message": f"Could not find {proxy.failing}"}
                    ).encode()
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=120
                )
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    upstream.request("GET", self.path, headers=headers)
                    response = upstream.getresponse()
                    body = response.read()
                finally:
                    upstream.close()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.api_path}"

    def __enter__(self) -> ScopeFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
