"""The code location loads, and its graph is what the snapshot says (keys, deps, partitions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import Definitions

from analytics_assets.definitions import build_definitions
from analytics_assets.split_source import TABLES

SNAPSHOT = Path(__file__).with_name("asset_graph_snapshot.json")


def graph_snapshot(defs: Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    snapshot = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        snapshot[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "partitions": getattr(partitions, "name", None) if partitions else None,
            "checks": sorted(c.name for c in graph.get_check_keys_for_assets([key])),
        }
    return snapshot


def test_definitions_validate():
    defs = build_definitions()
    Definitions.validate_loadable(defs)


def test_asset_graph_matches_snapshot():
    """Any change to keys, deps, groups, partitions or checks shows up here in review.

    To accept an intended change: ANALYTICS_UPDATE_SNAPSHOT=1 pytest -k snapshot
    """
    import os

    actual = graph_snapshot(build_definitions())
    if os.environ.get("ANALYTICS_UPDATE_SNAPSHOT") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert actual == json.loads(SNAPSHOT.read_text())


def test_one_asset_per_table_with_real_deps_only():
    graph = build_definitions().resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {k for k in keys if k.startswith("split/")} == {f"split/{t}" for t in TABLES}
    for key in graph.get_all_asset_keys():
        # no phantom `<source>_<resource>` upstream keys: every dep is a real asset (the dbt
        # sources map onto the raw assets, so the models' deps are real too)
        assert {p.to_user_string() for p in graph.get(key).parent_keys} <= keys


def test_every_asset_is_described_owned_kinded_and_fresh():
    defs = build_definitions()
    for spec in defs.resolve_all_asset_specs():
        if spec.key.path[0] != "split":
            continue  # the dbt models: see the models' own tests
        assert spec.description and "Natural key" in spec.description, spec.key
        assert spec.owners == ["team:data-platform"]
        assert {"dlt", "duckdb"} <= set(spec.kinds)
        assert spec.freshness_policy is not None, spec.key
        assert spec.metadata["dagster/table_name"].startswith("split.")
        assert spec.metadata["dagster/column_schema"].columns


def test_partition_sensors_run_by_default_and_clocks_do_not():
    defs = build_definitions()
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    sensors = {s.name: s for s in defs.sensors}
    partition_sensors = {"split_workspace_partitions", "split_environment_partitions"}
    assert set(sensors) == partition_sensors | {"split_automation"}
    assert all(sensors[s].default_status == DefaultSensorStatus.RUNNING for s in partition_sensors)
    # automation and schedules call the API on a clock: the user turns them on
    assert sensors["split_automation"].default_status == DefaultSensorStatus.STOPPED
    schedules = list(defs.schedules)
    assert len(schedules) == 4
    assert all(s.default_status == DefaultScheduleStatus.STOPPED for s in schedules)
    # Each schedule starts its cadence's delay after the tick automation uses.
    from analytics_assets.dagster_layer.policies import CADENCES

    assert sorted(s.cron_schedule for s in schedules) == sorted(c.schedule_cron for c in CADENCES)
    assert sorted(c.schedule_cron for c in CADENCES) == [
        "0 * * * *",
        "10 * * * *",
        "20 * * * *",
        "30 3 * * *",
    ]


def test_a_schedule_delay_past_the_hour_is_refused_with_a_sentence():
    from datetime import timedelta

    from analytics_assets.dagster_layer.policies import Cadence

    with pytest.raises(ValueError, match="stays below 60 after the 20-minute schedule delay"):
        Cadence("late", "45 * * * *", timedelta(hours=3), timedelta(hours=2), (), 20)


def test_the_location_name_the_cli_records_is_the_one_dagster_serves():
    import tomllib
    import yaml

    from analytics_assets.dagster_layer.runs import LOCATION_NAME

    root = Path(__file__).resolve().parents[2]
    workspace = yaml.safe_load((root / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["location_name"] == LOCATION_NAME
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["tool"]["dagster"]["code_location_name"] == LOCATION_NAME
    # Helm names the location after its deployment; the deployment says so to the CLI.
    values = yaml.safe_load((root / "deploy/helm/values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["ANALYTICS_CODE_LOCATION"] == deployment["name"]


def test_importing_the_code_location_does_no_work(tmp_path: Path):
    """Importing the modules reads no setting and writes nothing; loading the location does."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPLIT_", "ANALYTICS_"))}
    # A setting that fails when read: the import must not read it.
    env.update(ANALYTICS_DESTINATION="nosuch", TMPDIR=str(tmp_path), DAGSTER_HOME=str(tmp_path))
    probe = (
        "import analytics_assets.definitions as location\n"
        "from analytics_assets.split_source import SplitConfigurationError\n"
        "try:\n"
        "    location.defs()\n"
        "except SplitConfigurationError as error:\n"
        "    print('LOADING FAILED:', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "LOADING FAILED: ANALYTICS_DESTINATION='nosuch'" in result.stdout, result.stdout
    assert list(tmp_path.iterdir()) == [], "the import or the failed load left files behind"
