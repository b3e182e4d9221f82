"""The dbt models built through Dagster (sandbox -> sync -> models) on DuckDB, held against the
sandbox's ground truth computed here, independently, from the truth rows."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from analytics_assets.dagster_layer.instance import get_instance
from analytics_assets.dagster_layer.models import (
    BUILD_FOLDERS_KEPT,
    BUILD_PARSE_STATE,
    MODELS_JOB,
    PROJECT_DIR,
    _remove_old_build_folders,
)
from analytics_assets.dagster_layer.sync import run_sync
from analytics_assets.definitions import build_definitions
from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets_tests.dagster_layer.conftest import project_environment
from analytics_assets_tests.split_source.helpers import run_source

# The sandbox's generation 0 "now" (every lastTrafficReceivedAt is at most this).
AS_OF = datetime(2024, 12, 31, tzinfo=timezone.utc)
STALE_AFTER = timedelta(days=30)


# Two served form sets (contract §3.4-§3.6): the sandbox's defaults, and every other choice
# (legacy attribute array in lower case, offset/objects envelopes, `trafficType` objects, ISO
# timestamps, the docs dialect of rule-based segment matchers, URN tags).
FORM_SETS = {
    "default_forms": {},
    "other_forms": {
        "attributes_envelope": "array",
        "attribute_data_type": "lower",
        "large_segments_envelope": "offset",
        "environment_large_segments_envelope": "offset",
        "large_segment_tags": "urns",
        "rule_based_segments_envelope": "offset",
        "rule_based_segment_definitions_envelope": "objects",
        "rule_based_segment_traffic_type": "object",
        "rule_based_segment_timestamps": "iso",
        "rule_based_segment_matchers": "docs",
    },
}


@pytest.fixture(scope="module", params=sorted(FORM_SETS))
def modelled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SandboxProcess, Path]]:
    path = tmp_path_factory.mktemp(f"models_{request.param}")
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith(("SPLIT_", "ANALYTICS_")):
                del os.environ[name]
        with SandboxProcess(size="tiny", forms=FORM_SETS[request.param]) as sandbox:
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


def _parse_kind(dbt_log: Path) -> str:
    """How a dbt invocation parsed the project, from its JSON log: dbt's event I040 says it
    parsed partially, I024 that it had to parse in full."""
    codes = {
        json.loads(line)["info"]["code"]
        for line in dbt_log.read_text().splitlines()
        if line.startswith("{")
    }
    return "partial" if "I040" in codes else "full" if "I024" in codes else "unknown"


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


def _matcher_type(matcher: dict) -> str:
    """A matcher's type in either dialect (contract §3.6: `type`, or the docs' `operator`)."""
    return matcher.get("type") or matcher["operator"]


def _matcher_string(matcher: dict) -> str:
    return matcher["string"] if "string" in matcher else matcher["value"]


def expected_segment_usage(sandbox: SandboxProcess) -> set[tuple]:
    """(environment, used_by_type, used_by, segment_type, segment_name, used_in) from the truth."""
    expected = set()
    for d in list(sandbox.ground_truth_rows("feature_flag_definitions")):
        env, flag = d["environment_id"], d["id"]
        for rule in d.get("rules") or []:
            for matcher in rule["condition"]["matchers"]:
                if matcher["type"] == "IN_SEGMENT":
                    expected.add((env, "flag", flag, "segment", matcher["string"], "rule"))
                if matcher["type"] == "IN_RULE_BASED_SEGMENT":
                    expected.add(
                        (
                            env,
                            "flag",
                            flag,
                            "rule_based_segment",
                            matcher["string"],
                            "rule_based_segment",
                        )
                    )
        for treatment in d.get("treatments") or []:
            for segment in treatment.get("segments") or []:
                expected.add((env, "flag", flag, "segment", segment, "treatment"))
    for d in list(sandbox.ground_truth_rows("rule_based_segment_definitions")):
        env, name = d["environment_id"], d["name"]
        for rule in d.get("rules") or []:
            for matcher in rule["condition"]["matchers"]:
                kind = {"IN_SEGMENT": "segment", "IN_RULE_BASED_SEGMENT": "rule_based_segment"}
                if _matcher_type(matcher) in kind:
                    expected.add(
                        (
                            env,
                            "rule_based_segment",
                            name,
                            kind[_matcher_type(matcher)],
                            _matcher_string(matcher),
                            "rule_based_segment_rule",
                        )
                    )
        for excluded in d.get("excludedSegments") or []:
            kind = "rule_based_segment" if excluded["type"] == "rule_based_segment" else "segment"
            expected.add(
                (
                    env,
                    "rule_based_segment",
                    name,
                    kind,
                    excluded["name"],
                    "rule_based_segment_exclusion",
                )
            )
    return expected


def test_segment_usage_matches_truth(modelled):
    sandbox, database = modelled
    expected = expected_segment_usage(sandbox)
    # Every kind of use is present, so each one is held against the truth.
    assert {u[5] for u in expected} == {
        "rule",
        "treatment",
        "rule_based_segment",
        "rule_based_segment_rule",
        "rule_based_segment_exclusion",
    }
    actual = set(
        _query(
            database,
            "SELECT environment_id, used_by_type, used_by, segment_type, segment_name, used_in"
            " FROM split_analytics.segment_usage",
        )
    )
    assert actual == expected
    flag_rows = _query(
        database,
        "SELECT count(*) FROM split_analytics.segment_usage"
        " WHERE (used_by_type = 'flag') <> (flag_id IS NOT NULL)",
    )
    assert flag_rows == [(0,)]


def test_new_tables_staged_one_row_per_thing_in_one_form(modelled):
    """The five new tables' staging models hold the truth's keys with the forms normalised:
    traffic type from `trafficTypeId` or `trafficType.id`, times from epoch `creationTime` or
    ISO `createdAt`, `dataType` upper case, suggested values, excluded keys as rows."""
    sandbox, database = modelled

    def iso_or_ms(record: dict) -> datetime:
        if "creationTime" in record:
            return _ms(record["creationTime"])
        return datetime.fromisoformat(record["createdAt"].replace("Z", "+00:00"))

    def traffic_type(record: dict) -> str:
        return record.get("trafficTypeId") or record["trafficType"]["id"]

    attributes = list(sandbox.ground_truth_rows("attributes"))
    assert {
        (
            a["workspace_id"],
            a["traffic_type_id"],
            a["id"],
            a["dataType"].upper() if a.get("dataType") else None,
        )
        for a in attributes
    } == set(
        _query(
            database,
            "SELECT workspace_id, traffic_type_id, attribute_id, data_type"
            " FROM split_analytics.stg_split__attributes",
        )
    )
    values = Counter(
        (a["traffic_type_id"], a["id"], v) for a in attributes for v in a["suggestedValues"]
    )
    assert values and values == Counter(
        _query(
            database,
            "SELECT traffic_type_id, attribute_id, suggested_value"
            " FROM split_analytics.stg_split__attribute_suggested_values",
        )
    )
    segments = list(sandbox.ground_truth_rows("rule_based_segments"))
    assert {
        (s["workspace_id"], s["id"], s["name"], traffic_type(s), iso_or_ms(s)) for s in segments
    } == set(
        _query(
            database,
            "SELECT workspace_id, rule_based_segment_id, rule_based_segment_name,"
            " traffic_type_id, created_at FROM split_analytics.stg_split__rule_based_segments",
        )
    )
    definitions = list(sandbox.ground_truth_rows("rule_based_segment_definitions"))
    segment_ids = {(s["workspace_id"], s["name"]): s["id"] for s in segments}
    assert {
        (
            d["environment_id"],
            d["name"],
            segment_ids[(d["workspace_id"], d["name"])],
            traffic_type(d),
            iso_or_ms(d),
            len(d["rules"]),
        )
        for d in definitions
    } == set(
        _query(
            database,
            "SELECT environment_id, rule_based_segment_name, rule_based_segment_id,"
            " traffic_type_id, created_at, rule_count"
            " FROM split_analytics.stg_split__rule_based_segment_definitions",
        )
    )
    excluded_keys = Counter(
        (d["environment_id"], d["name"], k) for d in definitions for k in d["excludedKeys"]
    )
    assert excluded_keys and excluded_keys == Counter(
        _query(
            database,
            "SELECT environment_id, rule_based_segment_name, excluded_key"
            " FROM split_analytics.stg_split__rule_based_segment_excluded_keys",
        )
    )
    matchers = Counter(
        (d["environment_id"], d["name"], _matcher_type(m))
        for d in definitions
        for r in d["rules"]
        for m in r["condition"]["matchers"]
    )
    assert matchers == Counter(
        _query(
            database,
            "SELECT environment_id, rule_based_segment_name, matcher_type"
            " FROM split_analytics.stg_split__rule_based_segment_matchers",
        )
    )
    for table, scope in (
        ("large_segments", "workspace_id"),
        ("environment_large_segments", "environment_id"),
    ):
        truth = {
            (r[scope], r["name"], _ms(r["creationTime"])) for r in sandbox.ground_truth_rows(table)
        }
        assert truth and truth == set(
            _query(
                database,
                f"SELECT {scope}, large_segment_name, created_at"
                f" FROM split_analytics.stg_split__{table}",
            )
        )


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


def _files_with_times(folder: Path) -> dict[Path, float]:
    return {path: path.stat().st_mtime for path in folder.rglob("*")}


@pytest.fixture
def new_organisation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxProcess]:
    """A sandbox organisation just signed up: one workspace and environment, one user, no
    flag, segment, group or change request (most tables empty, some child tables absent)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SPLIT_", "ANALYTICS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    with SandboxProcess(size="new") as sandbox:
        for name, value in project_environment(tmp_path, sandbox).items():
            monkeypatch.setenv(name, value)
        yield sandbox


