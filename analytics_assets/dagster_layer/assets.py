"""The Split assets: three dagster-dlt multi-assets, one per way of partitioning.

- ``split_organisation_assets``: workspaces, environments, users, groups, change requests.
- ``split_workspace_assets``: tables per workspace, partitioned by workspace id.
- ``split_environment_assets``: tables per environment, partitioned by environment id.

Each run builds a fresh dlt source for exactly its scope (a source built at definition time
cannot be run twice in one process, and each partition needs its own requests anyway). A
run over many partitions is one dlt run (single-run backfill policy).
"""

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from dagster_dlt import DagsterDltResource, dlt_assets

from analytics_assets.dagster_layer.partitions import (
    ENVIRONMENTS_KEY,
    LISTING_METADATA_KEY,
    WORKSPACES_KEY,
    environment_partitions,
    environment_refs,
    latest_listing,
    listing_entry,
    workspace_partitions,
)
from analytics_assets.dagster_layer.resources import SplitApiResource, WarehouseResource
from analytics_assets.dagster_layer.stopping import cancel_if_stopping, cancel_on_interrupt
from analytics_assets.dagster_layer.translator import (
    ENVIRONMENT_TABLES,
    ORGANISATION_TABLES,
    WORKSPACE_TABLES,
    SplitTranslator,
    user_facing_load_metadata,
)
from analytics_assets.split_source import (
    EnvironmentRef,
    RequestStats,
    SplitSettings,
    SplitSourceError,
    SyncScope,
    split_source,
)
from analytics_assets.split_source.cancellation import Cancellation
from analytics_assets.split_source.errors import find_split_error
from analytics_assets.storage_errors import storage_failure
from analytics_assets.warehouse import (
    WarehouseSettings,
    check_destination,
    drop_run_staging,
    make_pipeline,
    use_system_allocator_for_arrow,
    writer_lock,
)

_WAREHOUSE = WarehouseSettings.from_environment()
TRANSLATOR = SplitTranslator(_WAREHOUSE.destination_type, _WAREHOUSE.dataset)
# DuckDB takes one writer process: its loads share a pool whose limit the shipped instance
# config sets to 1. Other destinations load partitions concurrently; their pool bounds how
# many runs share the API's rate limit.
WAREHOUSE_IS_SINGLE_WRITER = _WAREHOUSE.single_writer
POOL = "split_duckdb_writer" if WAREHOUSE_IS_SINGLE_WRITER else "split_api"

# Definition-time sources only describe the assets; runs build their own (see module doc).
_DEFINITION_SETTINGS = SplitSettings(api_key="definition-only", base_url="http://localhost/")
# Its own folder per process: a shared one would carry another destination's state.
_DEFINITION_PIPELINES_DIR = tempfile.mkdtemp(prefix="analytics-assets-definitions-")
_DEFINITION_PIPELINE = make_pipeline(_WAREHOUSE, pipelines_dir=_DEFINITION_PIPELINES_DIR)


@atexit.register
def _remove_definition_pipelines_dir(owner: int = os.getpid()) -> None:
    # Every process that loads the code location would otherwise leave a folder behind.
    if os.getpid() == owner:
        shutil.rmtree(_DEFINITION_PIPELINES_DIR, ignore_errors=True)


def _definition_source(scope: SyncScope, tables: Sequence[str]) -> Any:
    return split_source(_DEFINITION_SETTINGS, scope).with_resources(*tables)


