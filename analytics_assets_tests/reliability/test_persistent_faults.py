"""Persistent faults fail cleanly, and the warehouse is no worse than before the run.

Every case starts from the same synced warehouse and Dagster instance (generation 0 of the
tiny sandbox, copied per test), then a fault that retries cannot fix strikes during a sync:

- the key is revoked while the organisation run is fetching (CLI);
- a workspace is deleted between the organisation run and the workspace run (Dagster
  in-process, triggered from the sync's own progress callback, so it is deterministic);
- the API host is unreachable, or answers 503 to everything (CLI).

Each must end with a non-zero exit (CLI) and a failed Dagster run whose message names the
endpoint, the scope and the status and says what to do, with no stack trace for these
expected errors. Each scope's rows must be exactly as before, or (for a scope whose load
completed before the fault) exactly the sandbox's current truth: never a partial scope,
never duplicates. A failure confined to some scopes costs only those (the others load).
"""

from __future__ import annotations

import copy
import secrets
import shutil
import socket
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

from analytics_assets.dagster_layer.sync import SyncFailed
from analytics_assets.dagster_layer.translator import ORGANISATION_TABLES
from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets.split_source import TABLES
from analytics_assets_tests.reliability.harness import (
    Project,
    duplicate_keys,
    no_worse,
    wait_until,
)
from analytics_assets_tests.support import truth_partition_keys

pytestmark = pytest.mark.slow

NOISE = ("Traceback", "Stack Trace", 'File "/')


@pytest.fixture(scope="module")
def baseline(work_root: Path, ledger, secret, figures) -> Project:  # type: ignore[no-untyped-def]
    """A project synced once, cleanly, through Dagster in-process: every case's starting point."""
    root = work_root / "persistent-baseline"
    root.mkdir(exist_ok=True)
    with SandboxProcess(size="tiny", log_path=root / "sandbox.log") as sandbox:
        project = Project(root, sandbox, secret, ledger)
        started = time.monotonic()
        report = project.sync_in_process()
        truth = sandbox.ground_truth()
        assert project.diffs(truth) == []
        figures.add(
            "transient",
            "no faults (reference)",
            "Dagster in-process (run_sync)",
            "exact tables",
            requests=report.requests,
            minimal_requests=truth["minimal_requests"]["total"],
            retries=report.retries,
            rate_limited=report.rate_limited,
            seconds=round(time.monotonic() - started, 1),
        )
    project.sandbox = None
    return project


def _from_baseline(baseline: Project, project: Project) -> None:
    shutil.copytree(baseline.home, project.home, dirs_exist_ok=True)
    for path in baseline.root.glob(baseline.duckdb_path.name + "*"):
        if not path.name.endswith(".lock"):
            shutil.copy2(path, project.root / path.name)


def _latest_failure(project: Project, job: str | None = None) -> tuple[str, DagsterRunStatus, str]:
    """(job, status, failure message) of the newest run (of ``job``) in the project's instance."""
    with project.instance() as instance:
        run = instance.get_runs(RunsFilter(job_name=job) if job else None, limit=1)[0]
        failures = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        assert failures, f"run {run.run_id} ({run.status}) has no step failure"
        data = failures[0].dagster_event.step_failure_data
        message = data.user_failure_data.description if data.user_failure_data else ""
        return run.job_name, run.status, message


