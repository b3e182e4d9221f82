"""Declarative automation: each tick refreshes the organisation, then the workspaces, then the
environments (each only after its upstream tables have loaded), and the models after them.

The conditions are evaluated on the synced instance's real materializations, with the
evaluation clock set just before and just after the next hourly tick.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster import AssetKey, evaluate_automation_conditions

from analytics_assets.dagster_layer.partitions import environment_partitions, workspace_partitions
from analytics_assets.dagster_layer.policies import CADENCE_BY_TABLE
from analytics_assets.dagster_layer.runs import execute_job_run
from analytics_assets.dagster_layer.sensors import PARTITION_RANGE_END, PARTITION_RANGE_START
from analytics_assets.dagster_layer.translator import GROUP_BY_TABLE, asset_key

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _requested(result) -> dict[AssetKey, set[str] | None]:
    requested = {}
    for key in result._requested_partitions_by_asset_key:  # noqa: SLF001 (the tester's own view)
        partitions = result.get_requested_partitions(key)
        requested[key] = partitions if partitions != {None} else None
    return requested


def _tables(group: str, hourly_only: bool = True) -> set[AssetKey]:
    return {
        asset_key(table)
        for table, g in GROUP_BY_TABLE.items()
        if g == group and (not hourly_only or CADENCE_BY_TABLE[table].cron == "0 * * * *")
    }


def _models_downstream_of(defs, keys: set[AssetKey]) -> set[AssetKey]:
    graph = defs.resolve_asset_graph()
    models = {k for k in graph.get_all_asset_keys() if k.path[0] == "split_analytics"}

    def reads(model: AssetKey) -> bool:
        parents = graph.get(model).parent_keys
        return bool(parents & keys) or any(reads(p) for p in parents if p in models)

    return {m for m in models if reads(m)}


def _split_tables(requested: dict) -> dict:
    return {k: v for k, v in requested.items() if k.path[0] == "split"}


def _run_all_partitions(project, job_name: str, partitions_def) -> None:
    keys = list(project.instance.get_dynamic_partitions(partitions_def.name))
    result = execute_job_run(
        project.defs,
        project.instance,
        job_name,
        tags={PARTITION_RANGE_START: keys[0], PARTITION_RANGE_END: keys[-1]},
        run_config=QUIET,
    )
    assert result.success


def test_automation_refreshes_upstream_tables_first(synced_project):
    project = synced_project
    defs, instance = project.defs, project.instance
    tick = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    workspaces = set(instance.get_dynamic_partitions(workspace_partitions.name))
    environments = set(instance.get_dynamic_partitions(environment_partitions.name))

    # Before the tick: nothing to do (the sync just loaded everything).
    before = evaluate_automation_conditions(
        defs, instance, evaluation_time=tick - timedelta(minutes=1)
    )
    assert before.total_requested == 0

    # The tick: only the organisation tables, which have no upstream (and, in the same run
    # after them, the models that read them).
    after_tick = evaluate_automation_conditions(
        defs, instance, evaluation_time=tick + timedelta(minutes=1), cursor=before.cursor
    )
    requested = _requested(after_tick)
    organisation = _tables("split_organisation")
    assert _split_tables(requested) == {key: None for key in organisation}
    assert set(requested) - organisation == _models_downstream_of(defs, organisation)

    # Once they loaded: every workspace partition of the workspace tables, no environment
    # table yet (their workspace tables have not loaded since the tick).
    assert execute_job_run(
        defs, instance, "split_organisation_refresh", tags={}, run_config=QUIET
    ).success
    organisation_loaded = evaluate_automation_conditions(
        defs, instance, evaluation_time=tick + timedelta(minutes=2), cursor=after_tick.cursor
    )
    requested = _requested(organisation_loaded)
    assert _split_tables(requested) == {key: workspaces for key in _tables("split_workspace")}

    # Once the workspaces loaded: the environment tables, but the daily segment keys wait
    # for their own tick.
    _run_all_partitions(project, "split_workspace_refresh", workspace_partitions)
    workspaces_loaded = evaluate_automation_conditions(
        defs,
        instance,
        evaluation_time=tick + timedelta(minutes=3),
        cursor=organisation_loaded.cursor,
    )
    requested = _requested(workspaces_loaded)
    assert _split_tables(requested) == {key: environments for key in _tables("split_environment")}
    assert asset_key("segments_keys") not in requested
    # and the models that read workspace tables are rebuilt after their load
    assert _models_downstream_of(defs, _tables("split_workspace", hourly_only=False)) <= set(
        requested
    )
