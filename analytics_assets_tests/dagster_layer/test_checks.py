"""Quality and freshness checks pass after a sync, and fail when they should."""

from __future__ import annotations

import time
from typing import Any

import duckdb
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DagsterEventType,
    Definitions,
    define_asset_job,
)

from analytics_assets.split_source import ENDPOINTS


def _results(project, selection) -> dict[tuple[str, str], Any]:
    defs = Definitions.merge(
        project.defs, Definitions(jobs=[define_asset_job("only_checks", selection=selection)])
    )
    result = defs.resolve_job_def("only_checks").execute_in_process(
        instance=project.instance, raise_on_error=False
    )
    return {
        (e.event_specific_data.asset_key.path[-1], e.event_specific_data.check_name): (
            e.event_specific_data
        )
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }


def _evaluations(project, selection) -> dict[tuple[str, str], bool]:
    return {key: result.passed for key, result in _results(project, selection).items()}


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


def test_reference_checks_sample_orphans_and_wait_for_pending_partitions(synced_project):
    """An orphan loaded after its target fails with a sample; one loaded before the target's
    partition was refreshed (an environment run ahead of the workspace run) is pending."""
    with duckdb.connect(synced_project.warehouse.duckdb_path) as con:
        newest = con.execute("SELECT max(_dlt_load_id) FROM split.feature_flags").fetchone()[0]
        later = f"{float(newest) + 60:.6f}"
        # A definition of a flag the workspace run has not listed yet: loaded after it.
        con.execute(
            "INSERT INTO split.feature_flag_definitions SELECT * REPLACE ('new-flag' AS id,"
            " ? AS _dlt_load_id, md5(random()::VARCHAR) AS _dlt_id)"
            " FROM split.feature_flag_definitions WHERE _dlt_valid_to IS NULL LIMIT 1",
            [later],
        )
        pending_workspace = con.execute(
            "SELECT workspace_id FROM split.feature_flag_definitions WHERE id = 'new-flag'"
        ).fetchone()[0]
    checks = AssetSelection.checks(
        AssetCheckKey(AssetKey(["split", "feature_flag_definitions"]), "references_feature_flags")
    )
    pending = _results(synced_project, checks)[
        ("feature_flag_definitions", "references_feature_flags")
    ]
    assert pending.passed
    assert pending.metadata["pending_rows"].value == 1
    assert pending_workspace in pending.description and "wait" in pending.description

    with duckdb.connect(synced_project.warehouse.duckdb_path) as con:
        # The same orphan, but loaded before its workspace's flags were: a real orphan.
        con.execute(
            "UPDATE split.feature_flag_definitions SET _dlt_load_id = '1.0' WHERE id = 'new-flag'"
        )
    orphan = _results(synced_project, checks)[
        ("feature_flag_definitions", "references_feature_flags")
    ]
    assert not orphan.passed and orphan.metadata["offending_rows"].value == 1
    assert orphan.metadata["sample"].value == [
        {"workspace_id": pending_workspace, "id": "new-flag"}
    ]
    assert "new-flag" in orphan.description


def test_freshness_checks_pass_when_fresh_and_fail_when_stale(synced_project, monkeypatch):
    from analytics_assets.dagster_layer import checks

    freshness = AssetSelection.checks(
        *[c for c in synced_project.defs.asset_checks if "freshness" in str(c.check_keys)]
    )
    fresh = _evaluations(synced_project, freshness)
    assert len(fresh) == len(ENDPOINTS) and all(fresh.values())

    # A day and a half later, without a sync, nothing is fresh (segment keys allow 30 hours).
    later = time.time() + 36 * 3600
    monkeypatch.setattr(checks, "current_time", lambda: later)
    stale = _results(synced_project, freshness)
    assert len(stale) == len(ENDPOINTS) and not any(r.passed for r in stale.values())
    description = stale[("workspaces", "freshness_check")].description
    assert description == "Last updated 1 day ago; allowed 3 hours.", description
