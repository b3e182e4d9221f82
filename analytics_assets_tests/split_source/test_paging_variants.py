"""The newer endpoints' body readers (contract §3.4–§3.6): real bodies, then real HTTP.

The first half feeds the readers bodies in the forms of the contract's examples. The second
drives them with a small request loop against the sandbox in each of its forms and compares
the rows and the request counts with the sandbox's ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from analytics_assets.sandbox import SandboxProcess
from analytics_assets.sandbox.forms import ServedForms
from analytics_assets.split_source.paging_variants import (
    AttributeMarkers,
    ListOrOffsetEnvelope,
    Page,
    Paging,
    UnexpectedShape,
    context_columns,
    paging_for,
    with_context,
)
from analytics_assets.split_source.settings import ENDPOINTS_BY_TABLE
from analytics_assets_tests.sandbox.form_variants import NEW_TABLES

# --- bodies in the forms of the contract's examples -------------------------------------------

LARGE_SEGMENTS_ARRAY = [
    {
        "id": "id-largeSegment-UUID",
        "name": "loyalty_members",
        "description": "Nightly CSV export from the CRM",
        "trafficType": {"id": "id-user-trafficType-UUID", "name": "user"},
        "creationTime": 1714386743250,
        "tags": None,
    }
]
RULE_BASED_ENVIRONMENT_ENVELOPE = {
    "objects": [
        {
            "id": "seg_12345",
            "name": "Beta Testers",
            "description": "Users in the beta testing group.",
            "rules": [
                {
                    "condition": {
                        "combiner": "AND",
                        "matchers": [
                            {
                                "attribute": "email",
                                "type": "CONTAINS_STRING",
                                "string": "@beta.example.com",
                            }
                        ],
                    }
                }
            ],
            "createdAt": "2025-09-25T18:03:00Z",
            "updatedAt": "2025-10-01T14:21:00Z",
        }
    ]
}
ATTRIBUTE = {
    "id": "someAttr",
    "organizationId": "id-org-UUID",
    "trafficTypeId": "id-trafficType-UUID",
    "displayName": "Some Attribute",
    "description": "This is an attribute",
    "dataType": "STRING",
    "isSearchable": True,
    "suggestedValues": ["A", "B"],
}
IMPLICIT_ATTRIBUTE = {
    "id": "plan_tier",
    "organizationId": "id-org-UUID",
    "trafficTypeId": "id-trafficType-UUID",
    "displayName": None,
    "description": None,
    "dataType": None,
    "isSearchable": False,
    "suggestedValues": [],
}


def _named(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"name": f"segment_{i}"} for i in range(start, start + count)]


def test_first_requests_ask_for_the_largest_pages() -> None:
    assert ListOrOffsetEnvelope(50).first_params() == {"offset": 0, "limit": 50}
    assert AttributeMarkers().first_params() == {"paginate": "true", "markerLimit": 200}


def test_a_bare_array_is_the_whole_list_and_never_paged() -> None:
    paging = ListOrOffsetEnvelope(50)
    page = paging.read(LARGE_SEGMENTS_ARRAY, paging.first_params())
    assert page == Page(LARGE_SEGMENTS_ARRAY, None)
    # 120 records although 50 were asked for: the endpoint ignores paging, so it is complete.
    assert paging.read(_named(120), {"offset": 0, "limit": 50}).next_params is None
    # Exactly a page's worth in an array is complete too (the same array would come back).
    assert paging.read(_named(50), {"offset": 0, "limit": 50}).next_params is None


def test_objects_without_paging_fields_is_the_whole_list() -> None:
    paging = ListOrOffsetEnvelope(50)
    page = paging.read(RULE_BASED_ENVIRONMENT_ENVELOPE, paging.first_params())
    assert page.records == RULE_BASED_ENVIRONMENT_ENVELOPE["objects"]
    assert page.next_params is None and page.total is None
    assert paging.read({"objects": _named(50)}, paging.first_params()).next_params is None


def test_offset_envelope_pages_until_the_data_ends() -> None:
    paging = ListOrOffsetEnvelope(50)
    first = {"objects": _named(50), "offset": 0, "limit": 50, "totalCount": 120}
    page = paging.read(first, {"offset": 0, "limit": 50})
    assert page.next_params == {"offset": 50, "limit": 50} and page.total == 120
    last = {"objects": _named(20, 100), "offset": 100, "limit": 50, "totalCount": 120}
    assert paging.read(last, {"offset": 100, "limit": 50}).next_params is None
    empty = {"objects": [], "offset": 150, "limit": 50, "totalCount": 120}
    assert paging.read(empty, {"offset": 150, "limit": 50}) == Page([], None, 120)


def test_a_total_that_agrees_saves_the_extra_request() -> None:
    paging = ListOrOffsetEnvelope(50)
    exact = {"objects": _named(50), "offset": 0, "limit": 50, "totalCount": 50}
    assert paging.read(exact, {"offset": 0, "limit": 50}).next_params is None


def test_a_total_the_data_contradicts_is_not_trusted() -> None:
    paging = ListOrOffsetEnvelope(50)
    # A full page although the total claims nothing (or fewer): ask for the next page.
    for claimed in (0, 10, None, "50", True):
        body = {"objects": _named(50), "offset": 0, "limit": 50, "totalCount": claimed}
        assert paging.read(body, {"offset": 0, "limit": 50}).next_params == {
            "offset": 50,
            "limit": 50,
        }, claimed
    # A short page ends the list although the total claims more.
    short = {"objects": _named(7), "offset": 0, "limit": 50, "totalCount": 500}
    assert paging.read(short, {"offset": 0, "limit": 50}).next_params is None


def test_a_clamped_limit_echoed_by_the_server_is_a_full_page() -> None:
    paging = ListOrOffsetEnvelope(50)
    clamped = {"objects": _named(20), "offset": 0, "limit": 20, "totalCount": 45}
    assert paging.read(clamped, {"offset": 0, "limit": 50}).next_params == {
        "offset": 20,
        "limit": 50,
    }


def test_attributes_legacy_array_is_complete() -> None:
    body = [ATTRIBUTE, IMPLICIT_ATTRIBUTE]
    page = AttributeMarkers().read(body, AttributeMarkers().first_params())
    assert page == Page(body, None)


def test_attributes_follow_next_marker_until_null_or_absent() -> None:
    paging = AttributeMarkers()
    first = {"objects": [ATTRIBUTE], "nextMarker": "bmV4dF9fc29tZUF0dHI=", "previousMarker": None}
    page = paging.read(first, paging.first_params())
    assert page.records == [ATTRIBUTE]
    assert page.next_params == {
        "paginate": "true",
        "markerLimit": 200,
        "afterMarker": "bmV4dF9fc29tZUF0dHI=",
    }
    last = {"objects": [IMPLICIT_ATTRIBUTE], "nextMarker": None, "previousMarker": "cHJldg=="}
    assert paging.read(last, page.next_params).next_params is None
    assert paging.read({"objects": []}, paging.first_params()).next_params is None


def test_attributes_fall_back_to_data() -> None:
    paging = AttributeMarkers()
    body = {"data": [ATTRIBUTE], "nextMarker": "bmV4dA==", "limit": 200, "count": 1}
    page = paging.read(body, paging.first_params())
    assert page.records == [ATTRIBUTE] and page.next_params is not None
    assert page.total is None  # `count` is this page's length, never a total


@pytest.mark.parametrize(
    ("paging", "body", "fragment"),
    [
        (ListOrOffsetEnvelope(50), None, "the body is null"),
        (ListOrOffsetEnvelope(50), "<html>busy</html>", "the body is a string"),
        (ListOrOffsetEnvelope(50), {"data": []}, "an object with keys data"),
        (ListOrOffsetEnvelope(50), {"objects": None}, "`objects` is null"),
        (ListOrOffsetEnvelope(50), [1, 2], "record 0 is a number"),
        (ListOrOffsetEnvelope(50), {"objects": [{"name": "a"}, "b"]}, "record 1 is a string"),
        (AttributeMarkers(), None, "the body is null"),
        (AttributeMarkers(), {"items": []}, "an object with keys items"),
        (AttributeMarkers(), {"objects": {"id": "a"}}, "`objects` is an object"),
        (AttributeMarkers(), ["age"], "record 0 is a string"),
        (AttributeMarkers(), {"data": [], "nextMarker": 7}, "`nextMarker` to be a string"),
    ],
)
def test_undocumented_shapes_raise_a_sentence(paging: Paging, body: Any, fragment: str) -> None:
    with pytest.raises(UnexpectedShape) as raised:
        paging.read(body, paging.first_params())
    message = str(raised.value)
    assert message.startswith("Expected ") and message.endswith(".")
    assert fragment in message


def test_the_endpoint_table_chooses_the_reader_and_context() -> None:
    readers = {table: paging_for(ENDPOINTS_BY_TABLE[table]) for table in NEW_TABLES}
    assert isinstance(readers["attributes"], AttributeMarkers)
    assert readers["attributes"].first_params()["markerLimit"] == 200
    for table in NEW_TABLES[1:]:
        assert isinstance(readers[table], ListOrOffsetEnvelope)
        assert readers[table].first_params() == {"offset": 0, "limit": 50}
    with pytest.raises(ValueError, match="feature_flags pages with 'offset'"):
        paging_for(ENDPOINTS_BY_TABLE["feature_flags"])
    assert context_columns(ENDPOINTS_BY_TABLE["attributes"]) == (
        "workspace_id",
        "traffic_type_id",
    )
    assert context_columns(ENDPOINTS_BY_TABLE["large_segments"]) == ("workspace_id",)
    assert context_columns(ENDPOINTS_BY_TABLE["rule_based_segment_definitions"]) == (
        "workspace_id",
        "environment_id",
    )
    for table in NEW_TABLES:
        key = ENDPOINTS_BY_TABLE[table].primary_key
        # Every key column is served or injected.
        assert set(key) - {"id", "name"} <= set(context_columns(ENDPOINTS_BY_TABLE[table]))


def test_context_is_added_and_served_fields_kept() -> None:
    (row,) = with_context([ATTRIBUTE], {"workspace_id": "ws", "traffic_type_id": "tt"})
    assert row == {**ATTRIBUTE, "workspace_id": "ws", "traffic_type_id": "tt"}
    assert "workspace_id" not in ATTRIBUTE  # the served record is not changed


# --- over HTTP against the sandbox, in each of its forms --------------------------------------


class PlanLacksFeature(Exception):
    pass


class Loop:
    """The smallest paging loop: send, read, follow; counts requests per table."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Bearer test-key"
        self.requests: dict[str, int] = {}

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.session.get(self.base_url + path, params=params, timeout=30)
        if response.status_code == 402:
            raise PlanLacksFeature(path)
        assert response.status_code == 200, (path, params, response.text)
        return response.json()

    def pages(self, table: str, path: str, context: dict[str, str]) -> list[dict[str, Any]]:
        endpoint = ENDPOINTS_BY_TABLE[table]
        paging = paging_for(endpoint)
        assert set(context) == set(context_columns(endpoint))
        rows: list[dict[str, Any]] = []
        params: dict[str, Any] | None = paging.first_params()
        sent: list[dict[str, Any]] = []
        while params is not None:
            assert params not in sent, f"{table}: the same page was asked for twice"
            sent.append(params)
            self.requests[table] = self.requests.get(table, 0) + 1
            page = paging.read(self.get(path, params), params)
            rows += with_context(page.records, context)
            params = page.next_params
        return rows

    def crawl(self) -> dict[str, list[dict[str, Any]]]:
        tables: dict[str, list[dict[str, Any]]] = {table: [] for table in NEW_TABLES}
        in_plan = True
        for workspace in self.get("/v2/workspaces", {"limit": 100})["objects"]:
            ws = workspace["id"]
            for traffic_type in self.get(f"/v2/trafficTypes/ws/{ws}"):
                tt = traffic_type["id"]
                tables["attributes"] += self.pages(
                    "attributes",
                    f"/v2/schema/ws/{ws}/trafficTypes/{tt}",
                    {"workspace_id": ws, "traffic_type_id": tt},
                )
            context = {"workspace_id": ws}
            tables["rule_based_segments"] += self.pages(
                "rule_based_segments", f"/v2/rule-based-segments/ws/{ws}", context
            )
            if in_plan:
                try:
                    tables["large_segments"] += self.pages(
                        "large_segments", f"/v2/large-segments/ws/{ws}", context
                    )
                except PlanLacksFeature:
                    in_plan = False  # the plan is the organisation's: ask no other scope
            for environment in self.get(f"/v2/environments/ws/{ws}"):
                env = environment["id"]
                env_context = {"workspace_id": ws, "environment_id": env}
                tables["rule_based_segment_definitions"] += self.pages(
                    "rule_based_segment_definitions",
                    f"/v2/rule-based-segments/ws/{ws}/environments/{env}",
                    env_context,
                )
                if in_plan:
                    tables["environment_large_segments"] += self.pages(
                        "environment_large_segments",
                        f"/v2/large-segments/ws/{ws}/environments/{env}",
                        env_context,
                    )
        return tables


