"""The dbt models built through Dagster (sandbox -> sync -> models) on DuckDB, held against the
sandbox's ground truth computed here, independently, from the truth rows."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from analytics_assets.dagster_layer.sync import run_sync
from analytics_assets.definitions import build_definitions
from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets_tests.dagster_layer.conftest import project_environment

# The sandbox's generation 0 "now" (every lastTrafficReceivedAt is at most this).
AS_OF = datetime(2024, 12, 31, tzinfo=timezone.utc)
STALE_AFTER = timedelta(days=30)


@pytest.fixture(scope="module")
def modelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxProcess, Path]]:
    path = tmp_path_factory.mktemp("models")
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith(("SPLIT_", "ANALYTICS_")):
                del os.environ[name]
        with SandboxProcess(size="tiny") as sandbox:
            os.environ.update(project_environment(path, sandbox))
            os.environ["ANALYTICS_AS_OF"] = AS_OF.isoformat()
            os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
            run_sync(build_definitions(), progress=lambda _: None)
            yield sandbox, path / "warehouse.duckdb"
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _query(database: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def _truth_stale(definition: dict) -> bool:
    default = definition.get("defaultRule") or []
    if len(default) != 1 or default[0]["size"] != 100:
        return False
    treatment = default[0]["treatment"]
    for rule in definition.get("rules") or []:
        buckets = rule.get("buckets") or []
        if buckets and not (
            len(buckets) == 1 and buckets[0]["size"] == 100 and buckets[0]["treatment"] == treatment
        ):
            return False
    changed = _ms(definition["lastUpdateTime"])
    traffic = _ms(definition.get("lastTrafficReceivedAt"))
    return changed < AS_OF - STALE_AFTER and (traffic is None or traffic < AS_OF - STALE_AFTER)


def test_flag_health_lists_exactly_the_stale_flags(modelled):
    sandbox, database = modelled
    definitions = list(sandbox.ground_truth_rows("feature_flag_definitions"))
    expected = {(d["environment_id"], d["id"]) for d in definitions if _truth_stale(d)}
    assert expected, "the sandbox data has no stale flag to find"
    actual = set(
        _query(
            database,
            "SELECT environment_id, flag_id FROM split_analytics.flag_health WHERE is_stale",
        )
    )
    assert actual == expected
    rows = _query(database, "SELECT count(*) FROM split_analytics.flag_health")[0][0]
    assert rows == len(definitions)


def test_segment_usage_matches_truth(modelled):
    sandbox, database = modelled
    expected = set()
    for d in list(sandbox.ground_truth_rows("feature_flag_definitions")):
        for rule in d.get("rules") or []:
            for matcher in rule["condition"]["matchers"]:
                if matcher["type"] == "IN_SEGMENT":
                    expected.add((d["environment_id"], d["id"], matcher["string"], "rule"))
        for treatment in d.get("treatments") or []:
            for segment in treatment.get("segments") or []:
                expected.add((d["environment_id"], d["id"], segment, "treatment"))
    assert {u for u in expected if u[3] == "treatment"} and {u for u in expected if u[3] == "rule"}
    actual = set(
        _query(
            database,
            "SELECT environment_id, flag_id, segment_name, used_in"
            " FROM split_analytics.segment_usage",
        )
    )
    assert actual == expected


def test_rule_and_matcher_counts_match_truth(modelled):
    sandbox, database = modelled
    definitions = list(sandbox.ground_truth_rows("feature_flag_definitions"))
    rules = Counter()
    matchers = Counter()
    for d in definitions:
        for rule in d.get("rules") or []:
            rules[(d["environment_id"], d["id"])] += 1
            for matcher in rule["condition"]["matchers"]:
                matchers[(d["environment_id"], d["id"], matcher["type"])] += 1
    actual_rules = Counter(
        {
            (e, f): n
            for e, f, n in _query(
                database,
                "SELECT environment_id, flag_id, count(*)"
                " FROM split_analytics.stg_split__definition_rules GROUP BY 1, 2",
            )
        }
    )
    actual_matchers = Counter(
        {
            (e, f, t): n
            for e, f, t, n in _query(
                database,
                "SELECT environment_id, flag_id, matcher_type, count(*)"
                " FROM split_analytics.stg_split__rule_matchers GROUP BY 1, 2, 3",
            )
        }
    )
    assert actual_rules == rules
    assert actual_matchers == matchers
    health_rule_counts = {
        (e, f): n
        for e, f, n in _query(
            database,
            "SELECT environment_id, flag_id, targeting_rule_count FROM split_analytics.flag_health",
        )
        if n
    }
    assert health_rule_counts == dict(rules)


def test_rollout_summary_and_lead_times_match_truth(modelled):
    sandbox, database = modelled
    flags = list(sandbox.ground_truth_rows("feature_flags"))
    stale = {
        (d["workspace_id"], d["id"])
        for d in list(sandbox.ground_truth_rows("feature_flag_definitions"))
        if _truth_stale(d)
    }
    expected = Counter((f["workspace_id"], (f.get("rolloutStatus") or {}).get("id")) for f in flags)
    stale_any = Counter(
        (f["workspace_id"], (f.get("rolloutStatus") or {}).get("id"))
        for f in flags
        if (f["workspace_id"], f["id"]) in stale
    )
    rows = _query(
        database,
        "SELECT workspace_id, rollout_status_id, flag_count, stale_in_any_environment_flag_count"
        " FROM split_analytics.flag_rollout_summary",
    )
    assert {(w, s): n for w, s, n, _ in rows} == dict(expected)
    assert {(w, s): n for w, s, _, n in rows if n} == dict(stale_any)

    requests = list(sandbox.ground_truth_rows("change_requests"))
    submitted = {
        r["id"]: _ms(min(c["timestamp"] for c in r["comments"] if c["role"] == "SUBMITTER"))
        for r in requests
    }
    actual = dict(
        _query(
            database,
            "SELECT change_request_id, requested_at FROM split_analytics.change_request_lead_times",
        )
    )
    assert actual == submitted
