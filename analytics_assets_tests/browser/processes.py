"""Starting ``dagster dev`` for a browser test, and stopping everything it started.

``dagster dev`` starts three children (a code server, the webserver and the daemon), and runs
start more (run workers, step processes). All of them share the process group of the
``dagster dev`` process, which is started in a session of its own, so the whole tree can be
stopped by process group: SIGINT first (a clean shutdown), then SIGTERM, then SIGKILL.

A process started from a non-interactive shell inherits SIGINT (and, in some CI shells,
SIGTERM) as *ignored*; ``dagster dev`` would then not stop on either. The child therefore resets
both to their defaults before it executes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTANCE_TEMPLATE = PROJECT_ROOT / "analytics_assets" / "dagster_layer" / "dagster.yaml"
LOCATION_NAME = "analytics_assets"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _default_signals() -> None:
    """In the child before exec: SIGINT/SIGTERM back to their defaults (see module doc)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_in_own_group(
    command: list[str], *, cwd: Path, env: Mapping[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new session and process group."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_signals,  # noqa: PLW1509 - single-threaded at this point
    )


def group_alive(pgid: int) -> bool:
    """True while any process (zombies included) is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[str]:
    """``pid command`` of each process in the group (for error messages)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        members.append(f"{entry.name} {command.strip()[:160]}")
    return members


def stop_process_group(
    process: subprocess.Popen[Any],
    *,
    graceful_seconds: float = 30.0,
    term_seconds: float = 10.0,
) -> list[str]:
    """Stop ``process`` and everything in its process group; the escalations that were needed.

    The group id is the leader's pid (``start_new_session=True``). The leader is reaped as
    soon as it exits, so that a zombie leader does not keep the group "alive".
    """
    pgid = process.pid
    escalations: list[str] = []

    def wait_for_group(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            process.poll()  # reap the leader when it exits
            if not group_alive(pgid):
                return True
            time.sleep(0.2)
        process.poll()
        return not group_alive(pgid)

    for signum, seconds in (
        (signal.SIGINT, graceful_seconds),
        (signal.SIGTERM, term_seconds),
        (signal.SIGKILL, term_seconds),
    ):
        if not group_alive(pgid):
            break
        if signum != signal.SIGINT:
            escalations.append(f"{signal.Signals(signum).name}: {group_members(pgid)}")
        try:
            if signum == signal.SIGINT and process.poll() is None:
                # The leader shuts its children down itself; signalling the whole group at
                # once would interrupt them mid-shutdown.
                process.send_signal(signum)
            else:
                os.killpg(pgid, signum)
        except ProcessLookupError:
            break
        if wait_for_group(seconds):
            break
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        escalations.append("leader did not exit")
    return escalations


class DagsterDev:
    """``dagster dev -w workspace.yaml`` from the project root, isolated in ``home``.

    ``home`` gets its own ``DAGSTER_HOME`` (with the shipped dagster.yaml) and DuckDB file;
    the Split API is the sandbox at ``api_base_url``, without a key.
    """

    def __init__(self, home: Path, api_base_url: str, *, port: int | None = None) -> None:
        self.home = home
        self.dagster_home = home / "dagster_home"
        self.duckdb_path = home / "warehouse" / "analytics.duckdb"
        self.api_base_url = api_base_url
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "dagster-dev.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.escalations: list[str] = []

    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SPLIT_", "ANALYTICS_", "DAGSTER_", "DESTINATION__"))
        }
        env.update(
            {
                "DAGSTER_HOME": str(self.dagster_home),
                "ANALYTICS_DUCKDB_PATH": str(self.duckdb_path),
                "SPLIT_API_BASE_URL": self.api_base_url,
                "SPLIT_BACKOFF_FACTOR": "0.05",
                "RUNTIME__DLTHUB_TELEMETRY": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start(self) -> DagsterDev:
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(INSTANCE_TEMPLATE, self.dagster_home / "dagster.yaml")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        self.process = start_in_own_group(
            command, cwd=PROJECT_ROOT, env=self.environment(), log=self._log
        )
        return self

    @property
    def pgid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        noise = ("Warning", "for check in", "return defs", "map_resolved")
        return "\n".join([line for line in text if not any(n in line for n in noise)][-lines:])

    def _check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def wait_until_serving(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for ``/server_info`` to answer; its JSON."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                response = requests.get(self.base_url + "/server_info", timeout=2)
                if response.ok:
                    return response.json()  # type: ignore[no-any-return]
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"dagster dev did not serve {self.base_url} within {timeout:.0f}s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.5)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            self.base_url + "/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {json.dumps(body['errors'])[:1000]}")
        return body["data"]  # type: ignore[no-any-return]

    def wait_until_location_loaded(self, timeout: float = 180.0) -> None:
        """Wait for the code location to finish loading (and fail on a load error)."""
        query = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
            name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
        } } } }"""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                entries = self.graphql(query)["workspaceOrError"].get("locationEntries", [])
            except (requests.RequestException, RuntimeError):
                entries = []
            for entry in entries:
                if entry["name"] != LOCATION_NAME or entry["loadStatus"] != "LOADED":
                    continue
                location = entry["locationOrLoadError"] or {}
                if location.get("__typename") == "PythonError":
                    raise RuntimeError(f"the code location failed to load: {location['message']}")
                if location.get("__typename") == "RepositoryLocation":
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the code location did not load:\n{self.log_tail()}")
            time.sleep(1.0)

    def active_runs(self) -> list[dict[str, Any]]:
        """Runs that are queued or running, and backfills that are not finished (GraphQL)."""
        data = self.graphql(
            """{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED,
                                                 CANCELING]}) {
                   ... on Runs { results { runId status } } }
                 partitionBackfillsOrError(status: REQUESTED) {
                   ... on PartitionBackfills { results { id status } } } }"""
        )
        runs = list(data["runsOrError"].get("results", []))
        backfills = list(data["partitionBackfillsOrError"].get("results", []))
        return runs + backfills

    def stop(self) -> None:
        if self.process is not None:
            self.escalations = stop_process_group(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_for(
    condition: Callable[[], Any], *, timeout: float, interval: float = 1.0, message: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not met within {timeout:.0f}s")
        time.sleep(interval)
