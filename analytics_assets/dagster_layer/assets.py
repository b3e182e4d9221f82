"""The Split assets: three dagster-dlt multi-assets, one per way of partitioning.

- ``split_organisation_assets``: workspaces, environments, users, groups, change requests.
- ``split_workspace_assets``: tables per workspace, partitioned by workspace.
- ``split_environment_assets``: tables per environment, partitioned by environment.
  (Partition keys: see ``partitions``.)

Each run builds a fresh dlt source per scope it covers (a source built at definition time
cannot be run twice in one process): one per partition of a range (single-run backfill
policy: one run, many partitions) and one per organisation table group. Each scope is its own
load package and partition materialization (see ``scoped_load``), so a failing scope costs
only itself.
"""

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    BackfillPolicy,
    Failure,
    MaterializeResult,
)
from dagster_dlt import DagsterDltResource, dlt_assets

from analytics_assets.dagster_layer.partitions import (
    ENVIRONMENTS_KEY,
    environment_partitions,
    listing_by_partition,
    partition_id,
    workspace_partitions,
)
from analytics_assets.dagster_layer.resources import SplitApiResource, WarehouseResource
from analytics_assets.dagster_layer.scoped_load import LoadUnit, run_scoped_loads
from analytics_assets.dagster_layer.translator import (
    ENVIRONMENT_TABLES,
    ORGANISATION_TABLES,
    WORKSPACE_TABLES,
    SplitTranslator,
)
from analytics_assets.split_source import EnvironmentRef, SplitSettings, SyncScope, split_source
from analytics_assets.warehouse import WarehouseSettings, make_pipeline

# Definition-time sources only describe the assets; runs build their own (see module doc).
_DEFINITION_SETTINGS = SplitSettings(api_key="definition-only", base_url="http://localhost/")


def pool_for(warehouse: WarehouseSettings) -> str:
    """The pool every load (and, on DuckDB, every check) joins.

    DuckDB takes one writer process: its loads share a pool whose limit the shipped instance
    config sets to 1. Other destinations load partitions concurrently; their pool bounds how
    many runs share the API's rate limit."""
    return "split_duckdb_writer" if warehouse.single_writer else "split_api"


def _definition_source(scope: SyncScope, tables: Sequence[str]) -> Any:
    return split_source(_DEFINITION_SETTINGS, scope).with_resources(*tables)


ORGANISATION_LOADS = (("workspaces", "environments"), ("users",), ("groups",), ("change_requests",))
"""The organisation run's scopes, one load each. Environments are fetched per workspace of
the workspaces listing, so the two load together: apart, the listing would be fetched twice."""


def organisation_units() -> list[LoadUnit]:
    return [LoadUnit(" and ".join(tables), SyncScope(), tables) for tables in ORGANISATION_LOADS]


def workspace_units(context: AssetExecutionContext) -> list[LoadUnit]:
    """One load per workspace partition of the run; its scope also clears unlisted ids."""
    known = tuple(
        partition_id(key)
        for key in context.instance.get_dynamic_partitions(workspace_partitions.name)
    )
    return [
        LoadUnit(
            f"workspace {key}",
            SyncScope(workspace_ids=(partition_id(key),), known_workspace_ids=known),
            WORKSPACE_TABLES,
            partition=key,
        )
        for key in context.partition_keys
    ]


def environment_units(context: AssetExecutionContext) -> list[LoadUnit]:
    """One load per environment partition of the run; its scope also clears unlisted ids."""
    listed = listing_by_partition(context.instance, ENVIRONMENTS_KEY)
    unknown = [key for key in context.partition_keys if key not in listed]
    if unknown:
        raise Failure(
            description=f"Environment(s) {', '.join(unknown)} are not in the latest"
            " split/environments materialization. Materialize split/environments first; the"
            " partition sensor then removes environments that no longer exist.",
            allow_retries=False,
        )
    known = tuple(
        partition_id(key)
        for key in context.instance.get_dynamic_partitions(environment_partitions.name)
    )
    return [
        LoadUnit(
            f"environment {key}",
            SyncScope(
                environments=(EnvironmentRef(listed[key]["workspace_id"], listed[key]["id"]),),
                known_environment_ids=known,
            ),
            ENVIRONMENT_TABLES,
            partition=key,
        )
        for key in context.partition_keys
    ]


@dataclass(frozen=True)
class _SplitAssetGroup:
    """One of the three multi-assets: what it loads, how it is partitioned, its scopes."""

    name: str
    tables: Sequence[str]
    definition_scope: SyncScope
    units: Callable[[AssetExecutionContext], list[LoadUnit]]
    partitions_def: Any = None


SPLIT_ASSET_GROUPS = (
    _SplitAssetGroup(
        "split_organisation_assets",
        ORGANISATION_TABLES,
        SyncScope(),
        lambda context: organisation_units(),
    ),
    _SplitAssetGroup(
        "split_workspace_assets",
        WORKSPACE_TABLES,
        SyncScope(workspace_ids=("definition",)),
        workspace_units,
        workspace_partitions,
    ),
    _SplitAssetGroup(
        "split_environment_assets",
        ENVIRONMENT_TABLES,
        SyncScope(environments=(EnvironmentRef("definition", "definition"),)),
        environment_units,
        environment_partitions,
    ),
)


def build_split_assets(destination: WarehouseSettings) -> tuple[AssetsDefinition, ...]:
    """The three Split multi-assets, described for ``destination`` (it names the tables'
    relations, and its kind picks the pool). Runs read their own settings from the
    ``warehouse`` resource."""
    translator = SplitTranslator(destination.destination_type, destination.dataset)
    # Describing the assets needs a pipeline object, not its folder: dlt creates one anyway,
    # and it goes with the temporary folder.
    with tempfile.TemporaryDirectory(prefix="analytics-assets-definitions-") as folder:
        definition_pipeline = make_pipeline(destination, pipelines_dir=folder)
    return tuple(
        _split_assets(group, definition_pipeline, translator, pool_for(destination))
        for group in SPLIT_ASSET_GROUPS
    )


def _split_assets(
    group: _SplitAssetGroup, pipeline: Any, translator: SplitTranslator, pool: str
) -> AssetsDefinition:
    partitioned = group.partitions_def is not None

    @dlt_assets(
        dlt_source=_definition_source(group.definition_scope, group.tables),
        dlt_pipeline=pipeline,
        name=group.name,
        dagster_dlt_translator=translator,
        partitions_def=group.partitions_def,
        # one run loads a whole range of partitions, each its own scope (see scoped_load)
        backfill_policy=BackfillPolicy.single_run() if partitioned else None,
        pool=pool,
    )
    def split_assets(
        context: AssetExecutionContext,
        dlt: DagsterDltResource,
        split_api: SplitApiResource,
        warehouse: WarehouseResource,
    ) -> Iterator[MaterializeResult | AssetMaterialization]:
        yield from run_scoped_loads(context, dlt, split_api, warehouse, group.units(context))

    return split_assets
