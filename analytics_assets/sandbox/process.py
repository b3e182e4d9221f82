"""Run the sandbox as a subprocess: the way tests and benchmarks use it.

    with SandboxProcess(size="tiny", seed=7) as sandbox:
        requests.get(sandbox.base_url + "/v2/workspaces", headers={"x-api-key": "k"})
        truth = sandbox.ground_truth()

The server runs in its own process (``python -m analytics_assets.sandbox --port 0 ...``) so
that its memory can be measured apart from the client's and it can be stopped like a real
service.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import requests

from analytics_assets.sandbox.endpoints import API_PREFIX

_BANNER = re.compile(r"serving at (?P<root>http://\S+?)" + re.escape(API_PREFIX) + r"\s")


class SandboxStartError(RuntimeError):
    """The sandbox subprocess exited or stayed silent instead of starting."""


class SandboxProcess:
    """A sandbox server in a subprocess, started on a free port; a context manager.

    Keyword arguments mirror the CLI options; ``None`` leaves the CLI default.
    """

    def __init__(
        self,
        size: str = "tiny",
        seed: int = 42,
        generation: int = 0,
        *,
        api_key: str | None = None,
        rate_limit: int | None = None,
        latency_ms: int | None = None,
        fault_rate: float | None = None,
        fault_kinds: str | list[str] | tuple[str, ...] | None = None,
        slow_ms: int | None = None,
        retry_after: bool = False,
        harness_mode: bool = False,
        max_consecutive_faults: int | None = None,
        stall_ms: int | None = None,
        incident_seconds: float | None = None,
        drift: str | list[str] | tuple[str, ...] | None = None,
        forms: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        startup_timeout: float = 120.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.size = size
        self.seed = seed
        self.generation = generation
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self._api_key = api_key
        self._options: list[str] = [
            "--size",
            size,
            "--seed",
            str(seed),
            "--generation",
            str(generation),
        ]
        optional: dict[str, Any] = {
            "--rate-limit": rate_limit,
            "--latency-ms": latency_ms,
            "--fault-rate": fault_rate,
            "--slow-ms": slow_ms,
            "--max-consecutive-faults": max_consecutive_faults,
            "--stall-ms": stall_ms,
            "--incident-seconds": incident_seconds,
        }
        for name, value in (forms or {}).items():
            # Form settings (analytics_assets.sandbox.forms), e.g. {"attributes_envelope": "data"}.
            optional["--" + name.replace("_", "-")] = value
        if drift:
            optional["--drift"] = drift if isinstance(drift, str) else ",".join(drift)
        if fault_kinds is not None:
            optional["--fault-kinds"] = (
                fault_kinds if isinstance(fault_kinds, str) else ",".join(fault_kinds)
            )
        for flag, value in optional.items():
            if value is not None:
                self._options += [flag, str(value)]
        if retry_after:
            self._options.append("--retry-after")
        if harness_mode:
            self._options.append("--harness-mode")
        self._options += ["--log-level", log_level]
        self.log_path = Path(log_path) if log_path else None
        self._owns_log = False
        """True when the log is a temporary file of ours, removed after a clean run."""
        self._log_file: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._session = requests.Session()
        self.root_url = ""
        self.base_url = ""

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SandboxProcess:
        """Start the server and wait until ``/_sandbox/health`` answers."""
        if self._process is not None:
            return self
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="sandbox-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
            self._owns_log = True
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable,
            "-m",
            "analytics_assets.sandbox",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self._options,
        ]
        environment = dict(os.environ)
        if self._api_key is not None:
            # Passed as an option, never logged; kept out of error messages below.
            command += ["--api-key", self._api_key]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._log_file, env=environment
        )
        try:
            line = self._read_banner()
            match = _BANNER.search(line + " ")
            if match is None:
                raise SandboxStartError(f"unexpected sandbox banner: {line!r}")
            self.root_url = match.group("root")
            self._drain_stdout()
            self.base_url = self.root_url + API_PREFIX
            self._wait_healthy()
        except BaseException:
            self.stop(keep_log=True)
            raise
        return self

    def _read_banner(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ)
        buffer = b""
        try:
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SandboxStartError(
                        f"sandbox did not start within {self.startup_timeout:.0f} s; "
                        f"log: {self.log_path}\n{self.log_tail()}"
                    )
                if selector.select(timeout=min(remaining, 0.5)):
                    chunk = os.read(self._process.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buffer += chunk
                elif self._process.poll() is not None:
                    break
        finally:
            selector.close()
        if b"\n" not in buffer:
            raise SandboxStartError(
                f"sandbox exited with status {self._process.poll()} before serving; "
                f"log: {self.log_path}\n{self.log_tail()}"
            )
        return buffer.split(b"\n", 1)[0].decode()

    def _drain_stdout(self) -> None:
        """Keep reading stdout after the banner, so a chatty server can never block on it."""
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout

        def drain() -> None:
            with contextlib.suppress(OSError, ValueError):
                while os.read(stream.fileno(), 65536):
                    pass

        threading.Thread(target=drain, name="sandbox-stdout", daemon=True).start()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                if self._session.get(self.root_url + "/_sandbox/health", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SandboxStartError(f"sandbox at {self.root_url} never became healthy")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0, keep_log: bool = False) -> int | None:
        """SIGTERM the server (by pid), SIGKILL after ``timeout`` s; the exit status.

        A temporary log is removed unless ``keep_log`` or the server did not exit cleanly.
        """
        process, self._process = self._process, None
        status = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=timeout)
            status = process.returncode
            if process.stdout is not None:
                process.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._owns_log and not keep_log and status == 0 and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self._owns_log = False
        self._session.close()
        return status

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the sandbox is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log (stderr), for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # --- control and observability -------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        response = self._session.get(self.root_url + path, params=params or None, timeout=300)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._get("/_sandbox/health")  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        """Request counters: totals, per endpoint and status, faults, rate limiting."""
        return self._get("/_sandbox/stats")  # type: ignore[no-any-return]

    def reset_stats(self) -> dict[str, Any]:
        response = self._session.post(self.root_url + "/_sandbox/stats/reset", timeout=30)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def ground_truth(self, rows: bool = True, tables: list[str] | None = None) -> dict[str, Any]:
        """The ground-truth document; ``rows=False`` for counts only (needed at large sizes)."""
        params: dict[str, str] = {"rows": "true" if rows else "false"}
        if tables:
            params["tables"] = ",".join(tables)
        return self._get("/_sandbox/ground-truth", **params)  # type: ignore[no-any-return]

    def ground_truth_rows(self, table: str) -> Iterator[dict[str, Any]]:
        """Iterate one table's ground-truth rows, streamed as NDJSON."""
        with self._session.get(
            f"{self.root_url}/_sandbox/ground-truth/{table}.ndjson", stream=True, timeout=300
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)

    def control(self, **changes: Any) -> dict[str, Any]:
        """Change settings at runtime (generation, api_key, rate_limit, faults...)."""
        response = self._session.post(
            self.root_url + "/_sandbox/control", json=changes, timeout=300
        )
        if response.status_code == 400:
            raise ValueError(response.json().get("message", response.text))
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    # --- memory --------------------------------------------------------------------------------

    def _proc_status(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"{field} not found for pid {self.pid}")

    def rss_bytes(self) -> int:
        """The server's current resident memory (VmRSS), in bytes. Linux only."""
        return self._proc_status("VmRSS")

    def peak_rss_bytes(self) -> int:
        """The server's peak resident memory (VmHWM), in bytes. Linux only."""
        return self._proc_status("VmHWM")