def test_models_build_on_a_new_organisation_with_empty_tables(new_organisation, tmp_path):
    """Raw tables loaded by the source (plain dlt; the next test syncs through Dagster),
    then the models job through Dagster: every model builds and every dbt test passes."""
    database = tmp_path / "warehouse.duckdb"
    run_source(new_organisation.base_url, database)
    assert _query(database, "SELECT count(*) FROM split.feature_flags") == [(0,)]
    assert _query(database, "SELECT count(*) FROM split.change_requests") == [(0,)]
    absent = _query(
        database,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'split'"
        " AND table_name IN ('segments_keys', 'feature_flags__owners',"
        " 'attributes__suggested_values')",
    )
    assert absent == [(0,)], "the case under test: tables dlt has not created"

    package_files = _files_with_times(PROJECT_DIR)
    result = (
        build_definitions()
        .resolve_job_def(MODELS_JOB)
        .execute_in_process(instance=get_instance(), raise_on_error=False)
    )
    assert result.success
    # dbt's manifest, target and logs go to the instance home; the package is left as it was.
    assert (tmp_path / "dagster_home" / "dbt" / "target" / "manifest.json").exists()
    assert _files_with_times(PROJECT_DIR) == package_files
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    for mart in ("flag_health", "segment_usage", "change_request_lead_times"):
        assert _query(database, f"SELECT count(*) FROM split_analytics.{mart}") == [(0,)]
    assert _query(database, "SELECT count(*) FROM split_analytics.stg_split__traffic_types") == [
        (3,)
    ]


