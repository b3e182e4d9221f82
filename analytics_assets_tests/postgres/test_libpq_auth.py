"""Postgres like libpq: the DSN forms users write, with no password in them.

- Trust authentication (the local test server): ``postgresql://user@127.0.0.1:5432/db`` and
  the Unix-socket form ``postgresql:///db?host=<socket folder>`` work for the warehouse.
- A password the DSN does not carry: a private PostgreSQL cluster started for this module
  requires scram-sha-256 over TCP. Without a password the connection is refused (so the
  server really checks), and ``PGPASSWORD``, ``PGPASSFILE`` and ``~/.pgpass`` each make it
  work, for the warehouse (``analytics-assets query`` and ``sync``'s preflight) and for
  Dagster's storage (deploy/dagster-postgres.yaml with an empty ``DAGSTER_PG_PASSWORD``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from analytics_assets_tests.postgres.conftest import (
    PostgresDatabase,
    clean_environment,
    postgres_instance_home,
)
from analytics_assets_tests.support import run_cli

pytestmark = pytest.mark.postgres

ROLE, ROLE_PASSWORD, DATABASE = "aa_libpq_role", "libpq-test-password-7f3a", "aa_libpq_db"
SOCKET_FOLDER = Path("/var/run/postgresql")


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PasswordServer:
    port: int
    socket_folder: Path

    def dsn(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"


@pytest.fixture(scope="module")
def password_server() -> Iterator[PasswordServer]:
    """A private cluster: trust on its own socket (to set it up), scram-sha-256 over TCP."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("needs PostgreSQL's server binaries (initdb, pg_ctl)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to start a cluster as postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="analytics-assets-pg-"))
    root.chmod(0o777)
    data, port = root / "data", _free_port()
    superuser_password = root / "superuser-password"
    superuser_password.write_text("unused-superuser-password\n")
    superuser_password.chmod(0o644)
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres"]
    initdb += ["--auth-local=trust", "--auth-host=scram-sha-256"]
    initdb += [f"--pwfile={superuser_password}"]
    subprocess.run([*as_user, *initdb], check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    start = [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log")]
    subprocess.run([*as_user, *start, "-w", "start"], check=True, capture_output=True, timeout=120)
    try:
        import psycopg2

        connection = psycopg2.connect(host=str(root), port=port, user="postgres", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD %s", (ROLE_PASSWORD,))
            cursor.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        connection.close()
        yield PasswordServer(port, root)
    finally:
        stop = [str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run([*as_user, *stop], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _user_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user with an empty home (no ~/.pgpass) and no libpq variables unless given."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in clean_environment().items() if not k.startswith("PG") and k != "HOME"}
    env.update({"HOME": str(home), "ANALYTICS_DESTINATION": "postgres", **extra})
    return env


def _query(tmp_path: Path, dsn: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = _user_environment(tmp_path, DESTINATION__POSTGRES__CREDENTIALS=dsn, **extra)
    return run_cli(["query", "SELECT current_user, current_database()"], tmp_path, env, 120)


def _assert_sentence(result: subprocess.CompletedProcess[str]) -> None:
    for noise in ("Traceback", "Stack Trace"):
        assert noise not in result.stdout + result.stderr, result.stderr


def test_trust_dsns_without_password(postgres_server: PostgresDatabase, tmp_path: Path):
    user, host, port = postgres_server.user, postgres_server.host, postgres_server.port
    forms = [f"postgresql://{user}@{host}:{port}/{postgres_server.name}"]
    if (SOCKET_FOLDER / f".s.PGSQL.{port}").exists():
        forms.append(f"postgresql:///{postgres_server.name}?host={SOCKET_FOLDER}&port={port}")
    for dsn in forms:
        result = _query(tmp_path, dsn, PGUSER=user)
        assert result.returncode == 0, f"{dsn}\n{result.stdout}\n{result.stderr}"
        assert postgres_server.name in result.stdout and user in result.stdout


def test_password_from_pgpassword_or_pgpass(password_server: PasswordServer, tmp_path: Path):
    dsn = password_server.dsn()

    refused = _query(tmp_path, dsn)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "password" in refused.stderr.lower()  # the server's own reason: no password
    _assert_sentence(refused)

    preflight = run_cli(
        ["sync"],
        tmp_path,
        _user_environment(
            tmp_path,
            DESTINATION__POSTGRES__CREDENTIALS=dsn,
            SPLIT_API_KEY="unused-key",
            SPLIT_API_BASE_URL=f"http://127.0.0.1:{_free_port()}/internal/api",
        ),
        120,
    )
    message = " ".join(preflight.stderr.split())
    assert preflight.returncode == 2 and "Cannot connect to the postgres destination" in message
    _assert_sentence(preflight)

    with_variable = _query(tmp_path, dsn, PGPASSWORD=ROLE_PASSWORD)
    assert with_variable.returncode == 0, with_variable.stderr
    assert ROLE in with_variable.stdout

    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{password_server.port}:{DATABASE}:{ROLE}:{ROLE_PASSWORD}\n")
    passfile.chmod(0o600)
    with_passfile = _query(tmp_path, dsn, PGPASSFILE=str(passfile))
    assert with_passfile.returncode == 0, with_passfile.stderr

    home_passfile = tmp_path / "home" / ".pgpass"
    home_passfile.write_text(passfile.read_text())
    home_passfile.chmod(0o600)
    with_home_passfile = _query(tmp_path, dsn)
    assert with_home_passfile.returncode == 0, with_home_passfile.stderr
    for result in (refused, preflight, with_variable, with_passfile, with_home_passfile):
        assert ROLE_PASSWORD not in result.stdout + result.stderr


OPEN_INSTANCE = (
    "from dagster import DagsterInstance\n"
    "with DagsterInstance.get() as instance:\n"
    "    print(type(instance.run_storage).__name__, len(instance.get_runs()))\n"
)


def test_dagster_storage_without_password(password_server: PasswordServer, tmp_path: Path):
    home = postgres_instance_home(tmp_path / "dagster_home")
    dagster = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(password_server.port),
        "DAGSTER_PG_USER": ROLE,
        "DAGSTER_PG_PASSWORD": "",  # left to libpq
        "DAGSTER_PG_DB": DATABASE,
    }

    def open_instance(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", OPEN_INSTANCE],
            env=_user_environment(tmp_path, **dagster, **extra),
            capture_output=True,
            text=True,
            timeout=180,
        )

    refused = open_instance()
    assert refused.returncode != 0 and "password" in refused.stderr.lower()
    opened = open_instance(PGPASSWORD=ROLE_PASSWORD)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.split() == ["PostgresRunStorage", "0"]
