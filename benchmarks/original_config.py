"""Contender (a): the user's original rest_api configuration, run through plain dlt.

``original_config`` is the configuration exactly as written in
``shared/original-connector-config.md`` (only the base URL and the key differ).
``adapted_config`` applies the smallest changes that let dlt run it at all, each one listed
in ``ADAPTATIONS`` (and in docs/benchmarks.md), plus the benchmark's safety caps. Nothing
else is fixed: the offset paginators stay on the marker and bare-array endpoints, the page
size stays 50, the selectors stay as written.

The run is in two stages because rest_api gives a child resource a single parent, and the
key endpoint needs an (environment, segment) pair that no single resource of the config
lists: stage 1 runs the ten other resources; stage 2 pairs the environments and segments of
each workspace that stage 1 loaded and runs ``segments_keys`` over those pairs. Stage 2
makes no request that a one-stage run would not also make.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator
from requests.adapters import HTTPAdapter

# The configuration as the user wrote it (base URL and key are filled in by the caller).
_RETRY = {"retry_on_status_codes": [429], "max_retries": 3, "backoff_factor": 2}


def _resource(name: str, path: str, selector: Any, retry: dict[str, Any] = _RETRY) -> dict:
    return {
        "name": name,
        "endpoint": {
            "path": path,
            "data_selector": selector,
            "paginator": {"type": "offset", "limit": 50, "offset_param": "offset"},
            "error_handler": dict(retry),
        },
    }


def original_config(base_url: str, api_key: str) -> dict[str, Any]:
    """The original configuration, verbatim apart from ``base_url`` and the token."""
    return {
        "client": {"base_url": base_url, "auth": {"type": "bearer", "token": api_key}},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            _resource("change_requests", "/v2/changeRequests", "data"),
            _resource("workspaces", "/v2/workspaces", "objects"),
            _resource("flag_sets", "/v3/flag-sets", "data"),
            _resource("users", "/v2/users", "data"),
            _resource("segments", "/v2/segments/ws/{workspaceId}", "objects"),
            _resource(
                "segments_keys",
                "/v2/segments/{environment_id}/{segment_name}/keys",
                [],
                {"retry_on_status_codes": [429, 404], "max_retries": 3, "backoff_factor": 2},
            ),
            _resource("rollout_statuses", "/v2/rolloutStatuses", []),
            _resource("environments", "/v2/environments/ws/{wsId}", []),
            _resource("traffic_types", "/v2/trafficTypes/ws/{wsId}", []),
            _resource("groups", "/v2/groups", "objects"),
            _resource("feature_flags", "/v2/splits/ws/{wsId}", "objects"),
        ],
    }


ADAPTATIONS: tuple[tuple[str, str], ...] = (
    (
        "base_url, token",
        "Pointed at the sandbox (`.../internal/api`) with a sandbox key. The leading `/` of the"
        " paths is kept; dlt joins it to the base URL path.",
    ),
    (
        "`{workspaceId}`, `{wsId}` → `{resources.workspaces.id}`",
        "rest_api resolves a parent field only through its own placeholder syntax; the"
        " config's names are unknown to it (`segments`, `environments`, `traffic_types`,"
        " `feature_flags`).",
    ),
    (
        "`include_from_parent: [id]` on `environments` and `segments`",
        "Adds `_workspaces_id`, so that stage 2 can pair each environment with the segments of"
        " its own workspace (nothing else in the config says which workspace a row is from).",
    ),
    (
        "`segments_keys` over (environment, segment) pairs (stage 2)",
        "`{environment_id}`/`{segment_name}` come from a parent that yields every environment ×"
        " segment pair of the same workspace, collected from the rows stage 1 fetched as they"
        " passed (no extra requests). That is the original connector's partitioning (Airbyte's"
        " cartesian partition router).",
    ),
    (
        "`include_from_parent: [environment_id, segment_name]` on `segments_keys`",
        "Only so that its keys can be compared with the truth by their natural key; it adds"
        " two columns and no request.",
    ),
    (
        "`rolloutStatuses` gets `wsId`, `flag-sets` gets `workspace_id` (from workspaces)",
        "Both are required by the API (contract §2.7, §2.8; HTTP 400 without them, which"
        " fails the run); the original Airbyte connector sends them, the config as transcribed"
        " does not.",
    ),
    (
        "primary key: `segments` → `name`, `segments_keys` → none",
        "Neither record has the default key `id`, and dlt refuses a merge on a missing key"
        " column. The original connector keyed segments by `name` and keys by a per-run"
        " timestamp (so: no deduplication), which these reproduce (contract §4).",
    ),
    (
        "404 on `segments_keys` → ignore (`response_actions`)",
        "The config says retry 404 (3 times) and then fail; a pair whose segment is not"
        " active in that environment is always 404 (contract §2.6), so the run would fail at"
        " the first one. Ignoring it is the original connector's actual behaviour.",
    ),
    (
        "`error_handler` → dlt runtime settings",
        "`error_handler` is not a rest_api key (dlt rejects it). Its intent is set through"
        " dlt's own retry settings: `request_max_attempts=4` (1 + 3 retries) and"
        " `request_backoff_factor=2`; dlt retries 429 and 5xx (and honours Retry-After).",
    ),
    (
        '`data_selector: []` → `"$"`',
        'dlt accepts only a string or JSONPath; `[]` (the original connector\'s "the root")'
        " is `$` in JSONPath. For bare arrays that is the array; for the keys envelope it is"
        " the envelope as one record, as the original connector did (contract §4).",
    ),
    (
        "offset paginator `total_path: null`",
        "dlt's OffsetPaginator defaults to a `total` field that no Split envelope has and"
        " raises on the first page; without a total it pages until an empty page, which is"
        " what the config's author expected from an offset paginator.",
    ),
    (
        "safety caps: `maximum_offset` per scope, plus a request and a time budget",
        "Marker and bare-array endpoints ignore `offset`, so their pages repeat until a cap"
        " stops them. `maximum_offset` bounds each paginated scope; past the request or time"
        " budget the session answers every further request with an empty page (not sent to"
        " the API), so the run ends and loads what it has. Either cap firing means the"
        " configuration did not terminate on its own.",
    ),
)


class CappedOffsetPaginator(OffsetPaginator):
    """dlt's OffsetPaginator as configured, plus a record of whether the cap stopped it."""

    hits: list[str] = []
    _lock = threading.Lock()

    def __init__(self, label: str, maximum_offset: int) -> None:
        super().__init__(
            limit=50, offset_param="offset", total_path=None, maximum_offset=maximum_offset
        )
        self.label = label

    def update_state(self, response: requests.Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        if not self.has_next_page and data and self.current_value >= (self.maximum_value or 0):
            with self._lock:
                CappedOffsetPaginator.hits.append(self.label)


class BudgetAdapter(HTTPAdapter):
    """Counts requests on the wire; past the request or time budget, answers an empty page.

    It is mounted under dlt's own retrying session, so every retry counts, and the budget
    ends the run cleanly: paginators stop on the empty page and dlt loads what it has.
    """

    def __init__(self, max_requests: int, max_seconds: float) -> None:
        super().__init__(pool_connections=4, pool_maxsize=8, max_retries=0)
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.started = time.monotonic()
        self.sent = 0
        self.short_circuited = 0
        self.status_counts: dict[int, int] = {}
        self._lock = threading.Lock()

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:  # type: ignore[override]
        with self._lock:
            over = (
                self.sent >= self.max_requests or time.monotonic() - self.started > self.max_seconds
            )
            if over:
                self.short_circuited += 1
            else:
                self.sent += 1
        if over:
            return _empty_page(request)
        response = super().send(request, *args, **kwargs)
        with self._lock:
            self.status_counts[response.status_code] = (
                self.status_counts.get(response.status_code, 0) + 1
            )
        return response


def budget_session(adapter: BudgetAdapter) -> requests.Session:
    """dlt's default rest_api session (retries 429/5xx) with the budget adapter mounted.

    The retry settings are the config's ``error_handler``: 1 + 3 attempts, backoff factor 2.
    """
    from dlt.sources.helpers.requests import Client

    session = Client(
        raise_for_status=False, request_max_attempts=4, request_backoff_factor=2
    ).session
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _empty_page(request: requests.PreparedRequest) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = b"[]"
    response.headers["Content-Type"] = "application/json"
    response.url = request.url or ""
    response.request = request
    return response


def adapted_config(
    base_url: str,
    api_key: str,
    session: requests.Session,
    maximum_offset: int,
    pairs: PairCollector,
    only: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Stage 1: the original configuration minus ``segments_keys``, with the adaptations.

    ``only`` keeps just those resources (the throughput run needs only what leads to keys).
    """
    config = copy.deepcopy(original_config(base_url, api_key))
    config["client"]["session"] = session
    resources = []
    for resource in config["resources"]:
        if resource["name"] == "segments_keys" or (only and resource["name"] not in only):
            continue
        _adapt_endpoint(resource, maximum_offset)
        if resource["name"] in ("environments", "segments"):
            resource["include_from_parent"] = ["id"]
            resource["processing_steps"] = [{"map": pairs.observer(resource["name"])}]
        if resource["name"] == "segments":
            resource["primary_key"] = "name"
        if resource["name"] == "rollout_statuses":
            resource["endpoint"]["params"] = {"wsId": "{resources.workspaces.id}"}
        if resource["name"] == "flag_sets":
            resource["endpoint"]["params"] = {"workspace_id": "{resources.workspaces.id}"}
        resources.append(resource)
    config["resources"] = resources
    return config


class PairCollector:
    """Sees the environments and segments stage 1 fetched, and pairs them per workspace."""

    def __init__(self) -> None:
        self.environments: dict[str, set[str]] = {}
        self.segments: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def observer(self, table: str) -> Any:
        target = self.environments if table == "environments" else self.segments
        field = "id" if table == "environments" else "name"

        def observe(record: dict[str, Any]) -> dict[str, Any]:
            with self._lock:
                target.setdefault(record["_workspaces_id"], set()).add(record[field])
            return record

        return observe

    def pairs(self) -> list[dict[str, str]]:
        return [
            {"environment_id": environment, "segment_name": segment}
            for workspace in sorted(self.environments)
            for environment in sorted(self.environments[workspace])
            for segment in sorted(self.segments.get(workspace, ()))
        ]


def _adapt_endpoint(resource: dict[str, Any], maximum_offset: int) -> None:
    endpoint = resource["endpoint"]
    for name in ("{workspaceId}", "{wsId}"):
        endpoint["path"] = endpoint["path"].replace(name, "{resources.workspaces.id}")
    endpoint.pop("error_handler")
    if endpoint["data_selector"] == []:
        endpoint["data_selector"] = "$"
    endpoint["paginator"] = CappedOffsetPaginator(resource["name"], maximum_offset)


def keys_config(
    base_url: str,
    api_key: str,
    session: requests.Session,
    maximum_offset: int,
    pairs: list[dict[str, str]],
) -> dict[str, Any]:
    """Stage 2: ``segments_keys`` as written, over the environment × segment pairs."""
    import dlt

    config = copy.deepcopy(original_config(base_url, api_key))
    config["client"]["session"] = session
    resource = next(r for r in config["resources"] if r["name"] == "segments_keys")
    _adapt_endpoint(resource, maximum_offset)
    resource["endpoint"]["path"] = (
        "/v2/segments/{resources.environment_segment_pairs.environment_id}"
        "/{resources.environment_segment_pairs.segment_name}/keys"
    )
    resource["endpoint"]["response_actions"] = [{"status_code": 404, "action": "ignore"}]
    resource["primary_key"] = None

    def environment_segment_pairs() -> Iterator[list[dict[str, str]]]:
        yield pairs

    parent = dlt.resource(
        environment_segment_pairs, name="environment_segment_pairs", selected=False
    )
    # Context columns, so the keys can be compared with the truth by their natural key.
    resource["include_from_parent"] = ["environment_id", "segment_name"]
    config["resources"] = [parent, resource]
    return config
