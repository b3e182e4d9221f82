"""Sensors that keep the workspace and environment partitions in step with Split.

Both start RUNNING by default (``default_status``): they only compare the latest
``split/workspaces`` / ``split/environments`` listing with the partitions, add new ones,
delete removed ones and request runs for partitions that are new or whose object changed.
Without them a new workspace would never be loaded. The routine refresh schedules start
STOPPED (see ``schedules``), because they call the API on a clock.
"""

from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    EventLogEntry,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    asset_sensor,
)

from analytics_assets.dagster_layer.jobs import environment_job, workspace_job
from analytics_assets.dagster_layer.partitions import (
    ENVIRONMENTS_KEY,
    WORKSPACES_KEY,
    contiguous_ranges,
    diff_listing,
    environment_partitions,
    listing_from_metadata,
    workspace_partitions,
)

PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_SENSOR_INTERVAL_SECONDS = 5
PARTITION_RANGE_END = "dagster/asset_partition_range_end"


def range_run_requests(
    keys_in_order: list[str], wanted: tuple[str, ...], reason: str
) -> list[RunRequest]:
    """One run per contiguous range of wanted partitions (single-run backfill)."""
    requests = []
    for start, end in contiguous_ranges(keys_in_order, wanted):
        requests.append(
            RunRequest(
                run_key=None,
                tags={
                    PARTITION_RANGE_START: start,
                    PARTITION_RANGE_END: end,
                    "split/reason": reason,
                },
            )
        )
    return requests


def _listing_at(context: SensorEvaluationContext, key: AssetKey, storage_id: str | None) -> Any:
    if not storage_id:
        return None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, storage_ids=[int(storage_id)]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return listing_from_metadata(records[0].asset_materialization.metadata)


def partition_bookkeeping(
    context: SensorEvaluationContext,
    asset_event: EventLogEntry,
    listing_key: AssetKey,
    partitions_def: DynamicPartitionsDefinition,
) -> list[SensorResult]:
    """Diff a new listing against the partitions; add, delete and request runs."""
    materialization = asset_event.asset_materialization
    listing = listing_from_metadata(materialization.metadata if materialization else None)
    if listing is None:  # a subset run that did not load this table
        return [SensorResult(skip_reason=f"{listing_key.to_user_string()} carries no listing")]
    existing = list(context.instance.get_dynamic_partitions(partitions_def.name))
    previous = _listing_at(context, listing_key, context.cursor)
    changes = diff_listing(existing, listing, previous)
    final_order = [k for k in existing if k not in set(changes.deleted)] + list(changes.added)
    run_requests = range_run_requests(
        final_order, changes.to_refresh, reason="new or changed in Split"
    )
    partition_requests = []
    if changes.added:
        partition_requests.append(partitions_def.build_add_request(list(changes.added)))
    if changes.deleted:
        partition_requests.append(partitions_def.build_delete_request(list(changes.deleted)))
    context.log.info(
        f"{partitions_def.name}: +{len(changes.added)} -{len(changes.deleted)}"
        f" ~{len(changes.changed)}; {len(run_requests)} run(s) requested"
    )
    return [SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests)]


def _partition_sensor(
    name: str,
    listing_key: AssetKey,
    partitions_def: DynamicPartitionsDefinition,
    job: Any,
) -> Any:
    @asset_sensor(
        asset_key=listing_key,
        job=job,
        name=name,
        default_status=DefaultSensorStatus.RUNNING,
        # The runs a new listing needs start seconds after it: "Materialize all" in the UI
        # then takes about as long as a sync from the CLI. An evaluation only reads the
        # instance (no API call), so a short interval costs little.
        minimum_interval_seconds=PARTITION_SENSOR_INTERVAL_SECONDS,
        description=f"Keeps the {partitions_def.name} partitions in step with"
        f" {listing_key.to_user_string()}; requests runs for new or changed ones.",
    )
    def sensor_fn(context: SensorEvaluationContext, asset_event: EventLogEntry):
        return partition_bookkeeping(context, asset_event, listing_key, partitions_def)

    return sensor_fn


workspace_partition_sensor = _partition_sensor(
    "split_workspace_partitions", WORKSPACES_KEY, workspace_partitions, workspace_job
)
environment_partition_sensor = _partition_sensor(
    "split_environment_partitions", ENVIRONMENTS_KEY, environment_partitions, environment_job
)

# Declarative automation: evaluates every asset's automation condition (see ``policies``).
# STOPPED by default, since it calls the Split API on a clock; the user turns it on.
automation_sensor = AutomationConditionSensorDefinition(
    "split_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.STOPPED,
    # Plain runs, not backfills: the backfill daemon would add minutes to each refresh. (How
    # Dagster groups the partitions into runs is not tested here.)
    emit_backfills=False,
    description="Refreshes every table on its cadence, upstream tables first, and rebuilds"
    " the dbt models after them. Turn it on to keep the warehouse fresh.",
)

SPLIT_SENSORS = (workspace_partition_sensor, environment_partition_sensor, automation_sensor)
