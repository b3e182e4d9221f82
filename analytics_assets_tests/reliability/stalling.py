"""A proxy in front of the sandbox that stalls one response: headers sent, body never.

What a hung upstream or a proxy holding a connection does: the status line and headers
(with the real ``Content-Length``) arrive, then nothing. Every other request is forwarded
unchanged. The stalled connection is held until the proxy closes.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding"}


class StallingProxy:
    """Forwards to ``upstream`` (scheme://host:port); the ``stall_at``-th request stalls."""

    def __init__(self, upstream_base_url: str, stall_at: int) -> None:
        parts = urlsplit(upstream_base_url)
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.path_prefix = parts.path
        self.stall_at = stall_at
        self.requests = 0
        self.stalled = threading.Event()
        self.stalled_path = ""
        self._release = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with proxy._lock:
                    proxy.requests += 1
                    stall = proxy.requests == proxy.stall_at
                request = urllib.request.Request(
                    proxy.upstream + self.path,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, headers, body = response.status, response.headers, response.read()
                except urllib.error.HTTPError as error:
                    status, headers, body = error.code, error.headers, error.read()
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if stall:
                    self.wfile.flush()
                    proxy.stalled_path = self.path
                    proxy.stalled.set()
                    proxy._release.wait()  # the body never comes
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path_prefix}"

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
