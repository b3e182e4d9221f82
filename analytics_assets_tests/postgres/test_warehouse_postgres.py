"""Postgres as the warehouse: the same tables, merges, deletions and history as on DuckDB.

Each test loads into a database of its own (dropped afterwards), configured the way a user
configures it: ``ANALYTICS_DESTINATION=postgres`` and dlt's standard
``DESTINATION__POSTGRES__CREDENTIALS``. The checks are the DuckDB suite's: the sandbox's ground
truth, table by table and field by field, through dlt's SQL client.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from analytics_assets.split_source import TABLES
from analytics_assets.warehouse import WarehouseSettings
from analytics_assets_tests.postgres.conftest import (
    PostgresDatabase,
    clean_environment,
    postgres_instance_home,
)
from analytics_assets_tests.support import assert_matches_truth, run_cli

pytestmark = pytest.mark.postgres


def _dataset() -> str:
    return f"split_{uuid.uuid4().hex[:8]}"


def _definitions(database: PostgresDatabase, dataset: str) -> list[tuple]:
    return database.query(
        "SELECT environment_id, id, killed, _dlt_valid_from, _dlt_valid_to"
        f' FROM "{dataset}".feature_flag_definitions'
    )


def _load_ids(database: PostgresDatabase, dataset: str, table: str, workspaces: set[str]):
    rows = database.query(f'SELECT workspace_id, _dlt_load_id FROM "{dataset}".{table}')
    return Counter((w, load_id) for w, load_id in rows if w in workspaces)


def test_sync_through_dagster_is_exact_then_scoped_changes_and_history(
    postgres_database: PostgresDatabase, sandbox_factory, tmp_path: Path, monkeypatch
):
    sandbox = sandbox_factory(size="tiny")
    dataset = _dataset()
    env = clean_environment(
        ANALYTICS_DESTINATION="postgres",
        ANALYTICS_DATASET=dataset,
        DESTINATION__POSTGRES__CREDENTIALS=postgres_database.dlt_credentials,
        SPLIT_API_BASE_URL=sandbox.base_url,
        # Dagster's own storage on the same server: the shipped production instance file.
        DAGSTER_HOME=str(postgres_instance_home(tmp_path / "dagster_home")),
        **postgres_database.dagster_environment(),
    )
    # compare_with_truth reads the warehouse in this process, through dlt's configuration.
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_database.dlt_credentials)
    warehouse = WarehouseSettings(destination="postgres", dataset=dataset)

    first = run_cli(["sync"], tmp_path, env)
    assert first.returncode == 0, first.stdout + first.stderr
    first_truth = sandbox.ground_truth()
    assert_matches_truth(warehouse, first_truth)
    assert f"{first_truth['minimal_requests']['total']} API requests" in first.stdout
    # The dataset is a schema of its own; every table is there.
    tables = {
        name
        for (name,) in postgres_database.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (dataset,)
        )
    }
    assert set(TABLES) <= tables
    # Dagster ran the loads on the Postgres instance, in the API pool, not DuckDB's writer pool.
    runs = postgres_database.query("SELECT status FROM runs")
    # organisation, workspaces, environments, then the models
    assert [status for (status,) in runs] == ["SUCCESS"] * 4
    pools = {
        key for (key,) in postgres_database.query("SELECT concurrency_key FROM concurrency_limits")
    }
    assert pools == {"split_api"}

    sandbox.control(generation=1)
    truth = sandbox.ground_truth()
    rows = truth["tables"]
    existing = {r["id"] for r in rows["workspaces"]["rows"]}
    first_flags = {
        (r["workspace_id"], r["id"]): r for r in first_truth["tables"]["feature_flags"]["rows"]
    }
    flags = {(r["workspace_id"], r["id"]): r for r in rows["feature_flags"]["rows"]}
    changed = Counter(k[0] for k in set(first_flags) ^ set(flags) if k[0] in existing)
    workspace = changed.most_common(1)[0][0]
    others = existing - {workspace}
    others_before = _load_ids(postgres_database, dataset, "feature_flags", others)

    # One workspace only: its rows follow Split, every other workspace's rows stay untouched.
    scoped = run_cli(["sync", "--workspace", workspace], tmp_path, env)
    assert scoped.returncode == 0, scoped.stdout + scoped.stderr
    assert _load_ids(postgres_database, dataset, "feature_flags", others) == others_before
    loaded = {
        (w, i)
        for w, i in postgres_database.query(
            f'SELECT workspace_id, id FROM "{dataset}".feature_flags'
        )
        if w == workspace
    }
    assert loaded == {k for k in flags if k[0] == workspace}

    full = run_cli(["sync"], tmp_path, env)
    assert full.returncode == 0, full.stdout + full.stderr
    assert_matches_truth(warehouse, truth)
    # The generation emptied one workspace of flags: that scope is now empty, not stale.
    assert existing - {r["workspace_id"] for r in rows["feature_flags"]["rows"]}

    # History, as on DuckDB: current versions are exactly Split's definitions; every deleted
    # or edited definition keeps its old version, closed by _dlt_valid_to.
    before = {
        (r["environment_id"], r["id"]): r
        for r in first_truth["tables"]["feature_flag_definitions"]["rows"]
    }
    after = {(r["environment_id"], r["id"]): r for r in rows["feature_flag_definitions"]["rows"]}
    versions = _definitions(postgres_database, dataset)
    retired = {(env_id, flag) for env_id, flag, _, _, valid_to in versions if valid_to is not None}
    current = [(env_id, flag) for env_id, flag, _, _, valid_to in versions if valid_to is None]
    assert sorted(current) == sorted(after)
    deleted = set(before) - set(after)
    edited = {
        k
        for k in set(before) & set(after)
        if {**before[k], "lastTrafficReceivedAt": None}
        != {**after[k], "lastTrafficReceivedAt": None}
    }
    assert deleted and edited and retired
    assert deleted | edited <= retired
    for env_id, flag, killed, valid_from, valid_to in versions:
        if valid_to is not None and (env_id, flag) in before:
            assert valid_from < valid_to
            if (env_id, flag) in deleted:
                assert killed == before[(env_id, flag)]["killed"]


def _staging_race(
    sandbox, database: PostgresDatabase, tmp_path: Path, per_run_staging: bool
) -> tuple[dict[str, int], dict[str, int], list[int]]:
    """Load two workspaces, then re-load each in an interleaved pair of runs (see staging_race)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    truth = sandbox.ground_truth(tables=["workspaces", "feature_flags"])
    per_workspace = Counter(r["workspace_id"] for r in truth["tables"]["feature_flags"]["rows"])
    (first, _), (second, _) = per_workspace.most_common(2)
    known = ",".join(r["id"] for r in truth["tables"]["workspaces"]["rows"])
    dataset = _dataset()
    base = clean_environment()

    def worker(role: str, workspaces: str, barrier: Path, layout: str | None):
        barrier.mkdir(parents=True, exist_ok=True)
        env = dict(base)
        if layout:
            env["DESTINATION__POSTGRES__STAGING_DATASET_NAME_LAYOUT"] = layout
        return subprocess.Popen(
            [
                sys.executable, "-m", "analytics_assets_tests.postgres.staging_race", role,
                sandbox.base_url, workspaces, known, database.dlt_credentials, dataset,
                str(barrier),
            ],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    serial = worker("serial", f"{first},{second}", tmp_path / "serial", None)
    assert serial.wait(timeout=300) == 0, serial.communicate()[0]
    barrier = tmp_path / f"race_{per_run_staging}"
    runs = [
        worker(role, workspace, barrier, f"%s_staging_{role.lower()}" if per_run_staging else None)
        for role, workspace in (("A", first), ("B", second))
    ]
    codes = []
    for run in runs:
        output, _ = run.communicate(timeout=300)
        codes.append(run.returncode)
        assert run.returncode == 0, output
    counts = dict(
        database.query(f'SELECT workspace_id, count(*) FROM "{dataset}".feature_flags GROUP BY 1')
    )
    return counts, {first: per_workspace[first], second: per_workspace[second]}, codes


def test_concurrent_loads_of_one_table_need_a_staging_dataset_each(
    postgres_database: PostgresDatabase, sandbox_factory, tmp_path: Path
):
    """Why each concurrent run must stage into its own schema (docs/production.md).

    The interleaving is forced: run A has staged workspace X when run B stages workspace Y.
    With dlt's default, one shared ``<dataset>_staging``, both runs succeed and X's rows are
    gone. With one staging dataset per run, both workspaces stay exact.
    """
    sandbox = sandbox_factory(size="tiny")
    shared, expected, _ = _staging_race(sandbox, postgres_database, tmp_path / "shared", False)
    assert shared != expected, "the shared-staging interleaving no longer loses rows"
    lost = [w for w in expected if w not in shared]
    assert lost, shared  # run A's workspace was deleted and not re-inserted: silent loss

    own, expected, _ = _staging_race(sandbox, postgres_database, tmp_path / "own", True)
    assert own == expected
