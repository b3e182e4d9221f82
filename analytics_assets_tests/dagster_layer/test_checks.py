"""Quality and freshness checks pass after a sync, and fail when they should."""

from __future__ import annotations

import time

import duckdb
from dagster import AssetSelection, DagsterEventType, Definitions, define_asset_job

from analytics_assets.split_source import ENDPOINTS


def _evaluations(project, selection) -> dict[tuple[str, str], bool]:
    defs = Definitions.merge(
        project.defs, Definitions(jobs=[define_asset_job("only_checks", selection=selection)])
    )
    result = defs.resolve_job_def("only_checks").execute_in_process(
        instance=project.instance, raise_on_error=False
    )
    return {
        (e.event_specific_data.asset_key.path[-1], e.event_specific_data.check_name): (
            e.event_specific_data.passed
        )
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }


def test_checks_pass_after_sync_and_catch_a_duplicate(synced_project):
    raw_checks = [
        key
        for key in synced_project.defs.resolve_asset_graph().asset_check_keys
        if key.asset_key.path[0] == "split"  # the dbt tests have their own module
    ]
    evaluations = _evaluations(synced_project, AssetSelection.checks(*raw_checks))
    assert set(evaluations) == {(k.asset_key.path[-1], k.name) for k in raw_checks}
    assert all(evaluations.values()), {k: v for k, v in evaluations.items() if not v}

    with duckdb.connect(synced_project.warehouse.duckdb_path) as con:
        con.execute("INSERT INTO split.feature_flags SELECT * FROM split.feature_flags LIMIT 1")
        con.execute(
            "INSERT INTO split.segments_keys (environment_id, segment_name, key, workspace_id,"
            " _dlt_load_id) SELECT environment_id, 'no such segment', key, workspace_id,"
            " _dlt_load_id FROM split.segments_keys LIMIT 1"
        )
    evaluations = _evaluations(synced_project, AssetSelection.all_asset_checks())
    failed = {k for k, passed in evaluations.items() if not passed}
    raw_tables = {
        key.path[-1]
        for key in synced_project.defs.resolve_asset_graph().get_all_asset_keys()
        if key.path[0] == "split"
    }
    assert {k for k in failed if k[0] in raw_tables} == {
        ("feature_flags", "natural_key_unique"),
        ("segments_keys", "references_environment_segments"),
    }
    # The dbt tests on the models see the duplicated flag too (its owners and tags may be
    # duplicated with it), and nothing else.
    failed_models = {k for k in failed if k[0] not in raw_tables}
    assert (
        "stg_split__flags",
        "unique_key_stg_split__flags_workspace_id__flag_id",
    ) in failed_models
    assert all(table.startswith("stg_split__flag") for table, _ in failed_models), failed_models


def test_freshness_checks_pass_when_fresh_and_fail_when_stale(synced_project, monkeypatch):
    from dagster._core.definitions.asset_checks.asset_check_factories.freshness_checks import (
        last_update,
    )

    freshness = AssetSelection.checks(
        *[c for c in synced_project.defs.asset_checks if "freshness" in str(c.check_keys)]
    )
    fresh = _evaluations(synced_project, freshness)
    assert len(fresh) == len(ENDPOINTS) and all(fresh.values())

    # A day and a half later, without a sync, nothing is fresh (segment keys allow 30 hours).
    later = time.time() + 36 * 3600
    monkeypatch.setattr(last_update, "get_current_timestamp", lambda: later)
    stale = _evaluations(synced_project, freshness)
    assert len(stale) == len(ENDPOINTS) and not any(stale.values())
