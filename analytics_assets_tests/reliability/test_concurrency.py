"""Concurrent syncs never corrupt data: one refuses or waits, with a clear message.

- Two ``analytics-assets sync`` started at once on one instance: the second refuses at once
  (exit 2, the holder's pid, "wait for it").
- A CLI sync and a Dagster materialization at once, on the same instance (what
  ``analytics-assets dev`` and "Materialize" in its UI do): Dagster's ``split_duckdb_writer``
  pool (limit 1) makes the loads take turns.
- A CLI sync and a Dagster materialization from another instance sharing the DuckDB file:
  the DuckDB writer lock (a flock beside the file) makes the second writer wait, and says so.

The materialization starts while the CLI's environment run holds the writer (its dlt folder
exists). Afterwards every table equals the ground truth, with no duplicates, and on one
instance the load steps of all runs never overlapped in time.
"""

from __future__ import annotations

import logging
import time

import pytest
from dagster import DagsterEventType, DagsterInstance

from analytics_assets.dagster_layer.sync import QUIET_LOGGERS
from analytics_assets_tests.reliability.harness import (
    Project,
    dlt_folders,
    duplicate_keys,
    wait_until,
)

pytestmark = pytest.mark.slow

LOAD_STEP_SUFFIX = "_assets"  # split_organisation_assets, ..._workspace_..., ..._environment_...


def _load_step_intervals(project: Project, label: str) -> list[tuple[float, float, str]]:
    """(start, end, who) of every load step (the steps that write) in the instance."""
    intervals = []
    with project.instance() as instance:
        for run in instance.get_runs():
            starts: dict[str, float] = {}
            for record in instance.all_logs(run.run_id):
                event = record.dagster_event
                if event is None or not (event.step_key or "").endswith(LOAD_STEP_SUFFIX):
                    continue
                if event.event_type == DagsterEventType.STEP_START:
                    starts[event.step_key] = record.timestamp
                elif event.event_type in (
                    DagsterEventType.STEP_SUCCESS,
                    DagsterEventType.STEP_FAILURE,
                ):
                    who = f"{label} {run.job_name} {run.run_id[:8]}"
                    intervals.append((starts[event.step_key], record.timestamp, who))
    return intervals


def _overlaps(intervals: list[tuple[float, float, str]]) -> list[str]:
    ordered = sorted(intervals)
    return [
        f"{a[2]} [{a[0]:.2f}-{a[1]:.2f}] overlaps {b[2]} [{b[0]:.2f}-{b[1]:.2f}]"
        for a, b in zip(ordered, ordered[1:], strict=False)
        if b[0] < a[1]
    ]


def test_two_clis_at_once_one_refuses(make_project, figures):
    project = make_project(latency_ms=20)  # the first sync lasts while the second starts
    first, second = project.start_cli("sync"), project.start_cli("sync")
    results = [first.result(), second.result()]
    for running, result in zip((first, second), results, strict=True):
        project.record(running, result)

    assert sorted(r.returncode for r in results) == [0, 2], "\n".join(map(str, results))
    winner, loser = sorted(results, key=lambda r: r.returncode)
    message = " ".join(loser.stderr.split())
    assert "Another analytics-assets sync is running on this instance" in message
    assert "pid" in message and "Wait for it to finish" in message
    assert "Traceback" not in loser.stderr and loser.stdout == ""
    assert project.diffs(project.sandbox.ground_truth()) == []
    assert duplicate_keys(project.duckdb_path) == {}
    # Both opened the fresh instance home at once; it must still open (one schema version).
    with DagsterInstance.from_config(str(project.home)) as instance:
        assert len(instance.get_runs()) > 0
    figures.add(
        "concurrency",
        "two CLI syncs at once, one instance",
        "analytics-assets sync x2",
        "one refuses (exit 2); the other completes; exact tables",
        refused_after_seconds=round(loser.seconds, 1),
        sync_seconds=round(winner.seconds, 1),
        message=message.removeprefix("error: "),
    )


