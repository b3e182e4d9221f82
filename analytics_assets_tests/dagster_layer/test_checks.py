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
    evaluations = _evaluations(synced_project, AssetSelection.all_asset_checks())
    assert len(evaluations) == 37
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
    assert failed == {
        ("feature_flags", "natural_key_unique"),
        ("segments_keys", "references_environment_segments"),
    }


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
