"""Re-syncs after the organisation changed: current state exact, history kept."""

from __future__ import annotations

from pathlib import Path

import duckdb

from analytics_assets.split_source import SyncScope
from analytics_assets_tests.split_source.helpers import run_source, warehouse_for
from analytics_assets_tests.support import assert_matches_truth


def _definitions(path: Path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "SELECT environment_id, id, killed, _dlt_valid_from, _dlt_valid_to"
            " FROM split.feature_flag_definitions"
        ).fetchall()


def test_resync_after_changes_gives_new_truth_and_keeps_history(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(size="tiny")
    path = tmp_path / "w.duckdb"
    run_source(sandbox.base_url, path)
    first = sandbox.ground_truth()
    first_definitions = {
        (r["environment_id"], r["id"]): r
        for r in first["tables"]["feature_flag_definitions"]["rows"]
    }

    sandbox.control(generation=1)
    second = sandbox.ground_truth()
    run_source(sandbox.base_url, path)

    assert_matches_truth(warehouse_for(path), second)
    # The generation removed every flag of one workspace: that scope is now empty, not stale.
    emptied = {r["id"] for r in second["tables"]["workspaces"]["rows"]} - {
        r["workspace_id"] for r in second["tables"]["feature_flags"]["rows"]
    }
    assert emptied
    second_definitions = {
        (r["environment_id"], r["id"]): r
        for r in second["tables"]["feature_flag_definitions"]["rows"]
    }
    rows = _definitions(path)
    retired = {(env, flag) for env, flag, _, _, valid_to in rows if valid_to is not None}
    current = {(env, flag) for env, flag, _, _, valid_to in rows if valid_to is None}
    assert current == set(second_definitions)
    deleted = set(first_definitions) - set(second_definitions)
    edited = {
        k
        for k in set(first_definitions) & set(second_definitions)
        if first_definitions[k] != second_definitions[k]
        and {**first_definitions[k], "lastTrafficReceivedAt": None}
        != {**second_definitions[k], "lastTrafficReceivedAt": None}
    }
    assert deleted and edited
    # Every deleted or edited definition's old version is kept, closed by _dlt_valid_to.
    assert deleted | edited <= retired
    for env, flag, killed, valid_from, valid_to in rows:
        if valid_to is not None and (env, flag) in first_definitions:
            assert killed == first_definitions[(env, flag)]["killed"]
            assert valid_from < valid_to


def test_workspace_scope_touches_only_its_workspace(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(size="tiny")
    path = tmp_path / "w.duckdb"
    run_source(sandbox.base_url, path)
    truth = sandbox.ground_truth()
    workspace = truth["tables"]["feature_flags"]["rows"][0]["workspace_id"]
    with duckdb.connect(str(path), read_only=True) as con:
        before = con.execute(
            "SELECT workspace_id, _dlt_load_id FROM split.feature_flags WHERE workspace_id <> ?",
            [workspace],
        ).fetchall()

    sandbox.reset_stats()
    stats = run_source(sandbox.base_url, path, scope=SyncScope(workspace_ids=(workspace,)))

    with duckdb.connect(str(path), read_only=True) as con:
        after = con.execute(
            "SELECT workspace_id, _dlt_load_id FROM split.feature_flags WHERE workspace_id <> ?",
            [workspace],
        ).fetchall()
    assert sorted(before) == sorted(after)  # other workspaces' rows untouched
    assert stats.by_endpoint.get("workspaces", 0) == 0  # the scope is known: no listing call
    # Every request of the run concerned that workspace or its environments.
    envs = {
        r["id"] for r in truth["tables"]["environments"]["rows"] if r["workspace_id"] == workspace
    }
    assert stats.by_endpoint["feature_flags"] == 2  # 50 or 51 flags at 50 a page
    assert stats.by_endpoint["feature_flag_definitions"] >= len(envs)
    assert_matches_truth(warehouse_for(path), truth)
