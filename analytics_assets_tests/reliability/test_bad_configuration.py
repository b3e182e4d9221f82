"""Bad configuration fails within seconds, with a message that says what to change.

Each case runs ``analytics-assets sync`` as a user would, with one thing wrong. None may
fetch the whole organisation first, print a stack trace, or echo a secret (the API key or
the destination password).

"Within seconds" is measured twice: wall time under 15 s (``RELIABILITY_CONFIG_SECONDS``),
stretched only when the machine is oversubscribed (1-minute load above 2 per core: the
limit grows with it, and the figures record it), and CPU time of the CLI process, held to
what importing the CLI's modules costs on this machine (measured in the same session: it
varied from 5.5 to 9 s between days on the same machine) plus a fixed budget for the
preflight itself. Building the definitions or launching a run costs more than that budget
(before names were checked in the preflight, an unknown name cost 7 s more).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics_assets_tests.reliability.harness import clean_environment, load_factor

pytestmark = pytest.mark.slow

LIMIT_SECONDS = float(os.environ.get("RELIABILITY_CONFIG_SECONDS", "15"))
PREFLIGHT_CPU_SECONDS = 4.0
"""CPU a failing preflight may use beyond importing the CLI's modules."""
IMPORTS = (
    "import analytics_assets.cli, analytics_assets.dagster_layer.sync,"
    " analytics_assets.dagster_layer.resources, analytics_assets.warehouse"
)
PG_PASSWORD = "pg-RELIABILITY-" + secrets.token_hex(8)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_reachable() -> bool:
    if importlib.util.find_spec("psycopg2") is None:
        return False
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


DEAD_API = f"http://127.0.0.1:{_closed_port()}/internal/api"  # never reached: config fails first

CASES = {
    # name: (environment, CLI arguments, needs the sandbox, exit code, expected fragments)
    "missing API key": (
        {"SPLIT_API_KEY": None, "SPLIT_API_BASE_URL": None, "API_KEY": None},
        [],
        False,
        2,
        ("No Split Admin API key", "Set SPLIT_API_KEY", "Admin settings > API keys"),
    ),
    "malformed base URL": (
        {"SPLIT_API_BASE_URL": "api.split.io/internal"},
        [],
        False,
        2,
        ("SPLIT_API_BASE_URL='api.split.io/internal' is not a valid http(s) URL", "expected"),
    ),
    "unknown destination": (
        {"ANALYTICS_DESTINATION": "nosuch", "SPLIT_API_BASE_URL": DEAD_API},
        [],
        False,
        2,
        ("ANALYTICS_DESTINATION='nosuch' is not a dlt destination", "Use one of", "duckdb"),
    ),
    "postgres destination on a closed port": (
        {
            "ANALYTICS_DESTINATION": "postgres",
            "DESTINATION__POSTGRES__CREDENTIALS": (
                f"postgresql://analytics:{PG_PASSWORD}@127.0.0.1:{_closed_port()}/analytics"
            ),
            "SPLIT_API_BASE_URL": DEAD_API,
        },
        [],
        False,
        2,
        ("Cannot connect to the postgres destination", "DESTINATION__POSTGRES__CREDENTIALS"),
    ),
    "postgres destination, wrong user and password": (
        {
            "ANALYTICS_DESTINATION": "postgres",
            "DESTINATION__POSTGRES__CREDENTIALS": (
                f"postgresql://no_such_user:{PG_PASSWORD}@127.0.0.1:5432/postgres"
            ),
            "SPLIT_API_BASE_URL": DEAD_API,
        },
        [],
        False,
        2,
        ("Cannot connect to the postgres destination", "no_such_user", "credentials"),
    ),
    "malformed number (SPLIT_MAX_REQUESTS_PER_SECOND)": (
        {"SPLIT_MAX_REQUESTS_PER_SECOND": "fast", "SPLIT_API_BASE_URL": DEAD_API},
        [],
        False,
        2,
        ("SPLIT_MAX_REQUESTS_PER_SECOND='fast' is not valid", "e.g. 3 or 0.5"),
    ),
    "unknown workspace on the command line": (
        {},
        ["--workspace", "No Such Workspace"],
        True,
        2,
        ("Workspace 'No Such Workspace' does not exist", "known workspaces:", "Default ("),
    ),
    "unknown environment on the command line": (
        {},
        ["--environment", "nope"],
        True,
        2,
        ("Environment 'nope' does not exist", "known environments:", "Production ("),
    ),
}


