"""A real PostgreSQL server for the tests marked ``postgres``: one fresh database per test.

The server is found through ``ANALYTICS_TEST_POSTGRES_DSN`` (a libpq URL of a role allowed to
CREATE DATABASE), else ``postgresql://postgres@127.0.0.1:5432/postgres`` is tried. Without a
reachable server the tests skip with the reason; with the variable set they fail instead, so a
CI that promised a server cannot pass by skipping. ``.ci/start-postgres.sh`` starts the local
server when it is installed but down.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

DSN_VARIABLE = "ANALYTICS_TEST_POSTGRES_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_INSTANCE_YAML = REPO_ROOT / "deploy" / "dagster-postgres.yaml"


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on the test server; URLs for psycopg2, dlt and the DAGSTER_PG_* values."""

    host: str
    port: int
    user: str
    password: str | None
    name: str

    def url(self) -> str:
        """The libpq URL a user writes: no password part when the server needs none."""
        userinfo = quote(self.user, safe="")
        if self.password:
            userinfo += f":{quote(self.password, safe='')}"
        return f"postgresql://{userinfo}@{self.host}:{self.port}/{self.name}"

    @property
    def dlt_credentials(self) -> str:
        """The value for DESTINATION__POSTGRES__CREDENTIALS: the same URL, as users write it."""
        return self.url()

    def dagster_environment(self) -> dict[str, str]:
        """The variables deploy/dagster-postgres.yaml reads. An empty DAGSTER_PG_PASSWORD
        leaves the password to libpq (trust, peer, PGPASSWORD, .pgpass)."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password or "",
            "DAGSTER_PG_DB": self.name,
        }

    def connect(self):  # type: ignore[no-untyped-def]
        import psycopg2

        return psycopg2.connect(self.url(), connect_timeout=5)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()


def _server_dsn() -> tuple[str, bool]:
    explicit = os.environ.get(DSN_VARIABLE, "").strip()
    return (explicit or DEFAULT_DSN), bool(explicit)


def _unavailable(reason: str, explicit: bool) -> None:
    if explicit:
        pytest.fail(f"{DSN_VARIABLE} is set but {reason}", pytrace=False)
    pytest.skip(
        f"no PostgreSQL server for the postgres tests ({reason}). Start one on"
        f" 127.0.0.1:5432 (.ci/start-postgres.sh) or set {DSN_VARIABLE}."
    )


@pytest.fixture(scope="session")
def postgres_server() -> PostgresDatabase:
    """The maintenance database of a reachable server (skips, or fails, without one)."""
    dsn, explicit = _server_dsn()
    try:
        import psycopg2
    except ImportError:
        _unavailable("psycopg2 is not installed (pip install -e '.[postgres]')", explicit)
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        _unavailable(f"{dsn!r} is not a postgresql://user@host:port/db URL", explicit)
    server = PostgresDatabase(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        name=(parts.path or "/postgres").lstrip("/") or "postgres",
    )
    try:
        server.connect().close()
    except psycopg2.Error as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        _unavailable(f"cannot connect to {server.host}:{server.port} ({first_line})", explicit)
    return server


def _execute_outside_transaction(server: PostgresDatabase, sql: str) -> None:
    """CREATE/DROP DATABASE cannot run inside a transaction block."""
    connection = server.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def _create_database(server: PostgresDatabase, name: str) -> None:
    _execute_outside_transaction(server, f'CREATE DATABASE "{name}"')


def _drop_database(server: PostgresDatabase, name: str) -> None:
    _execute_outside_transaction(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_database(postgres_server: PostgresDatabase) -> Iterator[PostgresDatabase]:
    """A database for one test (warehouse schemas and Dagster's tables), dropped after it."""
    import psycopg2

    name = f"aa_test_{uuid.uuid4().hex[:12]}"
    try:
        _create_database(postgres_server, name)
    except psycopg2.Error as exc:
        pytest.fail(
            f"cannot create a test database on {postgres_server.host}:{postgres_server.port}"
            f" ({str(exc).strip()}); the role needs CREATEDB.",
            pytrace=False,
        )
    database = PostgresDatabase(
        postgres_server.host,
        postgres_server.port,
        postgres_server.user,
        postgres_server.password,
        name,
    )
    try:
        yield database
    finally:
        _drop_database(postgres_server, name)


def clean_environment(**extra: str) -> dict[str, str]:
    """os.environ without project, Dagster and dlt destination settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPLIT_", "ANALYTICS_", "DAGSTER_", "DESTINATION__"))
    }
    env.update(
        {
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "SPLIT_BACKOFF_FACTOR": "0.05",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    env.update(extra)
    return env


def postgres_instance_home(path: Path) -> Path:
    """A DAGSTER_HOME holding the shipped production instance file, unchanged."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(DEPLOY_INSTANCE_YAML.read_text())
    return path
