"""The single place where a dlt resource becomes a Dagster asset spec."""

from __future__ import annotations

from typing import Any

from dagster import AllPartitionMapping, AssetDep, AssetKey, AssetSpec, TableColumn, TableSchema
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from analytics_assets.split_source import ENDPOINTS, ENDPOINTS_BY_TABLE, upstream_tables

KEY_PREFIX = "split"
OWNERS = ["team:data-platform"]

# The Dagster shape of the graph, from each table's scope in the endpoint table: org-wide
# assets, and assets partitioned by workspace or by environment (keys: see partitions.py).
# Environments are listed per workspace but define the environment partitions, so they load
# with the organisation, beside the workspaces that define the workspace partitions.
PARTITION_DEFINING_TABLES = ("workspaces", "environments")
ORGANISATION_TABLES = PARTITION_DEFINING_TABLES + tuple(
    e.table for e in ENDPOINTS if e.scope == "org" and e.table not in PARTITION_DEFINING_TABLES
)
WORKSPACE_TABLES = tuple(
    e.table
    for e in ENDPOINTS
    if e.scope == "workspace" and e.table not in PARTITION_DEFINING_TABLES
)
ENVIRONMENT_TABLES = tuple(e.table for e in ENDPOINTS if e.scope == "environment")

GROUP_BY_TABLE = {
    **{t: "split_organisation" for t in ORGANISATION_TABLES},
    **{t: "split_workspace" for t in WORKSPACE_TABLES},
    **{t: "split_environment" for t in ENVIRONMENT_TABLES},
}


# dagster-dlt's decorator stores the definition-time source, pipeline and translator in each
# spec's metadata (its fallback when a run passes none), which the UI can only show as
# "[DltSource] (unserializable)". Runs here pass all three, and Dagster keeps the keys of a
# mapped spec's metadata, so their values become what they stand for, in words.
DLT_RUNTIME_METADATA = {
    "dagster_dlt/source": "split_source, built by each run for its workspaces or environments",
    "dagster_dlt/pipeline": "a dlt pipeline per run, into the warehouse resource",
    "dagster_dlt/translator": "SplitTranslator",
}
# A dlt job's file is a temp file of the run that loaded it, gone once the run ends.
DLT_JOB_RUNTIME_FIELDS = ("file_path",)


def without_dlt_runtime_objects(spec: AssetSpec) -> AssetSpec:
    """The spec with dagster-dlt's Python objects in its metadata described (see above)."""
    described = {k: v for k, v in DLT_RUNTIME_METADATA.items() if k in spec.metadata}
    return spec.replace_attributes(metadata={**spec.metadata, **described})


def user_facing_load_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A materialization's dlt metadata without the run's temp-file paths."""
    jobs = metadata.get("jobs")
    if not isinstance(jobs, list):
        return metadata
    cleaned = [
        {k: v for k, v in job.items() if k not in DLT_JOB_RUNTIME_FIELDS}
        if isinstance(job, dict)
        else job
        for job in jobs
    ]
    return {**metadata, "jobs": cleaned}


def asset_key(table: str) -> AssetKey:
    return AssetKey([KEY_PREFIX, table])


class SplitTranslator(DagsterDltTranslator):
    """Keys ``split/<table>``, groups by partitioning, descriptions, real deps.

    Descriptions are for users, who do not have the API contract: its section numbers
    (``endpoint.contract``) stay in the code."""

    def __init__(self, destination_type: str, dataset: str) -> None:
        self.destination_type = destination_type
        self.dataset = dataset

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        default = super().get_asset_spec(data)
        table = data.resource.name
        endpoint = ENDPOINTS_BY_TABLE[table]
        group = GROUP_BY_TABLE[table]
        deps = []
        for upstream in upstream_tables(endpoint):
            upstream_group = GROUP_BY_TABLE[upstream]
            # Between differently partitioned assets (workspace -> environment) every upstream
            # partition matters to each downstream one.
            mapping = (
                AllPartitionMapping()
                if upstream_group != group and upstream_group != "split_organisation"
                else None
            )
            deps.append(AssetDep(asset_key(upstream), partition_mapping=mapping))
        key_columns = list(endpoint.primary_key)
        history_note = " Current versions have _dlt_valid_to NULL." if endpoint.history else ""
        return default.replace_attributes(
            key=asset_key(table),
            deps=deps,
            group_name=group,
            description=f"{endpoint.description}{history_note} Natural key:"
            f" ({', '.join(key_columns)}). Source: Split Admin API, GET {endpoint.path}.",
            kinds={"dlt", self.destination_type},
            owners=OWNERS,
            tags={"split/scope": endpoint.scope, "split/pagination": endpoint.pagination},
            metadata={
                **default.metadata,
                "dagster/table_name": f"{self.dataset}.{table}",
                "dagster/column_schema": TableSchema(
                    columns=[
                        *(
                            TableColumn(name=c, type="text", description="natural key")
                            for c in key_columns
                        ),
                        *(
                            [
                                TableColumn(
                                    name="workspace_id",
                                    type="text",
                                    description="the workspace the row belongs to (partition)",
                                )
                            ]
                            if endpoint.scope != "org" and "workspace_id" not in key_columns
                            else []
                        ),
                    ]
                ),
                "split/natural_key": ", ".join(key_columns),
                "split/endpoint": f"GET {endpoint.path}",
                "split/write": "scd2 history" if endpoint.history else "current state",
            },
        )
