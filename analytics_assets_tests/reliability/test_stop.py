"""Stopping a sync: SIGTERM or Ctrl+C while a response is stalled ends it promptly and cleanly.

``analytics-assets sync`` goes through a proxy that forwards to the sandbox and stalls one
response (headers sent, body never), chosen at random among a sync's requests. Once that
response is stalled, after a random delay, the CLI process gets SIGTERM, as Kubernetes,
``timeout`` and CI time-outs send it (to the process, not its group). Each stop must:

- end the process within 10 s (stretched only on an oversubscribed machine, as the other
  timing limits of this suite), exit 143, say so in one sentence, no traceback;
- leave no process of its group, no lock held (the sync lock and the DuckDB writer lock can
  be taken at once), no run STARTED and no pool slot claimed;
- leave every table exactly as before or exactly the sandbox's truth, never partial;
- end by itself: the client closes the stalled request when the sync is cancelled, so the
  run removes its dlt working folder (no Split data left behind) without waiting for the
  grace period, after which the CLI would close the runs itself and exit regardless;
- let the next sync start at once (it has no interrupted run to close) and end exact.

Before six of the ten stops the sandbox moves to its next generation, so the stopped sync
had new data to write.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analytics_assets.dagster_layer.stopping import STOP_GRACE_SECONDS, signal_name
from analytics_assets_tests.reliability.harness import (
    dlt_folders,
    duplicate_keys,
    group_members,
    load_factor,
    no_worse,
    readable,
    wait_until,
)
from analytics_assets_tests.reliability.stalling import StallingProxy

pytestmark = pytest.mark.slow

STOPS = int(os.environ.get("RELIABILITY_STOPS", "10"))
EXIT_SECONDS = 10.0
MIN_REQUESTS = 206  # a whole sync of size tiny
CLI_PYTHON = [sys.executable]
REPO_ROOT = str(Path(__file__).resolve().parents[2])


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


def _stop_while_stalled(project, stall_at: int, delay: float, signals: list[int]):  # type: ignore[no-untyped-def]
    """Sync through a proxy that stalls request ``stall_at``; send ``signals`` once it stalls.

    Returns (result, seconds from the first signal to the exit, the stalled path)."""
    limit = EXIT_SECONDS * max(1.0, load_factor() / 2)
    with StallingProxy(project.sandbox.base_url, stall_at) as proxy:
        running = project.start_cli("sync", SPLIT_API_BASE_URL=proxy.base_url)
        if not proxy.stalled.wait(180):
            running.kill_group()
            raise AssertionError(f"no request {stall_at} was made:\n{running.stderr}")
        time.sleep(delay)
        signalled = time.monotonic()
        for number, signum in enumerate(signals):
            if number:
                time.sleep(0.3)
            running.process.send_signal(signum)
        try:
            running.process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            running.kill_group()
            raise AssertionError(
                f"still running {limit:.0f}s after {signals}:\n{running.stderr}"
            ) from None
        exit_seconds = time.monotonic() - signalled
        result = running.result()
    project.record(running, result)
    # Dagster's compute-log watchers notice their parent is gone within moments.
    assert wait_until(lambda: group_members(running.pgid) == [], timeout=15), group_members(
        running.pgid
    )
    return result, exit_seconds, proxy.stalled_path


def _assert_closed_cleanly(project) -> None:  # type: ignore[no-untyped-def]
    assert _lock_is_free(project.home / "analytics-assets-sync.lock")
    assert _lock_is_free(project.duckdb_path.with_suffix(".writer.lock"))
    with project.instance() as instance:
        unfinished = [(r.run_id, r.status.value) for r in instance.get_runs() if not r.is_finished]
        assert unfinished == []
        info = instance.event_log_storage.get_concurrency_info("split_duckdb_writer")
        assert info.claimed_slots == [] and info.pending_steps == []


def test_sigterm_while_a_response_is_stalled(make_project, figures):
    project = make_project()
    first = project.cli("sync")
    assert first.returncode == 0, str(first)
    generation = 0
    rows, exits, statuses = [], [], {}
    for seed in range(STOPS):
        rng = random.Random(seed)
        if rng.random() < 0.6:
            generation += 1
            project.sandbox.control(generation=generation)
        truth = project.sandbox.ground_truth()
        before = project.snapshot()
        stall_at, delay = rng.randrange(1, MIN_REQUESTS), rng.uniform(0.0, 1.5)

        result, exit_seconds, stalled = _stop_while_stalled(
            project, stall_at, delay, [signal.SIGTERM]
        )

        message = " ".join(result.stderr.split())
        assert result.returncode == 143, str(result)
        assert "stopped: The sync was stopped by SIGTERM." in message, result.stderr
        assert "Traceback" not in result.stderr and "Stack Trace" not in result.stderr
        _assert_closed_cleanly(project)
        # The client honoured the cancellation: the run ended by itself and removed its dlt
        # working folder (Split data); the exit did not wait for the grace period's end.
        assert dlt_folders(project.tmp) == [], dlt_folders(project.tmp)
        assert readable(project.duckdb_path)
        assert duplicate_keys(project.duckdb_path) == {}
        current = [d.table for d in project.diffs(truth)]
        complete = [t for t in truth["tables"] if t not in current]
        stopped = project.snapshot()

        again = project.cli("sync")
        assert again.returncode == 0, str(again)
        assert "interrupted sync" not in again.stderr  # nothing was left for it to close
        assert "Another process is writing" not in again.stderr
        assert project.diffs(truth) == [], f"seed {seed}"
        # Each scope the stopped sync left is as before, or as the exact sync left it (its
        # load was committed before the stop): never a half-written scope.
        assert no_worse(before, stopped, complete=project.snapshot()) == [], seed
        exits.append(exit_seconds)
        rows.append(
            f"seed {seed}: stalled request {stall_at} ({stalled.split('?')[0]}) + {delay:.2f}s,"
            f" generation {generation}: exit 143 after {exit_seconds:.1f}s,"
            f" {len(complete)} tables already new; next sync exact in {again.seconds:.1f}s"
        )
    print("\n".join(rows))
    with project.instance() as instance:
        for run in instance.get_runs():
            statuses[run.status.value] = statuses.get(run.status.value, 0) + 1
    # Every run a stop interrupted ended CANCELED (none FAILURE, none left STARTED).
    assert set(statuses) <= {"SUCCESS", "CANCELED"}, statuses
    figures.add(
        "stop",
        f"SIGTERM x{STOPS} while a response is stalled, then re-run",
        "analytics-assets sync",
        "exit 143, no lock/slot/STARTED run left, tables as before or new, next sync exact",
        max_exit_seconds=round(max(exits), 1),
        ended_within_grace=sum(e < STOP_GRACE_SECONDS for e in exits),
        mean_exit_seconds=round(sum(exits) / len(exits), 1),
        run_statuses=statuses,
    )


def test_second_ctrl_c_stops_at_once(make_project, figures):
    project = make_project()
    result, exit_seconds, _ = _stop_while_stalled(project, 40, 0.2, [signal.SIGINT, signal.SIGINT])
    # 130, or killed by the second SIGINT itself when it lands while the interpreter is
    # already shutting down (Python then gives signals back to the system): a shell shows
    # 130 for both.
    assert result.returncode in (130, -signal.SIGINT), str(result)
    assert "stopped: The sync was stopped by SIGINT." in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    _assert_closed_cleanly(project)
    again = project.cli("sync")
    assert again.returncode == 0, str(again)
    assert project.diffs(project.sandbox.ground_truth()) == []
    figures.add(
        "stop",
        "Ctrl+C twice while a response is stalled",
        "analytics-assets sync",
        "exit 130, clean, next sync exact",
        exit_seconds=round(exit_seconds, 1),
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["UI Terminate", "pod"])
def test_terminating_a_dagster_run_stops_it(signum, make_project, figures):
    """A UI "Terminate" (the run marked canceling, then SIGINT to its process) or a pod's
    SIGTERM, while a response of the run is stalled: the run ends CANCELED within seconds,
    with its locks and slot free and its tables as before."""
    from dagster import DagsterRunStatus, RunsFilter

    from analytics_assets_tests.reliability.run_worker import WORKER, WORKER_TAG

    project = make_project()
    assert project.cli("sync").returncode == 0
    project.sandbox.control(generation=1)  # the run has new data it must not half-write
    before = project.snapshot()
    limit = EXIT_SECONDS * max(1.0, load_factor() / 2)
    with StallingProxy(project.sandbox.base_url, stall_at=5) as proxy:
        worker = subprocess.Popen(
            [
                *CLI_PYTHON,
                "-m",
                "analytics_assets_tests.reliability.run_worker",
                "split_organisation_refresh",
            ],
            cwd=project.root / "work",
            env={**project.env(SPLIT_API_BASE_URL=proxy.base_url), "PYTHONPATH": REPO_ROOT},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            wait_until(lambda: proxy.stalled.is_set() or worker.poll() is not None, 180)
            if not proxy.stalled.is_set():
                raise AssertionError("the run made no 5th request:\n" + worker.communicate()[1])
            with project.instance() as instance:
                (run,) = instance.get_runs(RunsFilter(tags={WORKER_TAG: WORKER}))
                if signum == signal.SIGINT:
                    instance.report_run_canceling(run)  # what the UI's Terminate does first
            signalled = time.monotonic()
            worker.send_signal(signum)
            out, err = worker.communicate(timeout=limit)
            exit_seconds = time.monotonic() - signalled
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    project.ledger.add_text("run worker", out + err)
    assert worker.returncode == 0, out + err
    _assert_closed_cleanly(project)
    with project.instance() as instance:
        status = instance.get_run_by_id(run.run_id).status
    expected = DagsterRunStatus.CANCELED if signum == signal.SIGINT else DagsterRunStatus.FAILURE
    assert status == expected, out + err
    assert no_worse(before, project.snapshot()) == []
    assert dlt_folders(project.tmp) == []
    figures.add(
        "stop",
        f"Dagster run stopped by {signal_name(signum)} while a response is stalled",
        "run in a worker process (execute_in_process in its main thread)",
        f"run {status.value}, locks and slot free, tables as before",
        exit_seconds=round(exit_seconds, 1),
    )