def test_sync_through_dagster_on_a_new_organisation(new_organisation, tmp_path):
    run_sync(build_definitions(), progress=lambda _: None)
    assert _query(
        tmp_path / "warehouse.duckdb", "SELECT count(*) FROM split_analytics.flag_health"
    ) == [(0,)]


def test_change_request_lead_times_across_two_syncs(tmp_path, monkeypatch):
    """Generation 0, then 1 (some requests are approved, rejected or published in between):
    stages the API dates (comments by role) take the API's time; a publication it does not
    date takes the first sync that saw it PUBLISHED, from the snapshot kept per sync."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SPLIT_", "ANALYTICS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    database = tmp_path / "warehouse.duckdb"
    syncs = []
    with SandboxProcess(size="tiny") as sandbox:
        for name, value in project_environment(tmp_path, sandbox).items():
            monkeypatch.setenv(name, value)
        for generation in (0, 1):
            sandbox.control(generation=generation)
            truth = {r["id"]: r for r in sandbox.ground_truth_rows("change_requests")}
            started = datetime.now(timezone.utc)
            run_sync(build_definitions(), progress=lambda _: None)
            syncs.append((truth, started, datetime.now(timezone.utc)))
    (before, _, first_end), (after, second_start, second_end) = syncs
    published_between = [
        i
        for i, r in after.items()
        if r["status"] == "PUBLISHED"
        and before.get(i, {}).get("status") == "APPROVED"
        and r.get("scheduledFor") is None
    ]
    approved_between = [
        i
        for i, r in after.items()
        if r["status"] == "APPROVED" and before.get(i, {}).get("status") == "REQUESTED"
    ]
    assert published_between and approved_between, "generation 1 moves no request"
    rows = {
        row[0]: row[1:]
        for row in _query(
            database,
            "SELECT change_request_id, status, requested_at, approved_at, published_at,"
            " hours_approved_to_published FROM split_analytics.change_request_lead_times",
        )
    }
    assert set(rows) == set(after)
    for request_id in approved_between:
        status, requested, approved, published, _ = rows[request_id]
        comments = after[request_id]["comments"]
        assert status == "APPROVED" and published is None
        assert requested == _ms(min(c["timestamp"] for c in comments if c["role"] == "SUBMITTER"))
        assert approved == _ms(min(c["timestamp"] for c in comments if c["role"] == "APPROVER"))
    for request_id in published_between:
        status, _, approved, published, hours = rows[request_id]
        assert status == "PUBLISHED"
        # First seen PUBLISHED by the second sync: after the first one ended, within the second.
        assert first_end < published and second_start <= published <= second_end
        assert hours == pytest.approx((published - approved).total_seconds() / 3600)
    seen = dict(
        _query(
            database,
            "SELECT change_request_id, count(*) FROM split_analytics.change_request_status_snapshot"
            " GROUP BY 1",
        )
    )
    assert all(seen[i] == 2 for i in published_between + approved_between)
    # The second build started from the first's parse state: dbt parsed nothing again.
    builds = sorted(
        (tmp_path / "dagster_home" / "dbt" / "target").glob("run-*/dbt.log"),
        key=lambda log: log.stat().st_mtime,
    )
    assert [_parse_kind(log) for log in builds] == ["full", "partial"]


def test_only_the_newest_build_folders_are_kept(tmp_path):
    # Each models run leaves a target folder (about 9 MB at demo); an hourly build kept
    # every one of them before.
    for age in range(BUILD_FOLDERS_KEPT + 3):
        folder = tmp_path / f"run-{age}"
        (folder / "compiled").mkdir(parents=True)
        (folder / "dbt.log").write_text("{}")
        moment = time.time() - 3600 * age
        os.utime(folder, (moment, moment))
    (tmp_path / BUILD_PARSE_STATE).write_bytes(b"state")
    _remove_old_build_folders(tmp_path)
    kept = sorted(p.name for p in tmp_path.glob("run-*"))
    assert kept == sorted(f"run-{age}" for age in range(BUILD_FOLDERS_KEPT))
    assert (tmp_path / BUILD_PARSE_STATE).exists()