@pytest.mark.parametrize("instance", ["same instance (dev UI)", "another instance"])
def test_cli_and_dagster_materialization_at_once(instance, make_project, figures):
    from analytics_assets.definitions import build_definitions

    # 60 ms per request: the CLI's environment run holds the writer for seconds.
    project = make_project(latency_ms=60)
    other = project
    if instance == "another instance":
        # Another Dagster deployment on this machine, writing the same DuckDB file.
        other = Project(project.root / "other", project.sandbox, project.api_key, project.ledger)
        other.extra_env["ANALYTICS_DUCKDB_PATH"] = str(project.duckdb_path)
    waits: list[str] = []

    class _Waits(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Another process is writing" in record.getMessage():
                waits.append(record.getMessage())

    handler = _Waits()
    logging.getLogger("analytics_assets.warehouse").addHandler(handler)
    try:
        running = project.start_cli("sync")
        with other.environment():
            from dagster import DagsterInstance

            from analytics_assets.dagster_layer.instance import ensure_instance_home

            ensure_instance_home()  # the shipped dagster.yaml: the writer pool, limit 1
            # Built before the wait, so that the run starts at once when the CLI's load does.
            job = build_definitions().resolve_job_def("split_organisation_refresh")
            with DagsterInstance.get() as dagster_instance:
                # Start the materialization while the CLI's third run (environments) is
                # loading: its dlt folder is the only one once it has started (a finished run
                # removes its own), so a poll that misses the short runs before it on a busy
                # machine cannot miscount.
                running.wait_for_stderr("Running split_environment_refresh")
                assert wait_until(
                    lambda: any(
                        (folder / "split").exists() for folder in dlt_folders(project.dlt_working)
                    ),
                    timeout=300,
                    interval=0.005,
                ), running.stderr
                started = time.monotonic()
                result = job.execute_in_process(
                    instance=dagster_instance,
                    tags={"split/launched_by": "reliability test (as the UI)"},
                    run_config=QUIET_LOGGERS,
                    raise_on_error=False,
                )
        materialization_seconds = time.monotonic() - started
        cli = running.result()
        project.record(running, cli)
    finally:
        logging.getLogger("analytics_assets.warehouse").removeHandler(handler)

    assert result.success
    assert cli.returncode == 0, str(cli)
    assert project.diffs(project.sandbox.ground_truth()) == []
    assert duplicate_keys(project.duckdb_path) == {}
    intervals = _load_step_intervals(project, "one instance")
    said = [line for line in [*waits, *cli.stderr.splitlines()] if "Another process" in line]
    waited = bool(said)
    if other is project:
        # The pool (limit 1) serialized the load steps of both: they never overlapped.
        assert _overlaps(intervals) == []
    else:
        # Two instances do not share a pool: the second writer waited on the DuckDB writer
        # lock inside its step, and said so, naming the file.
        assert waited, cli.stderr
        assert str(project.duckdb_path.resolve()) in said[0]
    figures.add(
        "concurrency",
        f"CLI sync + Dagster materialization, {instance}",
        "analytics-assets sync + execute_in_process",
        "both succeed, loads take turns; exact tables",
        cli_seconds=round(cli.seconds, 1),
        materialization_seconds=round(materialization_seconds, 1),
        load_steps=len(intervals),
        waited_on_writer_lock=waited,
    )


BI_TOOL = """
import random, sys, time
from pathlib import Path
import duckdb
path, stop, rng = sys.argv[1], Path(sys.argv[2]), random.Random(0)
while not stop.exists():
    try:
        with duckdb.connect(path, read_only=True) as con:
            con.execute("SELECT count(*) FROM split.feature_flags").fetchall()
            time.sleep(rng.uniform(0.05, 0.3))
        print("read", flush=True)
    except duckdb.IOException:
        print("busy", flush=True)  # a load was writing: a BI tool shows its own error then
    time.sleep(rng.uniform(0.0, 0.2))
"""


def test_readers_during_a_sync_never_fail_it(make_project, figures):
    """``analytics-assets query`` in a loop, and a BI tool opening the DuckDB file read-only
    again and again, while three syncs load and build the models: every sync succeeds and is
    exact, every query succeeds (waiting for a load when one writes, and saying so)."""
    import subprocess
    import sys
    import threading

    from analytics_assets_tests.reliability.harness import CLI

    project = make_project(latency_ms=20)
    assert project.cli("sync").returncode == 0  # the tables exist before anyone queries them
    stop = threading.Event()
    queries: list[subprocess.CompletedProcess[str]] = []

    def query_loop() -> None:
        while not stop.is_set():
            queries.append(
                subprocess.run(
                    [*CLI, "query", "SELECT count(*) AS n FROM workspaces"],
                    cwd=project.root / "work",
                    env=project.env(),
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
            )

    # A BI tool: another process opening the file read-only, reading, holding it a moment.
    stop_file = project.root / "stop-bi-tool"
    bi_tool = subprocess.Popen(
        [sys.executable, "-c", BI_TOOL, str(project.duckdb_path), str(stop_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    readers = [threading.Thread(target=query_loop), threading.Thread(target=query_loop)]
    results = []
    for reader in readers:
        reader.start()
    try:
        # Every sync rewrites every scope (delete-insert) and runs the dbt models. The same
        # generation each time: with generations 1-3 main's dbt test
        # unique_key_stg_split__flag_owners fails on its own, whoever reads.
        for attempt in range(3):
            results.append(project.cli("sync"))
            assert results[-1].returncode == 0, str(results[-1])
            assert project.diffs(project.sandbox.ground_truth()) == [], attempt
    finally:
        stop.set()
        stop_file.write_text("stop")
        for reader in readers:
            reader.join(timeout=600)
        bi_out, bi_err = bi_tool.communicate(timeout=60)
    assert bi_tool.returncode == 0, bi_err
    bi_opens = bi_out.split()
    failed = [q for q in queries if q.returncode != 0]
    assert not failed, failed[0].stdout + failed[0].stderr
    assert len(queries) >= 3 and bi_opens.count("read") >= 3, (len(queries), bi_opens)
    waited = [q for q in queries if "waiting for it to finish" in q.stderr]
    writer_waits = sum("Another process has" in r.stderr for r in results)
    for q in queries:
        assert "Traceback" not in q.stderr
    figures.add(
        "concurrency",
        "queries in a loop and a BI tool reading while 3 syncs load",
        "analytics-assets sync + query x2 loops + read-only DuckDB connections",
        "every sync succeeds and is exact; every query succeeds",
        syncs=len(results),
        queries=len(queries),
        queries_that_waited_for_a_load=len(waited),
        bi_reads=bi_opens.count("read"),
        bi_busy=bi_opens.count("busy"),
        syncs_that_waited_for_a_reader=writer_waits,
    )
