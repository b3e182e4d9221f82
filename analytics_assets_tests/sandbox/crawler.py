"""An independent Admin API crawler for testing the sandbox, written from the contract.

It deliberately shares nothing with the sandbox except the HTTP interface: paths, envelopes
and stop conditions are spelled out here again (contract §1.5, §2, §3.1–§3.6), so a mistake
in the sandbox's endpoint table cannot hide itself. It uses each endpoint's maximum page
size (100 for workspaces), follows each pagination style's stop condition, iterates every
user and change-request status, and reads keys only for segments active in an environment.
The newer endpoints (§3.4–§3.6) are read the way the contract's "robust client" paragraphs
say, accepting every documented form; a 402 on large segments means the plan has none, so
they are not asked for again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

USER_STATUSES = ("ACTIVE", "DEACTIVATED", "PENDING")
CHANGE_REQUEST_STATUSES = (
    "REQUESTED",
    "SCHEDULE_REQUESTED",
    "APPROVED",
    "REJECTED",
    "WITHDRAWN",
    "PUBLISHED",
)
RETRYABLE_STATUSES = {429, 500, 502, 503, 504}

NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "workspaces": ("id",),
    "environments": ("workspace_id", "id"),
    "traffic_types": ("workspace_id", "id"),
    "rollout_statuses": ("workspace_id", "id"),
    "flag_sets": ("workspace_id", "id"),
    "feature_flags": ("workspace_id", "id"),
    "feature_flag_definitions": ("environment_id", "id"),
    "segments": ("workspace_id", "name"),
    "environment_segments": ("environment_id", "name"),
    "segments_keys": ("environment_id", "segment_name", "key"),
    "users": ("id",),
    "groups": ("id",),
    "change_requests": ("id",),
    "attributes": ("workspace_id", "traffic_type_id", "id"),
    "rule_based_segments": ("workspace_id", "id"),
    "rule_based_segment_definitions": ("environment_id", "name"),
    "large_segments": ("workspace_id", "name"),
    "environment_large_segments": ("environment_id", "name"),
}


class PlanLacksFeature(Exception):
    """HTTP 402: the organisation's plan does not include this feature (contract §3.5)."""


class CrawlError(RuntimeError):
    """A request kept failing, or answered something the contract does not allow."""


