"""What a first-time user meets at the command line: help, version, query, names, output.

Every command runs as a subprocess with its output piped (not a terminal), as in CI or
``| less``, against a real DuckDB file or the sandbox over HTTP.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import duckdb
import pytest

from analytics_assets_tests.support import cli_environment, run_cli

LONG_VALUE = "a value longer than any terminal | with a pipe " + "x" * 150


@pytest.fixture
def warehouse_file(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA split")
        con.execute(
            "CREATE TABLE split.flags AS SELECT i AS id, ? AS note, i % 2 = 0 AS killed,"
            " NULL::VARCHAR AS owner FROM range(3) AS r(i)",
            [LONG_VALUE],
        )
    return path


def test_no_arguments_prints_help_and_version_is_known(tmp_path: Path):
    bare = run_cli([], tmp_path, cli_environment())
    assert bare.returncode == 0, bare.stderr
    assert "usage: analytics-assets" in bare.stdout and "query" in bare.stdout
    assert "error" not in bare.stderr.lower()
    version = run_cli(["--version"], tmp_path, cli_environment())
    assert version.returncode == 0
    assert version.stdout.strip().startswith("analytics-assets ")
    assert version.stdout.strip() != "analytics-assets"


def test_query_formats_are_whole_when_piped(tmp_path: Path, warehouse_file: Path):
    env = cli_environment(ANALYTICS_DUCKDB_PATH=str(warehouse_file))
    sql = "SELECT id, note, killed, owner FROM flags ORDER BY id"

    as_csv = run_cli(["query", sql, "--format", "csv"], tmp_path, env)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["id", "note", "killed", "owner"]
    assert rows[1:] == [[str(i), LONG_VALUE, str(i % 2 == 0), ""] for i in range(3)]
    assert "3 rows" in as_csv.stderr and "3 rows" not in as_csv.stdout

    as_json = run_cli(["query", sql, "--format", "json"], tmp_path, env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"id": i, "note": LONG_VALUE, "killed": i % 2 == 0, "owner": None} for i in range(3)
    ]

    as_markdown = run_cli(["query", sql, "--format", "markdown"], tmp_path, env)
    lines = as_markdown.stdout.splitlines()
    assert lines[0] == "| id | note | killed | owner |" and lines[1] == "|---|---|---|---|"
    assert lines[2] == f"| 0 | {LONG_VALUE.replace('|', chr(92) + '|')} | True |  |"

    as_table = run_cli(["query", sql], tmp_path, env)
    assert as_table.returncode == 0, as_table.stderr
    table_lines = as_table.stdout.splitlines()
    assert table_lines[0].split() == ["id", "note", "killed", "owner"]
    assert len(table_lines) == 5 and all(LONG_VALUE in line for line in table_lines[2:])

    empty = run_cli(["query", "SELECT * FROM flags WHERE id < 0"], tmp_path, env)
    assert empty.returncode == 0 and "0 rows" in empty.stderr


def test_query_is_read_only_and_shows_the_engine_error_whole(tmp_path: Path, warehouse_file):
    env = cli_environment(ANALYTICS_DUCKDB_PATH=str(warehouse_file))
    for statement in ("DELETE FROM flags", "DROP TABLE flags", "CREATE TABLE t AS SELECT 1"):
        refused = run_cli(["query", statement], tmp_path, env)
        assert refused.returncode == 1, statement
        assert "read-only" in refused.stderr and "Traceback" not in refused.stderr
    with duckdb.connect(str(warehouse_file), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM split.flags").fetchone() == (3,)

    typo = run_cli(["query", "SELECT * FROM flag"], tmp_path, env)
    assert typo.returncode == 1 and "Traceback" not in typo.stderr
    message = typo.stderr.strip()
    assert len(message.splitlines()) == 1, message  # one line, not wrapped at 80 columns
    # DuckDB's hint is part of its message: it is shown, not cut after the first line.
    assert "does not exist" in message and 'Did you mean "flags"' in message

    missing = run_cli(
        ["query", "SELECT 1"], tmp_path, cli_environment(ANALYTICS_DUCKDB_PATH="nowhere.duckdb")
    )
    assert missing.returncode == 2 and "analytics-assets sync" in missing.stderr
    assert not (tmp_path / "nowhere.duckdb").exists()


@pytest.mark.postgres
def test_query_is_read_only_on_postgres(tmp_path: Path):
    psycopg2 = pytest.importorskip("psycopg2")
    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        connection = psycopg2.connect(dsn, connect_timeout=3)
    except psycopg2.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    dataset = f"query_test_{os.getpid()}"
    with connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {dataset}")
        cursor.execute(f"CREATE TABLE {dataset}.flags AS SELECT 1 AS id")
    try:
        env = cli_environment(
            ANALYTICS_DESTINATION="postgres",
            ANALYTICS_DATASET=dataset,
            # dlt insists on a password; trust auth ignores it
            DESTINATION__POSTGRES__CREDENTIALS="postgresql://postgres:unused@127.0.0.1:5432/test",
        )
        read = run_cli(["query", "SELECT id FROM flags", "--format", "csv"], tmp_path, env)
        assert read.returncode == 0 and read.stdout.splitlines() == ["id", "1"], read.stderr
        write = run_cli(["query", "DELETE FROM flags"], tmp_path, env)
        assert write.returncode == 1 and "read-only transaction" in write.stderr, write.stderr
        with connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {dataset}.flags")
            assert cursor.fetchone() == (1,)
    finally:
        with connection, connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {dataset} CASCADE")
        connection.close()


@pytest.mark.slow
def test_environments_by_name_and_unknown_names_fail_on_the_listing(
    sandbox_factory, tmp_path: Path
):
    sandbox = sandbox_factory(size="tiny")
    env = cli_environment(SPLIT_API_KEY="cli-test-key", SPLIT_API_BASE_URL=sandbox.base_url)
    truth = sandbox.ground_truth()["tables"]
    workspace_name = {w["id"]: w["name"] for w in truth["workspaces"]["rows"]}
    productions = [e for e in truth["environments"]["rows"] if e["name"] == "Production"]
    assert len(productions) > 1  # the sandbox's organisation, like a real one

    # Unknown on a fresh instance: only the listings are fetched, then a clear refusal.
    unknown = run_cli(["sync", "--environment", "Nowhere"], tmp_path, env)
    assert unknown.returncode == 2, unknown.stderr
    assert "'Nowhere' does not exist" in unknown.stderr and "Traceback" not in unknown.stderr
    assert set(sandbox.stats()["by_endpoint"]) == {"workspaces", "environments"}

    ambiguous = run_cli(["sync", "--environment", "Production"], tmp_path, env)
    assert ambiguous.returncode == 2, ambiguous.stderr
    assert "ambiguous" in ambiguous.stderr
    for environment in productions:
        assert f"{workspace_name[environment['workspace_id']]}/Production" in ambiguous.stderr

    full = run_cli(["sync"], tmp_path, env)
    assert full.returncode == 0, full.stderr
    # Workspace/Environment, with or without spaces around the slash, and the partition key
    # the UI's partition pickers show (the same, followed by the id).
    chosen = productions[0]
    workspace = workspace_name[chosen["workspace_id"]]
    for name in (f"{workspace} / Production", f"{workspace}/Production ({chosen['id']})"):
        sandbox.reset_stats()
        one = run_cli(
            ["sync", "--environment", name, "--select", "environment_segments"], tmp_path, env
        )
        assert one.returncode == 0, one.stderr
        requests = sandbox.stats()["by_endpoint"]
        # one environment's pages
        assert requests["environment_segments"]["requests"] <= 2, requests
        assert "Finished split_environment_refresh (1 partition)" in one.stderr

    # Now known from the last listing: an unknown name costs only the listings' refresh.
    sandbox.reset_stats()
    again = run_cli(["sync", "--workspace", "No Such Workspace"], tmp_path, env)
    assert again.returncode == 2 and "known workspaces" in again.stderr
    assert set(sandbox.stats()["by_endpoint"]) == {"workspaces", "environments"}