def _listing(pipeline: Any, table: str) -> list[dict[str, Any]]:
    columns = "id, name, workspace_id, production" if table == "environments" else "id, name"
    query = f"SELECT {columns} FROM {table} ORDER BY id"
    with pipeline.sql_client() as client, client.execute_query(query) as cursor:
        # lower-case: Snowflake returns upper-case identifiers
        names = [d[0].lower() for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return [listing_entry(row) for row in rows]


def run_split_load(
    context: AssetExecutionContext,
    dlt: DagsterDltResource,
    split_api: SplitApiResource,
    warehouse: WarehouseResource,
    scope: SyncScope,
    tables: Sequence[str],
) -> Iterator[MaterializeResult]:
    """Load one scope with dlt and yield a materialization per selected table."""
    try:
        settings = split_api.settings()
        warehouse_settings = warehouse.settings()
    except SplitSourceError as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    use_system_allocator_for_arrow()
    stats = RequestStats()
    cancellation = Cancellation()
    cancel_if_stopping(cancellation)
    source = split_source(settings, scope, stats, cancellation).with_resources(*tables)
    pipelines_dir = tempfile.mkdtemp(prefix="analytics-assets-dlt-")
    pipeline = None
    target = "the local sandbox" if split_api.uses_sandbox else settings.normalized_base_url
    context.log.info(
        f"Loading {', '.join(tables)} from {target} into {warehouse_settings.describe()}"
    )
    try:
        with cancel_on_interrupt(cancellation), writer_lock(warehouse_settings):
            pipeline = make_pipeline(
                warehouse_settings, pipelines_dir=pipelines_dir, run_id=context.run.run_id
            )
            check_destination(warehouse_settings)
            results = dlt.run(
                context=context,
                dlt_source=source,
                dlt_pipeline=pipeline,
                dagster_dlt_translator=TRANSLATOR,
                **warehouse_settings.run_options(),
            )
            for result in results.fetch_row_count():
                table = result.asset_key.path[-1]
                extra: dict[str, Any] = {
                    "split/requests": stats.by_endpoint.get(table, 0),
                    "split/run_requests": stats.requests,
                    "split/run_retries": stats.retries,
                    "split/run_rate_limited": stats.rate_limited,
                    "split/scope": _describe_scope(scope),
                    **_partition_names(context, scope),
                }
                if result.asset_key in (WORKSPACES_KEY, ENVIRONMENTS_KEY):
                    extra[LISTING_METADATA_KEY] = MetadataValue.json(_listing(pipeline, table))
                metadata = user_facing_load_metadata(dict(result.metadata or {}))
                yield result._replace(metadata={**metadata, **extra})
    except Failure:
        raise
    except Exception as exc:
        cause = find_split_error(exc)
        description = str(cause) if cause is not None else storage_failure(exc, "during the load")
        if description is not None:
            raise Failure(
                description=description,
                metadata={"split/requests": stats.requests, "split/retries": stats.retries},
                allow_retries=False,
            ) from None
        raise
    finally:
        if pipeline is not None:
            drop_run_staging(pipeline, warehouse_settings)
        shutil.rmtree(pipelines_dir, ignore_errors=True)
    context.log.info(
        f"Split API: {stats.requests} requests, {stats.retries} retries,"
        f" {stats.rate_limited} rate-limited, {stats.waited_seconds:.1f}s waiting"
    )


def _partition_names(context: AssetExecutionContext, scope: SyncScope) -> dict[str, Any]:
    """Names of the partitions a run covered: partition keys are ids, people read names."""
    if scope.is_whole_organisation:
        return {}
    names = {e["id"]: e.get("name") for e in latest_listing(context.instance, WORKSPACES_KEY) or []}
    if scope.environments is not None:
        environments = latest_listing(context.instance, ENVIRONMENTS_KEY) or []
        named = {
            e["id"]: f"{names.get(e['workspace_id'], e['workspace_id'])} / {e.get('name')}"
            for e in environments
        }
        keys = [e.environment_id for e in scope.environments]
    else:
        named = names
        keys = list(scope.workspace_ids or ())
    return {"split/partition_names": MetadataValue.json({k: named.get(k, k) for k in keys})}


def _describe_scope(scope: SyncScope) -> str:
    if scope.environments is not None:
        return "environments " + ", ".join(e.environment_id for e in scope.environments)
    if scope.workspace_ids is not None:
        return "workspaces " + ", ".join(scope.workspace_ids)
    return "organisation"


@dlt_assets(
    dlt_source=_definition_source(SyncScope(), ORGANISATION_TABLES),
    dlt_pipeline=_DEFINITION_PIPELINE,
    name="split_organisation_assets",
    dagster_dlt_translator=TRANSLATOR,
    pool=POOL,
)
def split_organisation_assets(
    context: AssetExecutionContext,
    dlt: DagsterDltResource,
    split_api: SplitApiResource,
    warehouse: WarehouseResource,
) -> Iterator[MaterializeResult]:
    yield from run_split_load(context, dlt, split_api, warehouse, SyncScope(), ORGANISATION_TABLES)


@dlt_assets(
    dlt_source=_definition_source(SyncScope(workspace_ids=("definition",)), WORKSPACE_TABLES),
    dlt_pipeline=_DEFINITION_PIPELINE,
    name="split_workspace_assets",
    dagster_dlt_translator=TRANSLATOR,
    partitions_def=workspace_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=POOL,
)
def split_workspace_assets(
    context: AssetExecutionContext,
    dlt: DagsterDltResource,
    split_api: SplitApiResource,
    warehouse: WarehouseResource,
) -> Iterator[MaterializeResult]:
    scope = SyncScope(
        workspace_ids=tuple(context.partition_keys),
        known_workspace_ids=tuple(
            context.instance.get_dynamic_partitions(workspace_partitions.name)
        ),
    )
    yield from run_split_load(context, dlt, split_api, warehouse, scope, WORKSPACE_TABLES)


@dlt_assets(
    dlt_source=_definition_source(
        SyncScope(environments=(EnvironmentRef("definition", "definition"),)), ENVIRONMENT_TABLES
    ),
    dlt_pipeline=_DEFINITION_PIPELINE,
    name="split_environment_assets",
    dagster_dlt_translator=TRANSLATOR,
    partitions_def=environment_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=POOL,
)
def split_environment_assets(
    context: AssetExecutionContext,
    dlt: DagsterDltResource,
    split_api: SplitApiResource,
    warehouse: WarehouseResource,
) -> Iterator[MaterializeResult]:
    workspace_of = environment_refs(context.instance)
    unknown = [key for key in context.partition_keys if key not in workspace_of]
    if unknown:
        raise Failure(
            description=f"Environment(s) {', '.join(unknown)} are not in the latest"
            " split/environments materialization. Materialize split/environments first; the"
            " partition sensor then removes environments that no longer exist.",
            allow_retries=False,
        )
    scope = SyncScope(
        environments=tuple(EnvironmentRef(workspace_of[k], k) for k in context.partition_keys),
        known_environment_ids=tuple(
            context.instance.get_dynamic_partitions(environment_partitions.name)
        ),
    )
    yield from run_split_load(context, dlt, split_api, warehouse, scope, ENVIRONMENT_TABLES)


SPLIT_ASSETS = (split_organisation_assets, split_workspace_assets, split_environment_assets)
