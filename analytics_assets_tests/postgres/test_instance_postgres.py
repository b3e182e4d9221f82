"""Postgres as Dagster's instance storage (deploy/dagster-postgres.yaml), with runs in parallel.

The instance is the shipped production file, unchanged, pointed at a fresh database through the
DAGSTER_PG_* variables. Runs are started the way a run launcher starts them: one process per
run (``partition_run``), each executing its job with the multiprocess executor, all at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from analytics_assets.dagster_layer.partitions import (
    environment_partitions,
    workspace_partitions,
)
from analytics_assets.dagster_layer.translator import (
    ENVIRONMENT_TABLES,
    ORGANISATION_TABLES,
    WORKSPACE_TABLES,
)
from analytics_assets.warehouse import WarehouseSettings
from analytics_assets_tests.postgres.conftest import (
    DEPLOY_INSTANCE_YAML,
    PostgresDatabase,
    clean_environment,
    postgres_instance_home,
)
from analytics_assets_tests.support import assert_matches_truth, run_cli, truth_partition_keys

pytestmark = pytest.mark.postgres

POOL_LIMIT = 4
# The sandbox stands for an organisation allowed ORG_LIMIT requests a second; each run paces
# itself to PER_RUN_RATE, so POOL_LIMIT runs at once stay under it (docs/production.md).
ORG_LIMIT = 50
PER_RUN_RATE = 10
LOADS_ONLY = "_loads_only"


@contextmanager
def production_instance(database: PostgresDatabase, home: Path, monkeypatch) -> Iterator:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in database.dagster_environment().items():
        monkeypatch.setenv(name, value)
    with DagsterInstance.get() as instance:
        yield instance


def test_shipped_instance_file_puts_every_storage_on_postgres(
    postgres_database: PostgresDatabase, tmp_path: Path, monkeypatch
):
    config = yaml.safe_load(DEPLOY_INSTANCE_YAML.read_text())
    assert config["telemetry"] == {"enabled": False}
    home = postgres_instance_home(tmp_path / "dagster_home")
    with production_instance(postgres_database, home, monkeypatch) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert not instance.telemetry_enabled
        assert instance.event_log_storage.supports_global_concurrency_limits
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == POOL_LIMIT
        assert concurrency.pool_config.pool_granularity.value == "op"
        queue = concurrency.run_queue_config
        assert queue.max_concurrent_runs == config["concurrency"]["runs"]["max_concurrent_runs"]
        assert queue.tag_concurrency_limits == [{"key": "split/api", "value": "admin", "limit": 4}]
        assert instance.run_monitoring_settings["enabled"]
    # dagster-postgres created its tables in the test database.
    tables = {t for (t,) in postgres_database.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )}  # fmt: skip
    assert {"runs", "event_logs", "jobs", "concurrency_slots"} <= tables


def _launch(job: str, env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "analytics_assets_tests.postgres.partition_run", job, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 420) -> dict:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"a run did not finish within {timeout:.0f}s:\n{err[-3000:]}")
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _step_windows(instance: DagsterInstance, run_id: str, step_key: str) -> tuple[float, float]:
    wanted = (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS)
    events = {
        e.dagster_event.event_type: e.timestamp
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None
        and e.step_key == step_key
        and e.dagster_event.event_type in wanted
    }
    return events[DagsterEventType.STEP_START], events[DagsterEventType.STEP_SUCCESS]


def _max_overlap(windows: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def test_partition_runs_load_in_parallel_on_postgres_within_the_pool(
    postgres_database: PostgresDatabase, sandbox_factory, tmp_path: Path, monkeypatch
):
    sandbox = sandbox_factory(size="tiny", rate_limit=ORG_LIMIT)
    dataset = f"split_{uuid.uuid4().hex[:8]}"
    home = postgres_instance_home(tmp_path / "dagster_home")
    env = clean_environment(
        ANALYTICS_DESTINATION="postgres",
        ANALYTICS_DATASET=dataset,
        DESTINATION__POSTGRES__CREDENTIALS=postgres_database.dlt_credentials,
        SPLIT_API_BASE_URL=sandbox.base_url,
        DAGSTER_HOME=str(home),
        **postgres_database.dagster_environment(),
    )
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_database.dlt_credentials)

    # The first sync creates every table, one run at a time (docs/production.md).
    first = run_cli(["sync"], tmp_path, env)
    assert first.returncode == 0, first.stdout + first.stderr

    # Split changes. A sync of the organisation's tables alone publishes the new listings and
    # brings the partitions in step with them (what the partition sensors do in a deployment).
    sandbox.control(generation=1)
    truth = sandbox.ground_truth()
    listings = run_cli(["sync", "--select", ",".join(ORGANISATION_TABLES)], tmp_path, env)
    assert listings.returncode == 0, listings.stdout + listings.stderr
    with production_instance(postgres_database, home, monkeypatch) as instance:
        workspaces = list(instance.get_dynamic_partitions(workspace_partitions.name))
        environments = list(instance.get_dynamic_partitions(environment_partitions.name))
    workspace_keys, environment_keys = truth_partition_keys(truth)
    assert set(workspace_keys.values()) == set(workspaces)
    assert set(environment_keys.values()) == set(environments)

    # Every workspace partition a run of its own and the environments in two contiguous
    # ranges, all started at once: more runs than the pool admits loads at a time.
    half = (len(environments) + 1) // 2
    launches: list[tuple[str, list[str]]] = [
        ("split_workspace_refresh" + LOADS_ONLY, [key]) for key in workspaces
    ] + [
        ("split_environment_refresh" + LOADS_ONLY, ["--range", chunk[0], chunk[-1]])
        for chunk in (environments[:half], environments[half:])
    ]
    assert len(launches) > POOL_LIMIT
    started = time.monotonic()
    processes = []
    for index, (job, args) in enumerate(launches):
        run_env = dict(env, SPLIT_MAX_REQUESTS_PER_SECOND=str(PER_RUN_RATE))
        # Each run stages into a schema of its own: see the core change recommended with
        # test_concurrent_loads_of_one_table_need_a_staging_dataset_each.
        run_env["DESTINATION__POSTGRES__STAGING_DATASET_NAME_LAYOUT"] = f"%s_staging_run{index}"
        processes.append(_launch(job, run_env, tmp_path, *args))
    results = [_finish(p) for p in processes]
    elapsed = time.monotonic() - started
    assert all(r["success"] for r in results)

    assert_matches_truth(WarehouseSettings(destination="postgres", dataset=dataset), truth)
    retired = postgres_database.query(
        f'SELECT count(*) FROM "{dataset}".feature_flag_definitions WHERE _dlt_valid_to IS NOT NULL'
    )[0][0]
    assert retired > 0  # history kept across the parallel refresh
    assert sandbox.stats()["rate_limited"] == 0  # POOL_LIMIT x PER_RUN_RATE <= ORG_LIMIT

    with production_instance(postgres_database, home, monkeypatch) as instance:
        records = instance.get_run_records()
        # Clean run records: every run finished and succeeded, none queued, started or failed.
        # first sync (3 load runs and the models), listings (1 and the models), parallel runs
        assert len(records) == 3 + 1 + 1 + 1 + len(launches)
        assert {r.dagster_run.status for r in records} == {DagsterRunStatus.SUCCESS}
        unfinished = instance.get_runs(
            RunsFilter(statuses=[s for s in DagsterRunStatus if s != DagsterRunStatus.SUCCESS])
        )
        assert unfinished == []
        # A materialization of every table of every partition, from the parallel runs.
        wave = {r["run_id"]: r for r in results}
        for run_id, result in wave.items():
            events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
            seen = {
                (e.asset_materialization.asset_key.path[-1], e.asset_materialization.partition)
                for e in events
            }
            if result["job"].startswith("split_workspace"):
                tables, keys = WORKSPACE_TABLES, [result["partition"]]
            else:
                start, end = result["partition"]
                keys = environments[environments.index(start) : environments.index(end) + 1]
                tables = ENVIRONMENT_TABLES
            assert seen == {(t, k) for t in tables for k in keys}
        # The loads ran in parallel, never more at once than the pool split_api admits, and
        # left no slot claimed.
        windows = []
        for run_id, result in wave.items():
            step = (
                "split_workspace_assets"
                if result["job"].startswith("split_workspace")
                else "split_environment_assets"
            )
            windows.append(_step_windows(instance, run_id, step))
        peak = _max_overlap(windows)
        # Dagster 1.13 can admit one step too many when several claim a slot at the same
        # instant: its Postgres storage claims in autocommit, so the row lock of "SELECT a
        # free slot ... FOR UPDATE SKIP LOCKED" ends before the UPDATE that takes it, and that
        # UPDATE does not check the slot is still free. Two claimants can take one slot. Seen
        # once in CI (5 loads at once with 4 slots, still no 429: 5 x 10/s fits the 50/s).
        # docs/production.md says so; the run queue's tag limit is the hard cap on runs.
        assert 2 <= peak <= POOL_LIMIT + 1, (peak, windows)
        pool = instance.event_log_storage.get_concurrency_info("split_api")
        assert pool.slot_count == POOL_LIMIT and not pool.claimed_slots and not pool.pending_steps
        assert not instance.event_log_storage.get_concurrency_info("split_duckdb_writer").slot_count
    print(f"{len(launches)} parallel runs in {elapsed:.1f}s, at most {peak} loads at once")
