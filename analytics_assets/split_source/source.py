"""The dlt source for the Split Admin API, built on dlt's rest_api.

Every table in ``settings.ENDPOINTS`` becomes a rest_api resource; parent/child paths use
rest_api's resolve mechanism (``{resources.<parent>.<field>}``). Two places go beyond the
declarative config, through dlt's own extension points:

- ``segments_keys`` is a parallelized dlt transformer over ``environment_segments``: segment
  names must be URL-quoted in the path, and its pages are loaded as Arrow tables because it
  is by far the largest table (up to 100,000 keys per segment).
- Every scoped table gets a step that turns an empty scope's empty page into dlt's
  "materialize table" marker, so the load still runs the scoped merge and deletes rows that
  vanished from Split even when nothing at all is left in that scope.

Write semantics: each table is merged with dlt's ``delete-insert`` (``scd2`` for flag
definitions) and a ``destination_scope`` that covers exactly the scopes this run fetched.
A run replaces its scopes atomically and never touches other workspaces or environments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import dlt
import pyarrow as pa
from dlt.extract.items_transform import ItemTransform
from dlt.sources import DltResource
from dlt.sources.helpers.rest_client.exceptions import IgnoreResponseException
from dlt.sources.rest_api import rest_api_resources

from analytics_assets.split_source.client import (
    RequestStats,
    SplitMarkerPaginator,
    SplitOffsetPaginator,
    SplitSession,
)
from analytics_assets.split_source.errors import SplitConfigurationError
from analytics_assets.split_source.schema import column_hints
from analytics_assets.split_source.settings import (
    ENDPOINTS,
    ENDPOINTS_BY_TABLE,
    Endpoint,
    SplitSettings,
)

logger = logging.getLogger("analytics_assets.split_source")

SOURCE_NAME = "split"


@dataclass(frozen=True)
class EnvironmentRef:
    """An environment and the workspace it belongs to (both are needed in API paths)."""

    workspace_id: str
    environment_id: str


@dataclass(frozen=True)
class SyncScope:
    """Which part of the organisation one run fetches, and so which rows it replaces.

    - the whole organisation (the default);
    - some workspaces (``workspace_ids``): their workspace- and environment-scoped tables;
    - some environments (``environments``): their environment-scoped tables only.

    ``known_workspace_ids`` / ``known_environment_ids`` (optional) are every id that still
    exists; rows of any other id are removed too, so a deleted workspace or environment
    leaves no orphans behind even though it can no longer be fetched.
    """

    workspace_ids: tuple[str, ...] | None = None
    environments: tuple[EnvironmentRef, ...] | None = None
    known_workspace_ids: tuple[str, ...] | None = None
    known_environment_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.workspace_ids is not None and self.environments is not None:
            raise SplitConfigurationError("Select workspaces or environments, not both.")

    @property
    def is_whole_organisation(self) -> bool:
        return self.workspace_ids is None and self.environments is None

    def tables(self) -> tuple[str, ...]:
        """The tables this scope can fill."""
        if self.environments is not None:
            allowed = {"environment"}
        elif self.workspace_ids is not None:
            allowed = {"workspace", "environment"}
        else:
            allowed = {"org", "workspace", "environment"}
        return tuple(e.table for e in ENDPOINTS if e.scope in allowed)

    def destination_scope(self, endpoint: Endpoint) -> str:
        """SQL condition selecting the destination rows this run replaces (dlt merge hint)."""
        if endpoint.scope == "org" or self.is_whole_organisation:
            return "1 = 1"
        if self.environments is not None:
            condition = _in("environment_id", [e.environment_id for e in self.environments])
            if self.known_environment_ids is not None:
                condition += " OR " + _not_in("environment_id", self.known_environment_ids)
            return condition
        assert self.workspace_ids is not None
        condition = _in("workspace_id", self.workspace_ids)
        if self.known_workspace_ids is not None:
            condition += " OR " + _not_in("workspace_id", self.known_workspace_ids)
        return condition


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: Sequence[str]) -> str:
    if not values:
        return "1 = 0"
    return f"{column} IN ({', '.join(_sql_literal(v) for v in values)})"


def _not_in(column: str, values: Sequence[str]) -> str:
    if not values:
        return "1 = 1"
    return f"{column} NOT IN ({', '.join(_sql_literal(v) for v in values)})"


class MaterializeEmptyScope(ItemTransform[Any, Any]):
    """Turns the empty page of an empty scope into dlt's materialize marker.

    Without it, a scope whose last object was deleted produces no rows, dlt creates no load
    job for the table, and the scoped merge that deletes the stale rows never runs.
    """

    placement_affinity = 1.0  # keep it after every other step

    def __init__(self) -> None:
        super().__init__(lambda item: item)

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if isinstance(item, list) and not item:
            return dlt.mark.materialize_table_schema()
        return item


def _rename_parent_fields(mapping: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """rest_api adds parent fields as `_<parent>_<field>`; give them their table names."""

    def rename(record: dict[str, Any]) -> dict[str, Any]:
        for source_name, target_name in mapping.items():
            if source_name in record:
                record[target_name] = record.pop(source_name)
        return record

    return rename


def _write_disposition(endpoint: Endpoint, scope: SyncScope) -> dict[str, Any]:
    disposition: dict[str, Any] = {
        "disposition": "merge",
        "strategy": "scd2" if endpoint.history else "delete-insert",
        "destination_scope": scope.destination_scope(endpoint),
    }
    return disposition


def _key_columns(endpoint: Endpoint) -> dict[str, Any]:
    """Typed key columns, so a table can be created (and scoped) before any row arrives."""
    names = list(endpoint.primary_key)
    if endpoint.scope == "environment":
        names.append("workspace_id")
    return {name: {"data_type": "text", "nullable": False} for name in dict.fromkeys(names)}


def _paginator(endpoint: Endpoint) -> Any:
    if endpoint.pagination == "offset":
        assert endpoint.page_size and endpoint.total
        return SplitOffsetPaginator(limit=endpoint.page_size, total_key=endpoint.total)
    if endpoint.pagination == "marker":
        return SplitMarkerPaginator()
    return "single_page"


def _harness_optional_hook(endpoint: Endpoint, settings: SplitSettings) -> Callable[..., Any]:
    """users/groups are deprecated for Harness-migrated accounts (contract §1.2): skip, warn."""
    refused = {403, 404, 410} | ({401} if settings.auth_scheme == "x-api-key" else set())

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        if response.status_code in refused:
            logger.warning(
                "Split API refused %s with HTTP %s; skipping table `%s` and keeping what the"
                " warehouse has. Users and groups need an Admin API key with GLOBAL scope, and"
                " are unavailable for Harness-migrated accounts.",
                endpoint.path,
                response.status_code,
                endpoint.table,
            )
            raise IgnoreResponseException

    return hook


def _resource_config(endpoint: Endpoint, scope: SyncScope, settings: SplitSettings) -> dict:
    placeholders = {"workspace_id": "{resources.workspaces.id}"}
    parent_fields: dict[str, str] = {}
    if endpoint.scope == "environment":
        placeholders = {
            "workspace_id": "{resources.environments.workspace_id}",
            "environment_id": "{resources.environments.id}",
        }
        parent_fields = {
            "_environments_workspace_id": "workspace_id",
            "_environments_id": "environment_id",
        }
    elif endpoint.scope == "workspace":
        parent_fields = {"_workspaces_id": "workspace_id"}
    if endpoint.statuses:
        placeholders["status"] = f"{{resources.{_status_resource(endpoint)}.status}}"

    params: dict[str, Any] = {k: v.format(**placeholders) for k, v in endpoint.params.items()}
    if endpoint.pagination in ("offset", "marker"):
        params["limit"] = endpoint.page_size
    endpoint_config: dict[str, Any] = {
        "path": endpoint.path.format(**placeholders),
        "params": params,
        "data_selector": endpoint.records,
        "paginator": _paginator(endpoint),
    }
    if endpoint.optional_for_harness:
        endpoint_config["response_actions"] = [_harness_optional_hook(endpoint, settings)]
    config: dict[str, Any] = {
        "name": endpoint.table,
        "endpoint": endpoint_config,
        "primary_key": None if endpoint.history else list(endpoint.primary_key),
        "write_disposition": _write_disposition(endpoint, scope),
        "columns": {**column_hints(endpoint), **_key_columns(endpoint)},
        # Every resource runs in dlt's worker pool, and a child's requests for different
        # parents too: with latency L and a limit R, R x L requests must be in flight to reach
        # the limit. The session's semaphore and pacer keep the total within bounds.
        "parallelized": True,
    }
    if parent_fields:
        config["include_from_parent"] = [
            name.removeprefix("_environments_").removeprefix("_workspaces_")
            for name in parent_fields
        ]
        config["processing_steps"] = [{"map": _rename_parent_fields(parent_fields)}]
    if endpoint.history:
        # Targeting rules and treatments stay whole JSON documents in each version's row, so
        # a version is one row. dlt's row hash covers every field: any change in Split
        # (including lastTrafficReceivedAt) makes a new version, and the current one is exact.
        config["max_table_nesting"] = 0
    return config


def _status_resource(endpoint: Endpoint) -> str:
    return f"{endpoint.table}_statuses"


def _static_resource(name: str, rows: Sequence[dict[str, Any]]) -> DltResource:
    """A parent that yields known scope rows instead of asking the API for them."""

    def rows_as_one_page() -> Iterator[list[dict[str, Any]]]:
        yield [dict(r) for r in rows]

    return dlt.resource(rows_as_one_page, name=name, selected=False)


def _segments_keys_resource(
    parent: DltResource, session: SplitSession, scope: SyncScope, settings: SplitSettings
) -> DltResource:
    endpoint = ENDPOINTS_BY_TABLE["segments_keys"]
    arrow_schema = pa.schema(
        [
            pa.field(name, pa.string(), nullable=False)
            for name in ("environment_id", "segment_name", "key", "workspace_id")
        ]
    )

    raise_for_status = _raise_for_status(endpoint)

    def get_page(url: str, offset: int) -> tuple[list[str], int] | None:
        """(keys, total) of one page; None when the segment is not active (any more) there.

        Only the key strings are kept: a page's parsed JSON is dropped as soon as it is read.
        """
        response = session.get(
            url,
            params={"limit": endpoint.page_size, "offset": offset},
            hooks={"response": [raise_for_status]},
        )
        if response.status_code == 404:  # let through only where it means "nothing here"
            return None
        body = response.json()
        return [r["key"] for r in body[endpoint.records]], int(body.get(endpoint.total) or 0)

    def read_keys(url: str) -> list[str]:
        """All keys of one segment, its pages after the first fetched concurrently.

        The first page gives the total, so every other offset is known at once: a large
        segment is not read one latency at a time (with R x latency > 1 a sequential tail
        would leave the rate limit unused). The result equals sequential offset paging: a
        short page or a total that grew meanwhile continues page by page from there.
        """
        first = get_page(url, 0)
        if first is None:
            return []
        keys, total = first
        step = next_offset = len(keys)
        if not step or next_offset >= total:
            return keys
        offsets = range(step, total, step)
        workers = min(len(offsets), settings.max_concurrent_requests)
        with ThreadPoolExecutor(workers, thread_name_prefix="split-segment-keys") as pool:
            pages = list(pool.map(lambda offset: get_page(url, offset), offsets))
        for offset, page in zip(offsets, pages, strict=True):
            if page is None:
                return keys  # deactivated while it was read: keep what was there
            if offset != next_offset:
                break  # an earlier page came back short: read the rest in order
            page_keys, total = page
            keys.extend(page_keys)
            next_offset += len(page_keys)
            if not page_keys:
                return keys
        while next_offset < total:
            page = get_page(url, next_offset)
            if page is None or not page[0]:
                break
            page_keys, total = page
            keys.extend(page_keys)
            next_offset += len(page_keys)
        return keys

    def fetch_segment(segment: dict[str, Any]) -> pa.Table:
        environment_id = segment["environment_id"]
        name = segment["name"]
        path = endpoint.path.format(
            environment_id=quote(environment_id, safe=""), segment_name=quote(name, safe="")
        )
        # Keys that shifted between pages while the segment changed can be read twice.
        keys = list(dict.fromkeys(read_keys(settings.normalized_base_url + path)))
        count = len(keys)
        return pa.Table.from_arrays(
            [
                pa.array([environment_id] * count, pa.string()),
                pa.array([name] * count, pa.string()),
                pa.array(keys, pa.string()),
                pa.array([segment.get("workspace_id")] * count, pa.string()),
            ],
            schema=arrow_schema,
        )

    scheduled: set[tuple[str, str]] = set()

    def segments_keys(segments: Iterable[dict[str, Any]]) -> Iterator[Callable[[], pa.Table]]:
        for segment in segments:
            pair = (segment["environment_id"], segment["name"])
            if pair in scheduled:
                continue  # listed twice (offset paging over a changing list): read it once
            scheduled.add(pair)
            # Deferred calls run in dlt's worker pool: keys of many segments in flight at once.
            yield lambda segment=segment: fetch_segment(segment)

    resource = dlt.transformer(
        segments_keys,
        data_from=parent,
        name="segments_keys",
        primary_key=list(endpoint.primary_key),
        # Each (environment, segment) is read once and whole, its keys de-duplicated above:
        # the staged rows are unique by the natural key, so the merge can skip its own
        # de-duplication (a window over every staged row, the largest memory cost of
        # loading a million keys: measured 559 -> 407 MB peak at 1.25M keys).
        write_disposition={**_write_disposition(endpoint, scope), "deduplicated": True},
        parallelized=True,
    )
    resource.add_step(_EmptyArrowScope())
    return resource


def _raise_for_status(endpoint: Endpoint) -> Callable[..., None]:
    """A response hook raising on error statuses, except a 404 where the endpoint says it
    means "nothing here" (segment keys, contract §2.6: the segment is not active there)."""

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        if not (endpoint.missing_is_empty and response.status_code == 404):
            response.raise_for_status()

    return hook


class _EmptyArrowScope(MaterializeEmptyScope):
    def __call__(self, item: Any, meta: Any = None) -> Any:
        if isinstance(item, pa.Table) and item.num_rows == 0:
            return dlt.mark.materialize_table_schema()
        return super().__call__(item, meta)


@dlt.source(name=SOURCE_NAME, max_table_nesting=1)
def split_source(
    settings: SplitSettings | None = None,
    scope: SyncScope | None = None,
    stats: RequestStats | None = None,
) -> list[DltResource]:
    """All Split Admin tables for one scope of the organisation.

    Args:
        settings: how to reach the API; default: resolved from SPLIT_* variables.
        scope: what to fetch and replace; default: the whole organisation.
        stats: request counters to fill (requests, retries, 429s, waits).
    """
    settings = settings or SplitSettings.from_environment()
    scope = scope or SyncScope()
    # segments_keys is loaded as Arrow; dlt adds _dlt_load_id to Arrow rows only when asked.
    # Every table then carries the load id, as JSON-normalized tables always do.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    session = SplitSession(settings, stats)
    tables = scope.tables()

    resources: list[Any] = []
    if scope.workspace_ids is not None:
        resources.append(_static_resource("workspaces", [{"id": w} for w in scope.workspace_ids]))
    if scope.environments is not None:
        resources.append(
            _static_resource(
                "environments",
                [
                    {"id": e.environment_id, "workspace_id": e.workspace_id}
                    for e in scope.environments
                ],
            )
        )
    for endpoint in ENDPOINTS:
        if endpoint.statuses and endpoint.table in tables:
            resources.append(
                _static_resource(
                    _status_resource(endpoint), [{"status": s} for s in endpoint.statuses]
                )
            )
    for endpoint in ENDPOINTS:
        if endpoint.table not in tables or endpoint.table == "segments_keys":
            continue
        resources.append(_resource_config(endpoint, scope, settings))

    config = {
        "client": {"base_url": settings.normalized_base_url, "session": session},
        "resource_defaults": {},
        "resources": resources,
    }
    built = {r.name: r for r in rest_api_resources(config)}  # type: ignore[arg-type]
    for endpoint in ENDPOINTS:
        if endpoint.scope != "org" and endpoint.table in built:
            built[endpoint.table].add_step(MaterializeEmptyScope())
    if "segments_keys" in tables:
        built["segments_keys"] = _segments_keys_resource(
            built["environment_segments"], session, scope, settings
        )
    return [built[name] for name in built]
