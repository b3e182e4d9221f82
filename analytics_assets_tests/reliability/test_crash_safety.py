"""Crash safety: ``analytics-assets sync`` killed with SIGKILL anywhere, then re-run.

Each kill is planned from its own seed: a target phase of dlt's work (extract, normalize,
load) in one of the three Dagster runs of the sync (organisation, workspaces, environments)
and a random delay once that phase is seen; or a random moment around a run boundary (a
random delay after a random "Running"/"Finished" line), where Dagster does its bookkeeping. The
phase is read from dlt's working folder (``$DAGSTER_HOME/dlt-working/run-*``), and the phase
actually hit is read back from what the killed process left there. Before some kills the
sandbox moves to its next generation, so the killed run had new data to write and a stale
table would show.

After each kill:

- no process of the sync's process group survives;
- the instance lock and the DuckDB writer lock are free at once (both are flock locks, which
  die with their process), and the DuckDB file opens read-only and every table reads;
- every scope (a workspace's or an environment's rows, an organisation table) is either
  exactly as before the killed run or exactly the new truth (each scope is its own load
  package, committed whole), with no duplicate keys;
- a re-run (in-process ``run_sync``, or the CLI every third time) is not blocked: it closes
  the killed Dagster run (marked failed, its DuckDB writer slot freed) and converges to the
  exact ground truth.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from analytics_assets_tests.reliability.harness import (
    Project,
    dlt_folders,
    dlt_phase,
    duplicate_keys,
    group_members,
    last_load_id,
    readable,
    scope_mix,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

KILLS = int(os.environ.get("RELIABILITY_KILLS", "10"))
TARGETS = ("extract", "normalize", "load")
RUNS = ("organisation", "workspaces", "environments")
# Random delay once the target phase is seen: within the phase's usual length.
DELAYS = {"extract": 0.15, "normalize": 0.03, "load": 0.12}


def _plan(seed: int) -> dict:
    rng = random.Random(seed)
    target = TARGETS[seed % 3] if seed % 10 != 9 else "run boundary"
    return {
        "seed": seed,
        "target": target,
        "run": rng.randrange(3),
        "delay": rng.uniform(0, DELAYS.get(target, 0.5)),
        # run boundary: after the n-th "Running ..."/"Finished ..." line of the sync's output
        "line": rng.randrange(6),
        "new_generation": rng.random() < 0.6,
        "rerun_with_cli": seed % 3 == 2,
    }


def _lock_is_free(path: Path) -> bool:
    if not path.exists():
        return True
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def _progress_lines(running) -> int:  # type: ignore[no-untyped-def]
    lines = [line.strip() for _, line in list(running.stderr_lines)]
    return sum(1 for line in lines if line.startswith(("Running", "Finished")))


def _kill_at(project: Project, plan: dict) -> tuple[str, float]:
    """Start a sync and SIGKILL its process group at the planned point.

    Returns where it was hit ("<run>: <phase>", or "finished" if it ended first) and when.
    """
    known = set(dlt_folders(project.dlt_working))
    running = project.start_cli("sync")
    seen: list[Path] = []  # this sync's dlt folders, one per Dagster run, in order
    while running.process.poll() is None:
        for folder in dlt_folders(project.dlt_working):
            if folder not in known and folder not in seen:
                seen.append(folder)
        if plan["target"] == "run boundary":
            if _progress_lines(running) > plan["line"]:
                time.sleep(plan["delay"])
                break
        elif len(seen) > plan["run"] and dlt_phase(seen[-1]) == plan["target"]:
            # The planned run, or a later one if the phase was too short to catch.
            time.sleep(plan["delay"])
            break
        time.sleep(0.005)
    killed_at = time.monotonic() - running.started
    if running.process.poll() is not None:
        project.record(running)
        return "finished", killed_at
    running.kill_group()
    project.record(running)
    # Dagster's compute-log capture runs `tail -F` and a watcher per run, in the same group:
    # all got the SIGKILL; give the kernel a moment to finish them.
    assert wait_until(lambda: group_members(running.pgid) == [], timeout=10, interval=0.1), (
        f"processes of the killed sync survived: {group_members(running.pgid)}"
    )
    # A finished run's folder is removed; the killed run's folder stays behind.
    seen += [f for f in dlt_folders(project.dlt_working) if f not in known and f not in seen]
    if not seen:
        return "before any dlt run", killed_at
    if not seen[-1].exists():
        return "between Dagster runs", killed_at
    return f"{RUNS[len(seen) - 1]}: {dlt_phase(seen[-1])}", killed_at


def test_sigkill_anywhere_then_rerun_converges(make_project, figures):
    project = make_project()
    sandbox = project.sandbox
    clean = project.cli("sync")
    assert clean.returncode == 0, str(clean)
    clean_seconds = clean.seconds
    truth = sandbox.ground_truth()
    assert project.diffs(truth) == []

    hits: Counter = Counter()
    rows = []
    generation = 0
    kills = 0
    for seed in range(KILLS + 5):
        if kills == KILLS:
            break
        plan = _plan(seed)
        if plan["new_generation"]:
            generation += 1
            sandbox.control(generation=generation)
        previous, truth = truth, sandbox.ground_truth()
        loaded_before = last_load_id(project.duckdb_path)

        where, at = _kill_at(project, plan)
        hits[where.split(": ")[-1] if ": " in where else where] += 1
        kills += where != "finished"

        # Nothing holds the locks; the file reads; each table is old or new, never partial.
        assert _lock_is_free(project.home / "analytics-assets-sync.lock")
        assert _lock_is_free(project.duckdb_path.with_suffix(".writer.lock"))
        assert readable(project.duckdb_path)
        assert duplicate_keys(project.duckdb_path) == {}
        # Each scope (a workspace's or an environment's rows, an organisation table) is
        # exactly as before or exactly the new truth: loads commit whole scopes.
        assert (
            project.diffs(scope_mix(project.duckdb_path, previous, truth, loaded_before)) == []
        ), where

        # The re-run is not blocked and converges.
        rerun_started = time.monotonic()
        if plan["rerun_with_cli"]:
            result = project.cli("sync", timeout=600)
            assert result.returncode == 0, str(result)
            recovered = "interrupted sync" in result.stderr
        else:
            messages: list[str] = []
            project.sync_in_process(progress=messages.append)
            recovered = any("interrupted sync" in m for m in messages)
        rerun_seconds = time.monotonic() - rerun_started
        assert project.diffs(truth) == [], f"seed {seed}, killed at {where}"
        assert duplicate_keys(project.duckdb_path) == {}
        with project.instance() as instance:
            # The killed run was closed (marked failed), not left STARTED forever.
            unfinished = [r.run_id for r in instance.get_runs() if not r.is_finished]
            assert unfinished == []
            info = instance.event_log_storage.get_concurrency_info("split_duckdb_writer")
            assert info.claimed_slots == [] and info.pending_steps == []
        aim = (
            f"after progress line {plan['line'] + 1} + {plan['delay']:.2f}s"
            if plan["target"] == "run boundary"
            else f"{plan['target']} of the {RUNS[plan['run']]} run + {plan['delay']:.2f}s"
        )
        rows.append(
            f"seed {seed}: target {aim},"
            f" hit {where} at {at:.2f}s, generation {generation},"
            f" re-run {'CLI' if plan['rerun_with_cli'] else 'in-process'} {rerun_seconds:.1f}s"
            f"{' (closed the killed run)' if recovered else ''}"
        )

    print("\n".join(rows))
    assert kills == KILLS, rows
    # Every phase of dlt's work was hit at least once.
    assert {"extract", "normalize", "load"} <= set(hits), dict(hits)
    figures.add(
        "crash",
        f"SIGKILL x{KILLS} (process group), then re-run",
        "analytics-assets sync (killed) + run_sync / CLI (re-run)",
        "every re-run exact; no duplicates; file readable; locks free",
        kills=kills,
        kills_by_phase=dict(hits),
        clean_sync_seconds=round(clean_seconds, 1),
        details=rows,
    )
