"""The stop's backstop: a sync that cannot end by itself (a wait nothing interrupts) is
given up on after the grace period; its runs are marked canceled and its slots freed.

The reliability suite stops real syncs (``reliability/test_stop.py``); there the client
honours the cancellation and the runs end by themselves, so the backstop never fires. Here
the work blocks on purpose, in this process, with a real SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from analytics_assets.dagster_layer.instance import TEMPLATE
from analytics_assets.dagster_layer.stopping import StoppableSync, SyncStopped, clear_stop
from analytics_assets.dagster_layer.sync import (
    LAUNCHED_BY,
    LAUNCHED_BY_TAG,
    SYNC_INSTANCE_TAG,
    _sync_instance_id,
    unfinished_sync_runs,
)


def test_a_stop_that_cannot_end_by_itself_closes_its_runs(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(TEMPLATE.read_text())
    tags = {LAUNCHED_BY_TAG: LAUNCHED_BY, SYNC_INSTANCE_TAG: _sync_instance_id(home)}
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.add_run(
            DagsterRun(
                job_name="split_organisation_refresh",
                run_id=make_new_run_id(),
                status=DagsterRunStatus.STARTED,
                tags=tags,
            )
        )
    stoppable = StoppableSync(
        lambda: DagsterInstance.from_config(str(home)),
        lambda: unfinished_sync_runs(home),
        grace_seconds=0.5,
    )
    never = threading.Event()

    def stuck() -> None:  # a request that nothing interrupts
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        never.wait()

    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SyncStopped) as stopped:
            stoppable.run(stuck)
    finally:
        never.set()
        clear_stop()
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are given back
    assert stopped.value.exit_code == 143 and not stopped.value.ended_by_itself
    assert stoppable.closed_runs == [run.run_id]
    assert "1 run(s) in progress were marked canceled" in str(stopped.value)
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