@pytest.fixture(scope="module")
def import_cpu_seconds() -> float:
    """CPU of a process that only imports what the CLI's sync imports (the least of two)."""
    env = clean_environment()
    spent = []
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", IMPORTS], env=env, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return min(spent)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_configuration_fails_fast_and_says_what_to_do(
    case, make_project, figures, secret, import_cpu_seconds
):
    env, args, needs_sandbox, code, fragments = CASES[case]
    if "wrong user" in case and not _postgres_reachable():
        pytest.skip("needs the postgres extra and a PostgreSQL server on 127.0.0.1:5432")
    if "postgres" in case and importlib.util.find_spec("psycopg2") is None:
        pytest.skip("needs the postgres extra")
    project = make_project(sandbox=needs_sandbox)

    result = project.cli("sync", *args, **env)

    assert result.returncode == code, str(result)
    message = " ".join(result.stderr.split())  # as one line
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{result.stderr}"
    for noise in ("Traceback", "Stack Trace"):
        assert noise not in result.stderr
    for hidden in (secret, PG_PASSWORD):
        assert hidden not in result.stdout + result.stderr
    load = load_factor()
    limit = LIMIT_SECONDS * max(1.0, load / 2)
    assert result.seconds < limit, f"took {result.seconds:.1f}s (load {load:.1f} per core)"
    cpu_budget = import_cpu_seconds + PREFLIGHT_CPU_SECONDS
    assert result.cpu_seconds < cpu_budget, (
        f"used {result.cpu_seconds:.1f}s of CPU; importing the CLI's modules takes"
        f" {import_cpu_seconds:.1f}s"
    )
    # Failed in the preflight, before any Dagster run was launched...
    assert "Running split_" not in result.stderr
    if needs_sandbox:
        # ...having read the listing that names are checked against, and nothing else.
        assert set(project.sandbox.stats()["by_endpoint"]) == {"workspaces", "environments"}
    figures.add(
        "configuration",
        case,
        "analytics-assets sync",
        f"exit {result.returncode}",
        seconds=round(result.seconds, 1),
        cpu_seconds=round(result.cpu_seconds, 1),
        import_cpu_seconds=round(import_cpu_seconds, 1),
        load_per_core=round(load, 1),
        message=re.sub(r"^.*?(error: |sync failed: \S+ failed: )", "", message)[:300],
    )


# --- the filesystem: read-only, a file in the way, a full disk ------------------------------


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A real small filesystem at ``path`` (root only): full or read-only for real, which
    file modes cannot give a root user. Unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


FILESYSTEM_CASES = {
    # name: (what is wrong, exit code, expected fragments)
    "read-only DuckDB folder": (
        "duckdb on read-only",
        2,
        ("the DuckDB file's folder", "(ANALYTICS_DUCKDB_PATH)", "Read-only file system",
         "Point it at a writable folder"),
    ),
    "read-only DAGSTER_HOME": (
        "home on read-only",
        2,
        ("the Dagster instance folder", "(DAGSTER_HOME)", "Read-only file system"),
    ),
    "DAGSTER_HOME whose parent is missing on a read-only disk": (
        "home under a missing parent on read-only",
        2,
        ("the Dagster instance folder", "(DAGSTER_HOME)", "Read-only file system"),
    ),
    "a file where DAGSTER_HOME belongs": (
        "home is a file",
        2,
        ("(DAGSTER_HOME) is a file, not a folder", "Point DAGSTER_HOME at a folder"),
    ),
    "a file where the DuckDB file's folder belongs": (
        "duckdb parent is a file",
        2,
        ("(ANALYTICS_DUCKDB_PATH) is a file, not a folder", "Point ANALYTICS_DUCKDB_PATH"),
    ),
    "ANALYTICS_DUCKDB_PATH names a folder": (
        "duckdb path is a folder",
        2,
        ("is a folder; it names the DuckDB file",),
    ),
    "full disk under the DuckDB file": (
        "duckdb on a full disk",
        1,
        ("No space left on device", "Free space on that device",
         "the tables keep their last complete load"),
    ),
    "full disk under DAGSTER_HOME": (
        "home on a full disk",
        1,
        ("A write failed to the Dagster instance (DAGSTER_HOME)", "No space left on device",
         "Free space on that device"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FILESYSTEM_CASES))
def test_filesystem_states_fail_with_a_sentence(case, make_project, figures, secret):
    wrong, code, fragments = FILESYSTEM_CASES[case]
    project = make_project()
    place = project.root / "place"
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if "read-only" in wrong:
            stack.enter_context(_tmpfs(place, "2m", read_only=True))
        elif "full disk" in wrong:
            stack.enter_context(_tmpfs(place, "1m"))
        else:
            place.mkdir()
        if wrong == "duckdb on read-only":
            env["ANALYTICS_DUCKDB_PATH"] = str(place / "warehouse.duckdb")
        elif wrong == "home on read-only":
            env["DAGSTER_HOME"] = str(place)
        elif wrong == "home under a missing parent on read-only":
            env["DAGSTER_HOME"] = str(place / "missing" / "dagster_home")
        elif wrong == "home is a file":
            (place / "home").write_text("not a folder\n")
            env["DAGSTER_HOME"] = str(place / "home")
        elif wrong == "duckdb parent is a file":
            (place / "data").write_text("not a folder\n")
            env["ANALYTICS_DUCKDB_PATH"] = str(place / "data" / "warehouse.duckdb")
        elif wrong == "duckdb path is a folder":
            (place / "warehouse.duckdb").mkdir()
            env["ANALYTICS_DUCKDB_PATH"] = str(place / "warehouse.duckdb")
        elif wrong == "duckdb on a full disk":
            env["ANALYTICS_DUCKDB_PATH"] = str(place / "warehouse.duckdb")
        elif wrong == "home on a full disk":
            env["DAGSTER_HOME"] = str(place / "dagster_home")

        result = project.cli("sync", **env)

    assert result.returncode == code, str(result)
    message = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{result.stderr}"
    for noise in ("Traceback", "Stack Trace"):
        assert noise not in result.stdout + result.stderr, str(result)
    assert secret not in result.stdout + result.stderr
    if code == 2:
        assert "Running split_" not in result.stderr  # the preflight caught it
    figures.add(
        "configuration",
        case,
        "analytics-assets sync",
        f"exit {result.returncode}",
        seconds=round(result.seconds, 1),
        stderr_lines=len(result.stderr.splitlines()),
        message=re.sub(r"^.*?(error: |sync failed: \S+ failed: )", "", message),
    )
