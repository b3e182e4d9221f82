"""Envelopes, page sizes and stop conditions of the three pagination styles (contract §1.5).

tiny is laid out with the edge cases at each endpoint's maximum page size: scopes of exactly
one page, one page plus one item, and nothing at all.
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import pytest

from analytics_assets_tests.sandbox.conftest import Api

OFFSET_ENVELOPE = {"objects", "offset", "limit", "totalCount"}
KEYS_ENVELOPE = {"keys", "openChangeRequestId", "count", "offset", "limit"}
MARKER_ENVELOPE = {"data", "nextMarker", "previousMarker", "limit", "count"}
ERROR_BODY = {"code", "message", "details", "transactionId"}


def workspace_id(truth: dict[str, Any], name: str) -> str:
    return next(row["id"] for row in truth["tables"]["workspaces"]["rows"] if row["name"] == name)


def environments_of(truth: dict[str, Any], ws: str) -> list[dict[str, Any]]:
    return [row for row in truth["tables"]["environments"]["rows"] if row["workspace_id"] == ws]


def scope_with_count(truth: dict[str, Any], table: str, scope: str, count: int) -> dict[str, Any]:
    """A row of `workspaces`/`environments` whose scope holds exactly `count` rows of `table`."""
    counts = Counter(row[scope] for row in truth["tables"][table]["rows"])
    parents = "workspaces" if scope == "workspace_id" else "environments"
    for row in truth["tables"][parents]["rows"]:
        if counts.get(row["id"], 0) == count:
            return row
    raise AssertionError(f"tiny has no {scope} with exactly {count} {table}")


def assert_error(response: Any, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == ERROR_BODY
    assert body["code"] == status and body["details"] == ""


# --- offset style -------------------------------------------------------------------------------


def test_workspaces_offset_envelope_defaults_and_clamping(api: Api) -> None:
    page = api.json("/v2/workspaces")
    assert set(page) == OFFSET_ENVELOPE
    assert (page["offset"], page["limit"], page["totalCount"]) == (0, 20, 4)
    assert len(page["objects"]) == 4
    assert api.json("/v2/workspaces", limit=5000)["limit"] == 1000  # clamped to the maximum
    assert_error(api.get("/v2/workspaces", limit=0), 400)
    assert_error(api.get("/v2/workspaces", offset="x"), 400)


def test_offset_exact_multiple_and_past_the_end(api: Api) -> None:
    first = api.json("/v2/workspaces", limit=2)
    second = api.json("/v2/workspaces", limit=2, offset=2)
    assert len(first["objects"]) == len(second["objects"]) == 2
    assert second["offset"] + len(second["objects"]) == second["totalCount"]  # stop here
    past = api.json("/v2/workspaces", limit=2, offset=4)
    assert past == {"objects": [], "offset": 4, "limit": 2, "totalCount": 4}
    far = api.json("/v2/workspaces", offset=99)
    assert far["objects"] == [] and far["totalCount"] == 4


def test_workspace_name_filter(api: Api, tiny_truth: dict[str, Any]) -> None:
    page = api.json("/v2/workspaces", name="Partner's Portal")
    assert [ws["name"] for ws in page["objects"]] == ["Partner's Portal"]
    assert api.json("/v2/workspaces", name="Mobile", nameOp="STARTS_WITH")["totalCount"] == 1


@pytest.mark.parametrize(
    ("table", "path"),
    [("feature_flags", "/v2/splits/ws/{ws}"), ("segments", "/v2/segments/ws/{ws}")],
)
def test_workspace_offset_endpoints_at_max_page(
    api: Api, tiny_truth: dict[str, Any], table: str, path: str
) -> None:
    for count, pages in ((51, [50, 1]), (50, [50]), (0, [0])):
        ws = scope_with_count(tiny_truth, table, "workspace_id", count)["id"]
        sizes = []
        offset = 0
        for _ in pages:
            page = api.json(path.format(ws=ws), offset=offset, limit=50)
            assert set(page) == OFFSET_ENVELOPE and page["totalCount"] == count
            sizes.append(len(page["objects"]))
            offset += len(page["objects"])
        assert sizes == pages
        assert offset >= count  # the stop condition holds after exactly len(pages) requests
    any_ws = scope_with_count(tiny_truth, table, "workspace_id", 51)["id"]
    assert api.json(path.format(ws=any_ws))["limit"] == 20  # default
    assert api.json(path.format(ws=any_ws), limit=500)["limit"] == 50  # maximum


@pytest.mark.parametrize(
    ("table", "path"),
    [
        ("feature_flag_definitions", "/v2/splits/ws/{ws}/environments/{env}"),
        ("environment_segments", "/v2/segments/ws/{ws}/environments/{env}"),
    ],
)
def test_environment_offset_endpoints_at_max_page(
    api: Api, tiny_truth: dict[str, Any], table: str, path: str
) -> None:
    for count, first_page in ((51, 50), (50, 50), (0, 0)):
        env = scope_with_count(tiny_truth, table, "environment_id", count)
        url = path.format(ws=env["workspace_id"], env=env["id"])
        page = api.json(url, limit=50)
        assert page["totalCount"] == count and len(page["objects"]) == first_page
        if count == 51:
            assert len(api.json(url, limit=50, offset=50)["objects"]) == 1
    env = scope_with_count(tiny_truth, table, "environment_id", 51)
    assert api.json(path.format(ws=env["workspace_id"], env=env["id"]))["limit"] == 20
    other_ws = next(
        ws["id"]
        for ws in tiny_truth["tables"]["workspaces"]["rows"]
        if ws["id"] != env["workspace_id"]
    )
    assert_error(api.get(path.format(ws=other_ws, env=env["id"])), 404)  # env not in ws
    assert_error(api.get(path.format(ws=env["workspace_id"], env="no-such-env")), 404)
    assert_error(api.get(path.format(ws="no-such-ws", env=env["id"])), 404)


def test_groups_offset(api: Api, tiny_truth: dict[str, Any]) -> None:
    page = api.json("/v2/groups")
    assert set(page) == OFFSET_ENVELOPE and page["limit"] == 50
    assert page["totalCount"] == tiny_truth["tables"]["groups"]["count"]
    assert api.json("/v2/groups", limit=999)["limit"] == 200


# --- keys variant -------------------------------------------------------------------------------


def _active_segments_by_key_count(truth: dict[str, Any]) -> dict[int, tuple[str, str]]:
    counts = Counter(
        (row["environment_id"], row["segment_name"])
        for row in truth["tables"]["segments_keys"]["rows"]
    )
    result: dict[int, tuple[str, str]] = {}
    for row in truth["tables"]["environment_segments"]["rows"]:
        pair = (row["environment_id"], row["name"])
        result.setdefault(counts.get(pair, 0), pair)
    return result


def test_segment_keys_envelope_and_edge_counts(api: Api, tiny_truth: dict[str, Any]) -> None:
    by_count = _active_segments_by_key_count(tiny_truth)
    env, name = by_count[100]
    page = api.json(f"/v2/segments/{env}/{name}/keys")
    assert set(page) == KEYS_ENVELOPE
    assert (page["count"], page["offset"], page["limit"], len(page["keys"])) == (100, 0, 100, 100)
    assert all(set(item) == {"key"} for item in page["keys"])
    env, name = by_count[101]
    assert len(api.json(f"/v2/segments/{env}/{name}/keys", limit=100)["keys"]) == 100
    last = api.json(f"/v2/segments/{env}/{name}/keys", limit=100, offset=100)
    assert len(last["keys"]) == 1 and last["count"] == 101
    assert api.json(f"/v2/segments/{env}/{name}/keys", limit=1000)["limit"] == 100
    env, name = by_count[0]
    empty = api.json(f"/v2/segments/{env}/{name}/keys")
    assert empty["keys"] == [] and empty["count"] == 0


def test_segment_keys_404_for_inactive_or_unknown(api: Api, tiny_truth: dict[str, Any]) -> None:
    active = {
        (r["environment_id"], r["name"])
        for r in tiny_truth["tables"]["environment_segments"]["rows"]
    }
    segments = tiny_truth["tables"]["segments"]["rows"]
    inactive = next(
        (env["id"], segment["name"])
        for segment in segments
        for env in environments_of(tiny_truth, segment["workspace_id"])
        if (env["id"], segment["name"]) not in active
    )
    assert_error(api.get(f"/v2/segments/{inactive[0]}/{inactive[1]}/keys"), 404)
    env = next(iter(active))[0]
    assert_error(api.get(f"/v2/segments/{env}/no_such_segment/keys"), 404)
    assert_error(api.get("/v2/segments/no-such-env/beta_accounts/keys"), 404)


# --- marker style -------------------------------------------------------------------------------


def _decode(marker: str) -> str:
    return base64.b64decode(marker).decode()


def test_users_default_excludes_pending_and_markers_walk(
    api: Api, tiny_truth: dict[str, Any]
) -> None:
    page = api.json("/v2/users")
    assert set(page) == MARKER_ENVELOPE
    assert page["limit"] == 50 and page["count"] == 50 == len(page["data"])
    assert page["previousMarker"] is None and _decode(page["nextMarker"]).startswith("next__")
    seen: list[dict[str, Any]] = list(page["data"])
    while page["nextMarker"] is not None:
        page = api.json("/v2/users", after=page["nextMarker"])
        assert page["previousMarker"] is not None and _decode(page["previousMarker"]).startswith(
            "prev__"
        )
        seen += page["data"]
    statuses = Counter(user["status"] for user in seen)
    expected = tiny_truth["status_counts"]["users"]
    assert statuses == {"ACTIVE": expected["ACTIVE"], "DEACTIVATED": expected["DEACTIVATED"]}
    assert len({user["id"] for user in seen}) == len(seen)
    pending = api.json("/v2/users", status="PENDING", limit=200)
    assert pending["count"] == expected["PENDING"] > 0
    assert {user["status"] for user in pending["data"]} == {"PENDING"}


def test_marker_exact_multiple_ends_with_null_next(api: Api) -> None:
    full = api.json("/v2/users", status="ACTIVE", limit=200)  # exactly 200 ACTIVE users
    assert full["count"] == 200 and full["nextMarker"] is None and full["previousMarker"] is None
    first = api.json("/v2/users", status="ACTIVE", limit=100)
    second = api.json("/v2/users", status="ACTIVE", limit=100, after=first["nextMarker"])
    assert second["count"] == 100 and second["nextMarker"] is None
    back = api.json("/v2/users", status="ACTIVE", limit=100, before=second["previousMarker"])
    assert back["data"] == first["data"] and back["previousMarker"] is None
    assert api.json("/v2/users", status="ACTIVE", limit=999)["limit"] == 200


def test_marker_endpoints_ignore_offset(api: Api) -> None:
    assert api.json("/v2/users", offset=50) == api.json("/v2/users")
    assert api.json("/v2/changeRequests", offset=20) == api.json("/v2/changeRequests")


def test_marker_bad_parameters(api: Api) -> None:
    assert_error(api.get("/v2/users", status="ENABLED"), 400)
    assert_error(api.get("/v2/users", after="not-a-marker"), 400)
    assert_error(api.get("/v2/changeRequests", status="DONE"), 400)


def test_change_requests_default_requested_and_empty_status(
    api: Api, tiny_truth: dict[str, Any]
) -> None:
    page = api.json("/v2/changeRequests")
    assert set(page) == MARKER_ENVELOPE and page["limit"] == 20
    assert {cr["status"] for cr in page["data"]} == {"REQUESTED"}
    full = api.json("/v2/changeRequests", limit=100)
    assert full["count"] == 100 and full["nextMarker"] is None  # exactly 100 REQUESTED
    assert api.json("/v2/changeRequests", limit=500)["limit"] == 100
    empty = api.json("/v2/changeRequests", status="SCHEDULE_REQUESTED")
    assert empty == {
        "data": [],
        "nextMarker": None,
        "previousMarker": None,
        "limit": 20,
        "count": 0,
    }
    for cr in full["data"]:
        payloads = [cr[name] for name in ("split", "segment", "largeSegment", "ruleBasedSegment")]
        assert sum(payload is not None for payload in payloads) == 1


def test_flag_sets_marker(api: Api, tiny_truth: dict[str, Any]) -> None:
    assert_error(api.get("/v3/flag-sets"), 400)
    assert_error(api.get("/v3/flag-sets", workspace_id="no-such-ws"), 404)
    empty_ws = scope_with_count(tiny_truth, "flag_sets", "workspace_id", 0)["id"]
    empty = api.json("/v3/flag-sets", workspace_id=empty_ws)
    assert empty["data"] == [] and empty["nextMarker"] is None and empty["limit"] == 50
    four = scope_with_count(tiny_truth, "flag_sets", "workspace_id", 4)["id"]
    first = api.json("/v3/flag-sets", workspace_id=four, limit=2)
    second = api.json("/v3/flag-sets", workspace_id=four, limit=2, after=first["nextMarker"])
    assert first["count"] == second["count"] == 2 and second["nextMarker"] is None
    assert api.json("/v3/flag-sets", workspace_id=four, limit=1000)["limit"] == 200
    created = first["data"][0]["createdAt"]
    assert isinstance(created, str) and created.endswith("Z") and "T" in created


# --- bare arrays --------------------------------------------------------------------------------


def test_bare_arrays_ignore_query_parameters(api: Api, tiny_truth: dict[str, Any]) -> None:
    ws = workspace_id(tiny_truth, "Default")
    environments = api.json(f"/v2/environments/ws/{ws}")
    assert isinstance(environments, list) and len(environments) == 3
    assert api.json(f"/v2/environments/ws/{ws}", offset=1, limit=1) == environments
    assert all(set(env) == {"id", "name", "production"} for env in environments)
    assert isinstance(api.json(f"/v2/trafficTypes/ws/{ws}", limit=1), list)
    statuses = api.json("/v2/rolloutStatuses", wsId=ws, limit=1)
    assert isinstance(statuses, list) and len(statuses) > 1
    assert_error(api.get("/v2/rolloutStatuses"), 400)
    for path in ("/v2/environments/ws/nope", "/v2/trafficTypes/ws/nope", "/v2/splits/ws/nope"):
        assert_error(api.get(path), 404)
    assert_error(api.get("/v2/rolloutStatuses", wsId="nope"), 404)
    assert_error(api.get("/v2/no-such-endpoint"), 404)


# --- record shapes ------------------------------------------------------------------------------


def test_records_are_realistic(tiny_truth: dict[str, Any]) -> None:
    tables = tiny_truth["tables"]
    users = tables["users"]["rows"]
    assert any("groups" not in user for user in users) and any("groups" in user for user in users)
    assert all(isinstance(user["2fa"], bool) for user in users)
    flags = tables["feature_flags"]["rows"]
    assert any(flag["tags"] is None for flag in flags)
    assert any(isinstance(flag["tags"], list) and flag["tags"] for flag in flags)
    assert any(flag["description"] is None for flag in flags)
    assert any("owners" not in flag for flag in flags)  # legacy records lack optional keys
    assert all(isinstance(flag["creationTime"], int) for flag in flags)
    definitions = tables["feature_flag_definitions"]["rows"]
    assert any("lastTrafficReceivedAt" not in d for d in definitions)
    assert any(d["killed"] for d in definitions) and any(d["rules"] for d in definitions)
    for definition in definitions:
        assert set(definition["environment"]) == {"id", "name"}
        assert sum(bucket["size"] for bucket in definition["defaultRule"]) == 100
        assert isinstance(definition["lastUpdateTime"], int)
    assert all("id" not in segment for segment in tables["segments"]["rows"])
    keys = [row["key"] for row in tables["segments_keys"]["rows"]]
    assert any("'" in key for key in keys) and any(not key.isascii() for key in keys)
    names = [ws["name"] for ws in tables["workspaces"]["rows"]]
    assert any("'" in name for name in names) and any(not name.isascii() for name in names)
    segments = {(s["workspace_id"], s["name"]) for s in tables["segments"]["rows"]}
    environments = {e["id"]: e["workspace_id"] for e in tables["environments"]["rows"]}
    active = {(r["environment_id"], r["name"]) for r in tables["environment_segments"]["rows"]}
    inactive = [
        (env, name)
        for env, ws in environments.items()
        for w, name in segments
        if w == ws
        if (env, name) not in active
    ]
    assert inactive, "some segments must not be active in some environments"
