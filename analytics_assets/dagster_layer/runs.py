"""Runs launched by the CLI, recorded as the runs the UI launches from this code location.

``JobDefinition.execute_in_process`` records a run without a code location: the job's page
then says "No runs found", the Overview timeline leaves it out, and re-executing it from the
UI warns that the job may be a different version. Here the run is created with the code
location's origin (its name in ``workspace.yaml``) and the job's snapshot, then executed in
this process, exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import execute_run
from dagster._core.execution.execution_result import ExecutionResult
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
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
) -> ExecutionResult:
    """Run the job (or the selected assets of it) here, recorded under the code location."""
    job = defs.resolve_job_def(job_name)
    selection = set(asset_selection) if asset_selection else None
    run: DagsterRun = instance.create_run_for_job(
        job_def=job,
        run_config=run_config,
        tags={**job.run_tags, **tags},
        asset_selection=selection,
        remote_job_origin=job_origin(job_name),
    )
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)
