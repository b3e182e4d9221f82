"""Runs launched by the CLI, recorded as the runs the UI launches from this code location.

``JobDefinition.execute_in_process`` records a run without a code location: the job's page
then says "No runs found", the Overview timeline leaves it out, and re-executing it from the
UI warns that the job may be a different version. Here the run is created with the code
location's origin (its name in ``workspace.yaml``) and the job's snapshot, then executed in
this process, exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence, Set
from typing import Any

from dagster import AssetCheckKey, AssetKey, DagsterInstance, Definitions
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.execution_result import ExecutionResult
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.snap import snapshot_from_execution_plan
from dagster._core.storage.dagster_run import DagsterRun

# The code location's name, as workspace.yaml and pyproject.toml ([tool.dagster]) give it.
# A Helm deployment names its location after the deployment (no "_" allowed there), so the
# deployment sets ANALYTICS_CODE_LOCATION to that name.
LOCATION_NAME = "analytics_assets"
# A Definitions object is served as this one repository.
REPOSITORY_NAME = "__repository__"


def job_origin(job_name: str) -> RemoteJobOrigin:
    """The origin the UI gives a run of this code location's job."""
    location = os.environ.get("ANALYTICS_CODE_LOCATION") or LOCATION_NAME
    repository = RemoteRepositoryOrigin(
        code_location_origin=RegisteredCodeLocationOrigin(location),
        repository_name=REPOSITORY_NAME,
    )
    return RemoteJobOrigin(repository_origin=repository, job_name=job_name)


def execute_job_run(
    defs: Definitions,
    instance: DagsterInstance,
    job_name: str,
    *,
    tags: Mapping[str, str],
    run_config: Mapping[str, Any],
    asset_selection: Sequence[AssetKey] | None = None,
    asset_check_selection: Set[AssetCheckKey] | None = None,
) -> ExecutionResult:
    """Run the job (or the selected assets and checks of it) here, recorded under the code
    location. Without ``asset_check_selection`` a selection runs every check of its assets."""
    job = defs.resolve_job_def(job_name)
    selection = set(asset_selection) if asset_selection else None
    if asset_check_selection is None:
        run: DagsterRun = instance.create_run_for_job(
            job_def=job,
            run_config=run_config,
            tags={**job.run_tags, **tags},
            asset_selection=selection,
            remote_job_origin=job_origin(job_name),
        )
    else:
        # What create_run_for_job does, with the checks selected too (it takes assets only).
        job = job.get_subset(asset_selection=selection, asset_check_selection=asset_check_selection)
        plan = create_execution_plan(
            job=job, run_config=run_config, instance_ref=instance.get_ref()
        )
        run = instance.create_run(
            job_name=job.name,
            run_id=None,
            run_config=run_config,
            status=None,
            tags={**job.run_tags, **tags},
            root_run_id=None,
            parent_run_id=None,
            step_keys_to_execute=plan.step_keys_to_execute,
            execution_plan_snapshot=snapshot_from_execution_plan(plan, job.get_job_snapshot_id()),
            job_snapshot=job.get_job_snapshot(),
            parent_job_snapshot=job.get_parent_job_snapshot(),
            asset_selection=selection,
            asset_check_selection=frozenset(asset_check_selection),
            resolved_op_selection=None,
            op_selection=None,
            remote_job_origin=job_origin(job_name),
            job_code_origin=None,
            asset_graph=job.asset_layer.asset_graph,
        )
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)
