"""A sync's runs are recorded as the code location's runs, as the UI records its own."""

from __future__ import annotations

from pathlib import Path

from dagster import RunsFilter
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from analytics_assets.dagster_layer.runs import LOCATION_NAME, REPOSITORY_NAME

ROOT = Path(__file__).resolve().parents[2]


def test_sync_runs_belong_to_the_code_location_the_ui_serves(synced_project):
    instance = synced_project.instance
    runs = instance.get_runs(RunsFilter(run_ids=synced_project.report.runs))
    assert len(runs) == len(synced_project.report.runs) >= 3
    # The code location as `dagster dev` loads it (its own process, from workspace.yaml).
    target = WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")])
    with WorkspaceProcessContext(instance, target) as workspace:
        location = workspace.create_request_context().get_code_location(LOCATION_NAME)
        repository = location.get_repository(REPOSITORY_NAME)
        label = repository.get_remote_origin().get_label()
        for run in runs:
            assert run.remote_job_origin.repository_origin.get_label() == label
            # Re-execution warns unless the run's job is the loaded job: a run of selected
            # assets records the whole job's snapshot as its parent.
            snapshot = repository.get_full_job(run.job_name).identifying_job_snapshot_id
            lineage = instance.get_job_snapshot(run.job_snapshot_id).lineage_snapshot
            recorded = lineage.parent_snapshot_id if lineage else run.job_snapshot_id
            assert recorded == snapshot, run.job_name
    # The job page and the Overview timeline list a job's runs by its name and this label.
    for job_name in {run.job_name for run in runs}:
        listed = instance.get_runs(
            RunsFilter(job_name=job_name, tags={REPOSITORY_LABEL_TAG: label})
        )
        assert {r.run_id for r in listed} == {r.run_id for r in runs if r.job_name == job_name}
