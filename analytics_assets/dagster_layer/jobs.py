"""Asset jobs, one per partitioning; sensors, schedules and the CLI launch these.

Their partitioning is inferred from the selected assets (dynamic workspace / environment
partitions for the two partitioned groups).
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from analytics_assets.dagster_layer.checks import FRESHNESS_CHECKS

# Runs that call the Split API carry this tag, so the instance can cap how many run at once
# (tag concurrency limits in deploy/dagster-postgres.yaml); pools bound the load steps.
API_TAGS = {"split/api": "admin"}

organisation_job = define_asset_job(
    "split_organisation_refresh",
    selection=AssetSelection.groups("split_organisation"),
    tags=API_TAGS,
    description="Workspaces, environments, users, groups and change requests.",
)
workspace_job = define_asset_job(
    "split_workspace_refresh",
    selection=AssetSelection.groups("split_workspace"),
    tags=API_TAGS,
    description="Tables per workspace, for the selected workspace partitions.",
)
environment_job = define_asset_job(
    "split_environment_refresh",
    selection=AssetSelection.groups("split_environment"),
    tags=API_TAGS,
    description="Tables per environment, for the selected environment partitions.",
)

freshness_job = define_asset_job(
    "split_freshness_checks",
    selection=AssetSelection.checks(*FRESHNESS_CHECKS),
    description="Only the freshness checks: fails when a table is older than its cadence allows.",
)

SPLIT_JOBS = (organisation_job, workspace_job, environment_job, freshness_job)
