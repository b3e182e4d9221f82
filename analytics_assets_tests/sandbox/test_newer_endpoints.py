"""Attributes, rule-based and large segments (contract §3.4–§3.6) in every documented form.

Each form is switched on through ``/_sandbox/control`` (and one through the command line),
then an independent crawl over HTTP must reproduce the ground truth in the minimal requests.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from analytics_assets.sandbox import SandboxProcess
from analytics_assets.sandbox.forms import FORM_OPTIONS, ServedForms
from analytics_assets_tests.sandbox.conftest import Api
from analytics_assets_tests.sandbox.crawler import keyed
from analytics_assets_tests.sandbox.form_variants import NEW_TABLES, VARIANTS
from analytics_assets_tests.sandbox.test_crawl_matches_truth import assert_crawl_matches_truth


def test_the_variants_cover_every_choice() -> None:
    for option in FORM_OPTIONS:
        # The README lists the default first.
        assert getattr(ServedForms(), option.name) == option.choices[0], option.name
        chosen = {
            variant.get(option.name, getattr(ServedForms(), option.name)) for variant in VARIANTS
        }
        assert chosen == set(option.choices), option.name


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(size="tiny", seed=42) as process:
        yield process


@pytest.fixture
def served(sandbox: SandboxProcess) -> Iterator[Any]:
    """Switch forms for one test; the defaults come back afterwards."""

    def switch(**forms: str) -> Api:
        sandbox.control(**forms)
        return Api(sandbox.base_url)

    yield switch
    sandbox.control(**ServedForms().public(), generation=0)


@pytest.mark.parametrize(
    "variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "defaults"
)
def test_crawl_reproduces_truth_in_every_form(
    sandbox: SandboxProcess, served: Any, variant: dict[str, str]
) -> None:
    served(**variant)
    truth = assert_crawl_matches_truth(sandbox)
    assert truth["forms"] == {**ServedForms().public(), **variant}
    counts = {table: truth["tables"][table]["count"] for table in NEW_TABLES}
    if variant.get("large_segments_plan") == "paywalled":
        assert counts["large_segments"] == counts["environment_large_segments"] == 0
        assert truth["minimal_requests"]["by_endpoint"]["large_segments"] == 1
    else:
        assert all(count > 100 for count in counts.values()), counts


def test_tiny_holds_the_page_size_edge_cases(sandbox: SandboxProcess) -> None:
    truth = sandbox.ground_truth()
    (default_ws, *_) = truth["tables"]["workspaces"]["rows"]
    per_traffic_type: dict[str, int] = {}
    for row in truth["tables"]["attributes"]["rows"]:
        per_traffic_type[row["traffic_type_id"]] = (
            per_traffic_type.get(row["traffic_type_id"], 0) + 1
        )
    default_tts = [
        r["id"]
        for r in truth["tables"]["traffic_types"]["rows"]
        if r["workspace_id"] == default_ws["id"]
    ]
    assert [per_traffic_type.get(tt, 0) for tt in default_tts][:2] == [201, 200]
    assert 0 in [per_traffic_type.get(r["id"], 0) for r in truth["tables"]["traffic_types"]["rows"]]
    for table in ("rule_based_segments", "large_segments"):
        per_ws = [
            sum(1 for r in truth["tables"][table]["rows"] if r["workspace_id"] == ws["id"])
            for ws in truth["tables"]["workspaces"]["rows"]
        ]
        assert per_ws[:3] == [51, 50, 0], table
    default_envs = [
        r["id"]
        for r in truth["tables"]["environments"]["rows"]
        if r["workspace_id"] == default_ws["id"]
    ]
    for table in ("rule_based_segment_definitions", "environment_large_segments"):
        per_env = [
            sum(1 for r in truth["tables"][table]["rows"] if r["environment_id"] == env)
            for env in default_envs
        ]
        assert per_env == [51, 50, 0], table


def _first_scope(api: Api) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    workspace = api.json("/v2/workspaces")["objects"][0]["id"]
    return (
        workspace,
        api.json(f"/v2/trafficTypes/ws/{workspace}"),
        api.json(f"/v2/environments/ws/{workspace}"),
    )


def test_attribute_markers_move_both_ways_and_clamp(served: Any) -> None:
    api = served(attributes_envelope="data")
    ws, traffic_types, _ = _first_scope(api)
    path = f"/v2/schema/ws/{ws}/trafficTypes/{traffic_types[0]['id']}"
    legacy = api.json(path)
    assert isinstance(legacy, list) and len(legacy) == 201  # no paginate=true: legacy array
    first = api.json(path, paginate="true", markerLimit=500)
    assert first["limit"] == 200 and first["count"] == 200 and first["previousMarker"] is None
    assert base64.b64decode(first["nextMarker"])  # opaque but base64, like Split's markers
    second = api.json(path, paginate="true", markerLimit=500, afterMarker=first["nextMarker"])
    assert second["data"] == legacy[200:] and second["nextMarker"] is None
    # The four documented moves: previousMarker as beforeMarker pages back, as afterMarker
    # reloads; nextMarker as beforeMarker reloads backwards.
    back = api.json(path, paginate="true", markerLimit=200, beforeMarker=second["previousMarker"])
    assert back["data"] == first["data"]
    reload = api.json(path, paginate="true", markerLimit=200, afterMarker=second["previousMarker"])
    assert reload["data"] == second["data"]
    again = api.json(path, paginate="true", markerLimit=200, beforeMarker=first["nextMarker"])
    assert again["data"] == first["data"]
    default = api.json(path, paginate="true")
    assert default["count"] == 50  # default markerLimit
    prefix = legacy[0]["id"][:3]
    searched = api.json(path, paginate="true", searchPrefix=prefix)
    assert searched["data"] and all(a["id"].startswith(prefix) for a in searched["data"])
    assert api.get(path, paginate="true", markerLimit=0).status_code == 400
    assert api.get(path, paginate="true", afterMarker="not a marker").status_code == 400


def test_attribute_envelopes_and_data_type_forms(served: Any) -> None:
    api = served(attributes_envelope="objects", attribute_data_type="lower")
    ws, traffic_types, _ = _first_scope(api)
    path = f"/v2/schema/ws/{ws}/trafficTypes/{traffic_types[0]['id']}"
    page = api.json(path, paginate="true", markerLimit=200)
    assert set(page) == {"objects", "nextMarker", "previousMarker"}
    types = {a["dataType"] for a in page["objects"]}
    assert None in types and types - {None} <= {"string", "number", "datetime", "set"}
    assert set(page["objects"][0]) == {
        "id",
        "organizationId",
        "trafficTypeId",
        "displayName",
        "description",
        "dataType",
        "isSearchable",
        "suggestedValues",
    }
    api = served(attributes_envelope="array", attribute_data_type="upper")
    whole = api.json(path, paginate="true", markerLimit=10)
    assert isinstance(whole, list) and len(whole) == 201  # paging parameters ignored
    assert {a["dataType"] for a in whole} - {None} <= {"STRING", "NUMBER", "DATETIME", "SET"}
    api = served(attribute_data_type="null")
    assert {a["dataType"] for a in api.json(path)} == {None}
    unknown = api.get(f"/v2/schema/ws/{ws}/trafficTypes/no-such-type")
    assert unknown.status_code == 404 and unknown.json()["code"] == 404


def whole_rules(api: Api, path: str) -> list[dict[str, Any]]:
    body = api.json(path)
    records = body["objects"] if isinstance(body, dict) else body
    return [rule for record in records for rule in record["rules"]]


def test_rule_based_segment_forms(served: Any) -> None:
    api = served()
    ws, _, environments = _first_scope(api)
    listed = api.json(f"/v2/rule-based-segments/ws/{ws}", offset=0, limit=10)
    assert isinstance(listed, list) and len(listed) == 51  # the array ignores `limit`
    assert "trafficTypeId" in listed[0] and isinstance(listed[0]["creationTime"], int)
    env_path = f"/v2/rule-based-segments/ws/{ws}/environments/{environments[0]['id']}"
    definition = api.json(env_path)[0]
    assert {"name", "rules", "excludedKeys", "excludedSegments"} <= set(definition)
    assert all("buckets" not in rule for rule in definition["rules"])

    api = served(
        rule_based_segments_envelope="offset",
        rule_based_segment_definitions_envelope="objects",
        rule_based_segment_traffic_type="object",
        rule_based_segment_timestamps="iso",
    )
    page = api.json(f"/v2/rule-based-segments/ws/{ws}", offset=50, limit=50)
    assert page["totalCount"] == 51 and len(page["objects"]) == 1 and page["offset"] == 50
    record = page["objects"][0]
    assert "trafficTypeId" not in record and set(record["trafficType"]) == {"id", "name"}
    assert "creationTime" not in record and record["createdAt"].endswith("Z")
    flag_dialect = [m for r in whole_rules(api, env_path) for m in r["condition"]["matchers"]]
    assert flag_dialect and all("type" in m and "operator" not in m for m in flag_dialect)
    api = served(
        rule_based_segment_matchers="docs", rule_based_segment_definitions_envelope="objects"
    )
    docs_dialect = [m for r in whole_rules(api, env_path) for m in r["condition"]["matchers"]]
    assert len(docs_dialect) == len(flag_dialect)
    assert all(
        {"attribute", "operator", "value"} <= set(m) and "type" not in m for m in docs_dialect
    )
    whole = api.json(env_path, offset=0, limit=5)
    assert set(whole) == {"objects"} and len(whole["objects"]) == 51
    assert {"id", "description", "createdAt", "updatedAt"} <= set(whole["objects"][0])


def test_large_segment_forms_and_paywall(served: Any) -> None:
    api = served(large_segment_tags="urns", large_segments_envelope="offset")
    ws, _, environments = _first_scope(api)
    page = api.json(f"/v2/large-segments/ws/{ws}", offset=0, limit=500)
    assert page["limit"] == 50 and page["totalCount"] == 51 and len(page["objects"]) == 50
    tagged = [s["tags"] for s in page["objects"] if s["tags"]]
    assert tagged and all(set(tag) == {"id", "type", "name"} for tags in tagged for tag in tags)
    defined = api.json(f"/v2/large-segments/ws/{ws}/environments/{environments[0]['id']}")
    assert isinstance(defined, list) and len(defined) == 51
    assert set(defined[0]) == {"id", "name", "environment", "trafficType", "creationTime"}

    api = served(large_segments_plan="paywalled")
    for path in (f"/v2/large-segments/ws/{ws}", f"/v2/large-segments/ws/{ws}/environments/x"):
        refused = api.get(path)
        assert refused.status_code == 402
        assert refused.json()["message"] == "Forbidden by Paywalls: largeSegments"


def test_bad_form_settings_get_a_clear_400(sandbox: SandboxProcess) -> None:
    response = requests.post(
        sandbox.root_url + "/_sandbox/control", json={"attributes_envelope": "xml"}, timeout=10
    )
    assert response.status_code == 400
    assert "attributes_envelope must be one of objects, data, array" in response.json()["message"]


def test_forms_chosen_on_the_command_line() -> None:
    with SandboxProcess(size="tiny", seed=7, forms={"large_segments_plan": "paywalled"}) as process:
        assert process.control()["large_segments_plan"] == "paywalled"
        truth = process.ground_truth(rows=False)
        assert truth["tables"]["large_segments"]["count"] == 0
        assert truth["forms"]["large_segments_plan"] == "paywalled"


def test_generations_add_edit_and_delete_the_new_objects(sandbox: SandboxProcess) -> None:
    truths = {}
    try:
        for generation in (0, 1, 2):
            sandbox.control(generation=generation)
            truths[generation] = sandbox.ground_truth(tables=list(NEW_TABLES))
    finally:
        sandbox.control(generation=0)
    for before, after in ((0, 1), (1, 2)):
        for table in NEW_TABLES:
            old = keyed(table, truths[before]["tables"][table]["rows"])
            new = keyed(table, truths[after]["tables"][table]["rows"])
            assert set(new) - set(old), f"{table}: nothing added in generation {after}"
            assert set(old) - set(new), f"{table}: nothing deleted in generation {after}"
            if table != "environment_large_segments":  # metadata only: nothing to edit
                edited = [key for key in set(old) & set(new) if old[key] != new[key]]
                assert edited, f"{table}: nothing edited in generation {after}"