@dataclass
class Crawler:
    """Fetches the whole organisation; ``retries`` > 0 makes it ride out transient faults."""

    base_url: str
    api_key: str = "test-key"
    retries: int = 0
    timeout: float = 30.0
    session: requests.Session = field(default_factory=requests.Session)
    attempts: int = 0
    failures: list[str] = field(default_factory=list)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET and decode JSON, retrying transient failures up to ``retries`` times."""
        for attempt in range(self.retries + 1):
            self.attempts += 1
            try:
                response = self.session.get(
                    self.base_url + path,
                    params=params,
                    headers={"Authorization": f"Bearer {self.api_key}"},
                    timeout=self.timeout,
                )
                if response.status_code == 200:
                    return response.json()
                if response.status_code == 402:
                    raise PlanLacksFeature(path)
                if response.status_code not in RETRYABLE_STATUSES:
                    raise CrawlError(f"GET {path} {params}: HTTP {response.status_code}")
                self.failures.append(str(response.status_code))
            except (requests.RequestException, ValueError) as error:
                # Connection cut, timeout, incomplete or truncated body: all transient.
                self.failures.append(type(error).__name__)
            if attempt == self.retries:
                raise CrawlError(f"GET {path} {params}: still failing after {attempt + 1} tries")
        raise AssertionError("unreachable")

    # --- the three pagination styles -------------------------------------------------------

    def offset_pages(
        self, path: str, limit: int, params: dict[str, Any] | None = None
    ) -> list[Any]:
        rows: list[Any] = []
        offset = 0
        while True:
            page = self.get(path, {**(params or {}), "offset": offset, "limit": limit})
            objects = page["objects"]
            rows.extend(objects)
            offset += len(objects)
            if not objects or offset >= page["totalCount"]:
                return rows

    def key_pages(self, path: str) -> list[str]:
        keys: list[str] = []
        offset = 0
        while True:
            page = self.get(path, {"offset": offset, "limit": 100})
            keys.extend(item["key"] for item in page["keys"])
            offset += len(page["keys"])
            if not page["keys"] or offset >= page["count"]:  # contract §2.6: total is `count`
                return keys

    def marker_pages(
        self, path: str, limit: int, params: dict[str, Any] | None = None
    ) -> list[Any]:
        rows: list[Any] = []
        query = {**(params or {}), "limit": limit}
        while True:
            page = self.get(path, query)
            assert page["count"] == len(page["data"])
            rows.extend(page["data"])
            if page["nextMarker"] is None:
                return rows
            query["after"] = page["nextMarker"]

    # --- the newer endpoints (contract §3.4–§3.6) -------------------------------------------

    def list_or_offset(self, path: str, limit: int = 50) -> list[Any]:
        """§3.5/§3.6: an array is complete; `{objects}` alone too; an envelope pages by offset."""
        rows: list[Any] = []
        offset = 0
        while True:
            page = self.get(path, {"offset": offset, "limit": limit})
            if isinstance(page, list):
                return page
            objects = page["objects"]
            rows.extend(objects)
            if "totalCount" not in page and "offset" not in page:
                return rows
            offset += len(objects)
            if not objects or offset >= page["totalCount"]:
                return rows

    def attribute_pages(self, path: str) -> list[Any]:
        """§3.4: paginate=true&markerLimit=200; array = complete; else follow afterMarker."""
        rows: list[Any] = []
        query: dict[str, Any] = {"paginate": "true", "markerLimit": 200}
        while True:
            page = self.get(path, query)
            if isinstance(page, list):
                return page
            rows.extend(page["objects"] if "objects" in page else page["data"])
            if page.get("nextMarker") is None:
                return rows
            query["afterMarker"] = page["nextMarker"]

    # --- the whole organisation ------------------------------------------------------------

    def crawl(self) -> dict[str, list[dict[str, Any]]]:
        tables: dict[str, list[dict[str, Any]]] = {name: [] for name in NATURAL_KEYS}
        workspaces = self.offset_pages("/v2/workspaces", 100)
        tables["workspaces"] = workspaces
        large_segments_in_plan = True
        for workspace in workspaces:
            ws = workspace["id"]
            context = {"workspace_id": ws}
            environments = self.get(f"/v2/environments/ws/{ws}")
            tables["environments"] += [{**e, **context} for e in environments]
            tables["traffic_types"] += [
                {**t, **context} for t in self.get(f"/v2/trafficTypes/ws/{ws}")
            ]
            tables["rollout_statuses"] += [
                {**r, **context} for r in self.get("/v2/rolloutStatuses", {"wsId": ws})
            ]
            tables["flag_sets"] += [
                {**f, **context}
                for f in self.marker_pages("/v3/flag-sets", 200, {"workspace_id": ws})
            ]
            tables["feature_flags"] += [
                {**f, **context} for f in self.offset_pages(f"/v2/splits/ws/{ws}", 50)
            ]
            tables["segments"] += [
                {**s, **context} for s in self.offset_pages(f"/v2/segments/ws/{ws}", 50)
            ]
            for traffic_type in tables["traffic_types"]:
                if traffic_type["workspace_id"] == ws:
                    tt = traffic_type["id"]
                    tables["attributes"] += [
                        {**a, **context, "traffic_type_id": tt}
                        for a in self.attribute_pages(f"/v2/schema/ws/{ws}/trafficTypes/{tt}")
                    ]
            tables["rule_based_segments"] += [
                {**r, **context} for r in self.list_or_offset(f"/v2/rule-based-segments/ws/{ws}")
            ]
            if large_segments_in_plan:
                try:
                    tables["large_segments"] += [
                        {**g, **context} for g in self.list_or_offset(f"/v2/large-segments/ws/{ws}")
                    ]
                except PlanLacksFeature:
                    large_segments_in_plan = False
            for environment in environments:
                env = environment["id"]
                env_context = {**context, "environment_id": env}
                tables["feature_flag_definitions"] += [
                    {**d, **env_context}
                    for d in self.offset_pages(f"/v2/splits/ws/{ws}/environments/{env}", 50)
                ]
                active = self.offset_pages(f"/v2/segments/ws/{ws}/environments/{env}", 50)
                tables["environment_segments"] += [{**s, **env_context} for s in active]
                tables["rule_based_segment_definitions"] += [
                    {**d, **env_context}
                    for d in self.list_or_offset(
                        f"/v2/rule-based-segments/ws/{ws}/environments/{env}"
                    )
                ]
                if large_segments_in_plan:
                    tables["environment_large_segments"] += [
                        {**d, **env_context}
                        for d in self.list_or_offset(
                            f"/v2/large-segments/ws/{ws}/environments/{env}"
                        )
                    ]
                for segment in active:
                    name = segment["name"]
                    tables["segments_keys"] += [
                        {"key": key, **env_context, "segment_name": name}
                        for key in self.key_pages(f"/v2/segments/{env}/{name}/keys")
                    ]
        for status in USER_STATUSES:
            tables["users"] += self.marker_pages("/v2/users", 200, {"status": status})
        tables["groups"] = self.offset_pages("/v2/groups", 200)
        for status in CHANGE_REQUEST_STATUSES:
            tables["change_requests"] += self.marker_pages(
                "/v2/changeRequests", 100, {"status": status}
            )
        return tables


def keyed(table: str, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rows by natural key; fails on duplicates, which a correct crawl never produces."""
    result: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[column] for column in NATURAL_KEYS[table])
        assert key not in result, f"duplicate {table} row for key {key}"
        result[key] = row
    return result