VARIANTS: tuple[dict[str, str], ...] = (
    {},
    {"attributes_envelope": "data", "attribute_data_type": "lower"},
    {"attributes_envelope": "array", "attribute_data_type": "null"},
    {
        "large_segments_envelope": "offset",
        "environment_large_segments_envelope": "offset",
        "large_segment_tags": "urns",
        "rule_based_segments_envelope": "offset",
        "rule_based_segment_definitions_envelope": "offset",
    },
    {
        "rule_based_segments_envelope": "objects",
        "rule_based_segment_definitions_envelope": "objects",
        "rule_based_segment_traffic_type": "object",
        "rule_based_segment_timestamps": "iso",
        "rule_based_segment_matchers": "docs",
        "large_segment_tags": "null",
    },
    {"large_segments_plan": "paywalled"},
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(size="tiny", seed=11) as process:
        yield process


def _keyed(table: str, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    key = ENDPOINTS_BY_TABLE[table].primary_key
    keyed = {tuple(row[column] for column in key): row for row in rows}
    assert len(keyed) == len(rows), f"{table}: duplicate keys"
    return keyed


@pytest.mark.parametrize(
    "variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "defaults"
)
@pytest.mark.parametrize("generation", (0, 2))
def test_readers_reproduce_the_truth_over_http(
    sandbox: SandboxProcess, variant: dict[str, str], generation: int
) -> None:
    sandbox.control(**{**ServedForms().public(), **variant}, generation=generation)
    try:
        truth = sandbox.ground_truth(tables=list(NEW_TABLES))
        loop = Loop(sandbox.base_url)
        crawled = loop.crawl()
    finally:
        sandbox.control(**ServedForms().public(), generation=0)
    for table in NEW_TABLES:
        expected = _keyed(table, truth["tables"][table]["rows"])
        assert _keyed(table, crawled[table]) == expected, table
        assert loop.requests.get(table, 0) == truth["minimal_requests"]["by_endpoint"][table], table
    if variant.get("large_segments_plan") != "paywalled":
        assert all(truth["tables"][table]["count"] for table in NEW_TABLES)
