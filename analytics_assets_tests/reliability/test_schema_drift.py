"""Schema drift: a new field becomes a new column; a field changing type does not fail the
sync but lands in dlt's variant column; both show in the asset's column schema in Dagster.

The sandbox's ``drift`` control changes what it serves for feature flags (and its ground
truth with it): ``new_field`` adds ``releaseChannel``; ``type_change`` serves
``creationTime`` as an ISO-8601 string instead of epoch milliseconds.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

import duckdb
import pytest
import requests
from dagster import AssetKey

from analytics_assets.dagster_layer.sync import SyncOptions
from analytics_assets.sandbox.cli import add_sandbox_arguments, config_from_args
from analytics_assets.sandbox.config import ConfigError, SandboxConfig

FLAGS = AssetKey(["split", "feature_flags"])


def _flags(sandbox, workspace_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    answer = requests.get(
        f"{sandbox.base_url}/v2/splits/ws/{workspace_id}",
        params={"limit": 50},
        headers={"x-api-key": "drift-test"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["objects"]


def test_sandbox_drift_option_and_control(make_project):
    sandbox = make_project().sandbox
    truth = sandbox.ground_truth(tables=["workspaces"])
    workspace = truth["tables"]["workspaces"]["rows"][0]["id"]
    plain = _flags(sandbox, workspace)
    assert all("releaseChannel" not in f and isinstance(f["creationTime"], int) for f in plain)

    assert sandbox.control(drift="new_field")["drift"] == ["new_field"]
    added = _flags(sandbox, workspace)
    assert {f["releaseChannel"] for f in added} <= {"stable", "beta", "canary"}
    assert [f["creationTime"] for f in added] == [f["creationTime"] for f in plain]

    sandbox.control(drift=["new_field", "type_change"])
    changed = _flags(sandbox, workspace)
    for before, after in zip(plain, changed, strict=True):
        instant = datetime.fromisoformat(after["creationTime"].replace("Z", "+00:00"))
        assert instant == datetime.fromtimestamp(before["creationTime"] / 1000, tz=timezone.utc)
    # The ground truth follows what is served; other tables keep their types.
    rows = sandbox.ground_truth(tables=["feature_flags", "feature_flag_definitions"])["tables"]
    assert all(isinstance(r["creationTime"], str) for r in rows["feature_flags"]["rows"])
    definitions = rows["feature_flag_definitions"]["rows"]
    assert all(isinstance(r["creationTime"], int) for r in definitions)

    with pytest.raises(ValueError, match="drift must be a subset"):
        sandbox.control(drift="bogus")
    assert sandbox.control(drift="none")["drift"] == []
    assert _flags(sandbox, workspace) == plain

    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    config = config_from_args(parser.parse_args(["--drift", "type_change,new_field"]))
    assert config.drift == ("type_change", "new_field")
    with pytest.raises(ConfigError):
        SandboxConfig(drift=("renamed_field",))


def _columns(project) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with duckdb.connect(str(project.duckdb_path), read_only=True) as con:
        return dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'split' AND table_name = 'feature_flags'"
            ).fetchall()
        )


def _column_schema(project) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The columns the latest split/feature_flags materialization shows in the UI."""
    with project.instance() as instance:
        event = instance.get_latest_materialization_event(FLAGS)
        schema = event.asset_materialization.metadata["dagster/column_schema"].value
        return {c.name: c.type for c in schema.columns}


@pytest.mark.slow
def test_new_field_and_type_change_through_dagster(make_project, figures):
    project = make_project()
    sandbox = project.sandbox
    only_flags = SyncOptions(tables=("feature_flags",), build_models=False)  # loads only
    project.sync_in_process(only_flags)
    assert "release_channel" not in _columns(project)
    assert _column_schema(project)["creation_time"] == "bigint"

    # A field appears: a new column, filled exactly.
    sandbox.control(drift="new_field")
    truth = sandbox.ground_truth(tables=["feature_flags"])
    project.sync_in_process(only_flags)
    assert project.diffs(truth, ["feature_flags"]) == []
    assert _columns(project)["release_channel"] == "VARCHAR"
    assert _column_schema(project)["release_channel"] == "text"

    # A field changes type: the sync succeeds; dlt keeps the column and adds a variant.
    sandbox.control(drift="new_field,type_change")
    truth = sandbox.ground_truth(tables=["feature_flags"])
    report = project.sync_in_process(only_flags)
    columns = _columns(project)
    variants = [c for c in columns if c.startswith("creation_time__v_")]
    assert variants == ["creation_time__v_text"], columns
    assert columns["creation_time"] == "BIGINT"  # the old column is kept, not retyped
    shown = _column_schema(project)
    assert "creation_time__v_text" in shown and shown["creation_time"] == "bigint"

    # Every row now carries the instant in the variant column; all else is exact.
    rows = {r["id"]: r for r in truth["tables"]["feature_flags"]["rows"]}
    with duckdb.connect(str(project.duckdb_path), read_only=True) as con:
        stored = con.execute(
            "SELECT id, creation_time, creation_time__v_text FROM split.feature_flags"
        ).fetchall()
    assert len(stored) == len(rows)
    for flag_id, old, variant in stored:
        assert old is None
        expected = datetime.fromisoformat(rows[flag_id]["creationTime"].replace("Z", "+00:00"))
        assert variant == expected
    (diff,) = project.diffs(truth, ["feature_flags"]) or [None]
    if diff is not None:  # only creationTime (now in the variant column) may differ
        assert not (diff.missing or diff.unexpected or diff.duplicates)
        assert all("'creationTime'" in m for m in diff.value_mismatches), diff
    figures.add(
        "drift",
        "new field, then a field changing type (feature_flags)",
        "Dagster in-process (run_sync)",
        "sync succeeds; release_channel column; creation_time__v_text variant; both in"
        " dagster/column_schema",
        variant_type=shown["creation_time__v_text"],
        requests=report.requests,
        seconds=round(report.seconds, 1),
    )