def _assert_actionable(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for noise in NOISE:
        assert noise not in message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


def test_key_revoked_while_the_sync_runs(baseline, make_project, figures, secret):
    # Requests take 300 ms, so the organisation run is still fetching when the key goes.
    project = make_project(latency_ms=300)
    _from_baseline(baseline, project)
    sandbox = project.sandbox
    sandbox.control(generation=1)  # new data waiting: a partial load would show
    before = project.snapshot()
    sandbox.reset_stats()

    running = project.start_cli("sync")
    running.wait_for_stderr("Running split_organisation_refresh")
    assert wait_until(lambda: sandbox.stats()["requests_total"] >= 4, timeout=120)
    sandbox.control(api_key="rotated-" + secrets.token_hex(8))  # the admin revoked ours
    revoked_after = sandbox.stats()["requests_total"]
    result = running.result()
    project.record(running, result)

    assert result.returncode == 1, str(result)
    assert "sync failed: split_organisation_refresh failed" in result.stderr
    _assert_actionable(result.stderr, "GET /v2/", "HTTP 401", "revoked", "SPLIT_API_KEY")
    job, status, message = _latest_failure(project)
    assert (job, status) == ("split_organisation_refresh", DagsterRunStatus.FAILURE)
    _assert_actionable(message, "GET /v2/", "HTTP 401", "SPLIT_API_KEY")
    assert secret not in result.stdout + result.stderr + message

    # Each table as before, or (a scope whose load finished before the revocation) exactly
    # generation 1: never a partial one.
    truth = sandbox.ground_truth()
    current = {d.table for d in project.diffs(truth)}
    complete = [t for t in truth["tables"] if t not in current]
    assert duplicate_keys(project.duckdb_path) == {}
    failed = project.snapshot()
    # The key valid again: the next sync is exact, and what the failed one left of each
    # table or scope was either as before or what that exact sync left.
    sandbox.control(api_key=project.api_key)
    again = project.cli("sync")
    assert again.returncode == 0, str(again)
    assert project.diffs(truth) == []
    assert no_worse(before, failed, complete=project.snapshot()) == []
    figures.add(
        "persistent",
        "key revoked mid-run",
        "analytics-assets sync",
        f"exit {result.returncode}; run failed; each table as before or complete",
        tables_loaded_before_revocation=complete,
        requests_before_revocation=revoked_after,
        requests_after=sandbox.stats()["requests_total"] - revoked_after,
        seconds=round(result.seconds, 1),
        message=message,
    )


def _partly_loaded(gen0: dict, gen1: dict) -> dict:
    """What a sync that lost objects after its organisation run leaves: organisation tables
    of generation 0 (their run finished first); the rows of every scope that still exists of
    generation 1 (their scopes loaded); the rows of a deleted workspace or environment of
    generation 0 (its scope failed, so nothing replaced them)."""

    def ids(truth: dict, table: str) -> set[str]:
        return {r["id"] for r in truth["tables"][table]["rows"]}

    gone = (ids(gen0, "workspaces") - ids(gen1, "workspaces")) | (
        ids(gen0, "environments") - ids(gen1, "environments")
    )
    listed = ids(gen0, "workspaces") | ids(gen0, "environments")

    def scope(row: dict) -> str | None:
        return row.get("environment_id") or row.get("workspace_id")

    expected = copy.deepcopy(gen1)
    for table in TABLES:
        if table in ORGANISATION_TABLES:
            expected["tables"][table] = gen0["tables"][table]
            continue
        expected["tables"][table]["rows"] = [
            r for r in gen1["tables"][table]["rows"] if scope(r) in listed - gone
        ] + [r for r in gen0["tables"][table]["rows"] if scope(r) in gone]
    return expected


def test_workspace_deleted_mid_sync(baseline, make_project, figures):
    project = make_project(latency_ms=50)
    _from_baseline(baseline, project)
    sandbox = project.sandbox
    gen0 = sandbox.ground_truth()
    gen0_workspaces = {w["id"] for w in gen0["tables"]["workspaces"]["rows"]}

    def delete_a_workspace(message: str) -> None:
        # Between the organisation run (which listed the workspace) and the workspace run.
        if message.startswith("Finished split_organisation_refresh"):
            sandbox.control(generation=1)

    started = time.monotonic()
    with pytest.raises(SyncFailed) as failed:
        project.sync_in_process(progress=delete_a_workspace)
    seconds = time.monotonic() - started
    truth = sandbox.ground_truth()
    deleted = gen0_workspaces - {w["id"] for w in truth["tables"]["workspaces"]["rows"]}
    assert len(deleted) == 1
    (workspace,) = deleted

    # A scope is named by its partition key: the name it was listed under, and its id.
    gen0_workspace_keys, gen0_environment_keys = truth_partition_keys(gen0)
    text = str(failed.value)
    assert text.startswith("split_workspace_refresh")
    label = f"workspace {gen0_workspace_keys[workspace]}"
    _assert_actionable(text, "GET /v2/", label, "HTTP 404", "re-run")
    # Exactly the scopes that no longer exist (the workspace, its environments and any
    # environment generation 1 deleted elsewhere) failed, each named; the others loaded.
    environments = {e["id"] for e in truth["tables"]["environments"]["rows"]}
    gone_environments = {
        e["id"] for e in gen0["tables"]["environments"]["rows"] if e["id"] not in environments
    }
    failed_scopes = failed.value.report.failed_scopes
    assert {s.partition for s in failed_scopes} == {gen0_workspace_keys[workspace]} | {
        gen0_environment_keys[e] for e in gone_environments
    }
    job, status, message = _latest_failure(project, "split_workspace_refresh")
    assert status == DagsterRunStatus.FAILURE
    _assert_actionable(message, label, "HTTP 404")
    # The failed scopes changed nothing; every other scope is generation 1.
    assert project.diffs(_partly_loaded(gen0, truth)) == []
    assert duplicate_keys(project.duckdb_path) == {}

    # The next sync resumes: it sees the deletion in the listing (orphans removed) and fetches
    # what failed or was not loaded; the organisation tables the failed sync loaded are kept.
    report = project.sync_in_process()
    assert report.resumed_sync is not None
    kept = copy.deepcopy(truth)
    for table in ("users", "groups", "change_requests"):
        kept["tables"][table] = gen0["tables"][table]
    assert project.diffs(kept) == []
    # The sync after a complete one refreshes everything: exact.
    assert project.sync_in_process().resumed_sync is None
    assert project.diffs(truth) == []
    figures.add(
        "persistent",
        "workspace deleted mid-sync",
        "Dagster in-process (run_sync)",
        "the vanished scopes failed, named; every other scope loaded; next sync resumes, converges",
        seconds=round(seconds, 1),
        failed_scopes=[s.label for s in failed_scopes],
        next_sync_requests=report.requests,
        message=message,
    )


@pytest.mark.parametrize("down", ["unreachable host", "HTTP 503 on every request"])
def test_api_down_fails_fast_and_keeps_the_tables(down, baseline, make_project, figures):
    if down == "unreachable host":
        project = make_project(sandbox=False)
        base_url = f"http://127.0.0.1:{_closed_port()}/internal/api"
        # On the defaults: an address that has never answered is a wrong URL, not an
        # incident, and fails after 3 attempts rather than 20 retries' backoff.
        settings: dict[str, str] = {}
        expected = ("nothing answers at", "connection refused, 3 attempts", "SPLIT_API_BASE_URL")
    else:
        project = make_project(fault_rate=1.0, fault_kinds="503", max_consecutive_faults=1000)
        base_url = project.sandbox.base_url
        # The default retries ride out an incident of several minutes
        # (test_transient_faults); a user who wants a dead API to fail within seconds lowers
        # them.
        settings = {"SPLIT_MAX_RETRIES": "3"}
        expected = ("3 retries", "HTTP 503", "SPLIT_MAX_RETRIES")
    _from_baseline(baseline, project)
    before = project.snapshot()

    result = project.cli("sync", SPLIT_API_BASE_URL=base_url, **settings)

    assert result.returncode == 1, str(result)
    assert "retry 4 of" not in result.stderr, str(result)
    _assert_actionable(result.stderr, "GET /v2/", "(organisation)", *expected)
    job, status, message = _latest_failure(project)
    assert (job, status) == ("split_organisation_refresh", DagsterRunStatus.FAILURE)
    _assert_actionable(message, "GET /v2/", *expected)
    if down == "unreachable host":
        # Nothing has answered, so the run fetched one scope and started no other after it.
        assert "1 of 4 scopes failed" in message and "3 not attempted" in message, message
    assert no_worse(before, project.snapshot()) == []
    figures.add(
        "persistent",
        down,
        "analytics-assets sync",
        f"exit {result.returncode}; run failed; tables as before",
        seconds=round(result.seconds, 1),
        message=message,
    )
