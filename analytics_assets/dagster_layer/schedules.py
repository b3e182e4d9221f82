"""Routine refresh, one schedule per cadence in ``policies.CADENCES``.

They are for users who want plain cron instead of the automation conditions (see
``policies``); use one or the other. They start STOPPED: a schedule calls the Split API on a
clock, which a user turns on deliberately (UI > Automation, or ``dagster schedule start
--start-all``). Partitioned refreshes cover every current partition in one run per contiguous
range.
"""

from typing import Any

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from analytics_assets.dagster_layer.jobs import environment_job, organisation_job, workspace_job
from analytics_assets.dagster_layer.partitions import environment_partitions, workspace_partitions
from analytics_assets.dagster_layer.policies import CADENCES, Cadence
from analytics_assets.dagster_layer.sensors import range_run_requests
from analytics_assets.dagster_layer.translator import GROUP_BY_TABLE, asset_key

_JOB_BY_GROUP = {
    "split_organisation": (organisation_job, None),
    "split_workspace": (workspace_job, workspace_partitions),
    "split_environment": (environment_job, environment_partitions),
}


def _refresh_schedule(cadence: Cadence) -> Any:
    groups = {GROUP_BY_TABLE[t] for t in cadence.tables}
    assert len(groups) == 1, "a cadence covers tables of one partitioning"
    job, partitions_def = _JOB_BY_GROUP[groups.pop()]
    keys = [asset_key(t) for t in cadence.tables]

    @schedule(
        name=f"split_{cadence.name}",
        cron_schedule=cadence.schedule_cron,
        job=job,
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"Refreshes {', '.join(cadence.tables)} ({cadence.schedule_cron}).",
    )
    def refresh(context: ScheduleEvaluationContext):
        if partitions_def is None:
            return RunRequest(asset_selection=keys)
        all_keys = list(context.instance.get_dynamic_partitions(partitions_def.name))
        requests = range_run_requests(all_keys, tuple(all_keys), reason=f"schedule {cadence.name}")
        return [
            RunRequest(run_key=None, asset_selection=keys, tags=request.tags)
            for request in requests
        ]

    return refresh


SPLIT_SCHEDULES = tuple(_refresh_schedule(c) for c in CADENCES)
