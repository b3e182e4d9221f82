"""The dlt source for the Split Admin API: one dlt resource per table of the endpoint table.

Resources are built from ``settings.ENDPOINTS`` with dlt's resource and transformer
machinery: workspace tables are transformers over ``workspaces``, environment tables over
``environments``, ``segments_keys`` over ``environment_segments``, so a child's requests
follow its parent's rows, and every scope's read runs in dlt's worker pool (the
transport's in-flight bound and pacer keep the total within the rate limit).

Each scope (a workspace's flags, an environment's definitions, a status of users) is read
whole by ``reading.read_scope`` before any of it is yielded: pages are validated against the
endpoint's documented shape, re-read if they moved, and only a complete, consistent read
reaches dlt. That is why the source does not use rest_api's streaming page loop, whose pages
are handed to dlt as they arrive and cannot be taken back.

Write semantics: each table is merged with dlt's ``delete-insert`` (``scd2`` for flag
definitions) and a ``destination_scope`` that covers exactly the scopes this run fetched.
A run replaces its scopes atomically and never touches other workspaces or environments.
An empty scope still runs its scoped merge (``MaterializeEmptyScope``), so rows of objects
deleted in Split disappear even when nothing is left in that scope.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import dlt
import pyarrow as pa
from dlt.extract.items_transform import ItemTransform
from dlt.sources import DltResource

from analytics_assets.split_source import paging_variants
from analytics_assets.split_source.cancellation import Cancellation
from analytics_assets.split_source.errors import SplitApiError, SplitConfigurationError
from analytics_assets.split_source.pacing import RateLimiter
from analytics_assets.split_source.paging import MarkerPaging, OffsetPaging, Paging, SinglePage
from analytics_assets.split_source.reading import read_offset_scope_concurrently, read_scope
from analytics_assets.split_source.schema import column_hints
from analytics_assets.split_source.settings import (
    ENDPOINTS,
    ENDPOINTS_BY_TABLE,
    Endpoint,
    SplitSettings,
)
from analytics_assets.split_source.stats import RequestStats
from analytics_assets.split_source.transport import RequestContext, SplitTransport

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
        """SQL condition selecting the destination rows this run replaces (dlt merge hint).

        Parenthesised: dlt joins it to its own conditions with AND (scd2 retires only active
        rows: ``... AND _dlt_valid_to IS NULL AND <scope>``), where a bare OR would also
        match every row of a deleted workspace or environment, retired ones included."""
        if endpoint.scope == "org" or self.is_whole_organisation:
            return "1 = 1"
        if self.environments is not None:
            condition = _in("environment_id", [e.environment_id for e in self.environments])
            if self.known_environment_ids is not None:
                condition += " OR " + _not_in("environment_id", self.known_environment_ids)
            return f"({condition})"
        assert self.workspace_ids is not None
        condition = _in("workspace_id", self.workspace_ids)
        if self.known_workspace_ids is not None:
            condition += " OR " + _not_in("workspace_id", self.known_workspace_ids)
        return f"({condition})"


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


def _keep_what_the_warehouse_has(endpoint: Endpoint) -> Any:
    """What a refused optional table loads: the table, created if the warehouse has none yet
    (so the models can read it, empty), and no row replaced, since the scope of this load's
    merge selects none. Its rows stay as the last answered sync left them."""
    hints = dlt.mark.make_hints(
        write_disposition={
            **_write_disposition(endpoint, SyncScope()),
            "destination_scope": "1 = 0",
        }
    )
    return dlt.mark.with_hints(dlt.mark.materialize_table_schema(), hints)


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


def paging_for(endpoint: Endpoint) -> Paging:
    """How an endpoint's pages are read, from its row of the endpoint table."""
    if endpoint.pagination in ("list_or_offset", "attribute_markers"):
        return paging_variants.paging_for(endpoint)
    if endpoint.pagination == "offset":
        assert endpoint.page_size and endpoint.total
        totals = tuple(dict.fromkeys((endpoint.total, "count", "totalCount")))
        if endpoint.total == "totalCount":
            totals = ("totalCount",)
        return OffsetPaging(endpoint.page_size, endpoint.records, totals)
    if endpoint.pagination == "marker":
        assert endpoint.page_size
        return MarkerPaging(endpoint.page_size, tuple(endpoint.records.split(",")))
    return SinglePage()


def _rows(items: Any) -> Iterator[dict[str, Any]]:
    """Parent items as rows: a page (list) or one row; dlt's markers are not rows."""
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict):
            yield item


class _Tables:
    """Builds the resources of one source: one transport, one scope, one set of settings."""

    def __init__(self, transport: SplitTransport, scope: SyncScope, settings: SplitSettings):
        self.transport = transport
        self.scope = scope
        self.settings = settings
        # A 402 on large segments means the plan has none (contract §3.5): the first answer
        # decides for every scope, so the others ask nothing (None: not known yet).
        self._paywalled: bool | None = None
        self._paywall_lock = threading.Lock()

    def read(
        self, endpoint: Endpoint, placeholders: dict[str, str], scope: tuple[tuple[str, str], ...]
    ) -> list[dict[str, Any]] | None:
        """One scope of one endpoint; None when the API refused a table that is optional."""
        path = endpoint.path.format(
            **{name: quote(value, safe="") for name, value in placeholders.items()}
        )
        params: dict[str, Any] = {k: v.format(**placeholders) for k, v in endpoint.params.items()}
        context = RequestContext(endpoint, path, scope)
        if endpoint.paywall_means_empty:
            return self._read_unless_paywalled(context, params)
        try:
            return read_scope(self.transport, context, params, paging_for(endpoint))
        except SplitApiError as error:
            if endpoint.optional_for_harness and error.status in self._refused_statuses():
                logger.warning(
                    "Split API refused %s with HTTP %s; skipping table `%s` and keeping what"
                    " the warehouse has. Users and groups need an Admin API key with GLOBAL"
                    " scope, and are unavailable for Harness-migrated accounts.",
                    context.where,
                    error.status,
                    endpoint.table,
                )
                return None
            raise

    def _read_unless_paywalled(
        self, context: RequestContext, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if self._paywalled is False:
            return read_scope(self.transport, context, params, paging_for(context.endpoint))
        with self._paywall_lock:
            if self._paywalled:
                return []
            try:
                records = read_scope(self.transport, context, params, paging_for(context.endpoint))
            except SplitApiError as error:
                if error.status != 402:
                    raise
                logger.warning(
                    "Split API %s answered 402 (Payment Required): this organisation's plan"
                    " has no large segments; %s and the other large-segment tables stay empty.",
                    context.where,
                    context.endpoint.table,
                )
                self._paywalled = True
                return []
            self._paywalled = False
            return records

    def _refused_statuses(self) -> set[int]:
        return {403, 404, 410} | ({401} if self.settings.auth_scheme == "x-api-key" else set())

    def resource_options(self, endpoint: Endpoint) -> dict[str, Any]:
        options: dict[str, Any] = {
            "name": endpoint.table,
            "primary_key": None if endpoint.history else list(endpoint.primary_key),
            "write_disposition": _write_disposition(endpoint, self.scope),
            "columns": {**column_hints(endpoint), **_key_columns(endpoint)},
        }
        if endpoint.history:
            # Targeting rules and treatments stay whole JSON documents in each version's row,
            # so a version is one row. dlt's row hash covers every field: any change in Split
            # (including lastTrafficReceivedAt) makes a new version; the current one is exact.
            options["max_table_nesting"] = 0
        return options

    def organisation_table(self, endpoint: Endpoint) -> DltResource:
        def statuses() -> Iterator[Any]:
            for status in endpoint.statuses or (None,):
                yield lambda status=status: self._organisation_scope(endpoint, status)

        resource = dlt.resource(statuses, parallelized=True, **self.resource_options(endpoint))
        # An organisation without groups or change requests still gets the (empty) table.
        resource.add_step(MaterializeEmptyScope())
        return resource

    def _organisation_scope(self, endpoint: Endpoint, status: str | None) -> Any:
        placeholders = {"status": status} if status else {}
        scope = (("status", status),) if status else ()
        records = self.read(endpoint, placeholders, scope)
        if records is None:
            return _keep_what_the_warehouse_has(endpoint)
        return records

    def workspaces(self) -> DltResource:
        endpoint = ENDPOINTS_BY_TABLE["workspaces"]
        if self.scope.workspace_ids is not None:
            return _static_resource("workspaces", [{"id": w} for w in self.scope.workspace_ids])

        def workspaces() -> Iterator[dict[str, Any]]:
            # One row at a time, so each workspace's children are read in parallel.
            yield from self.read(endpoint, {}, ()) or []

        return dlt.resource(workspaces, **self.resource_options(endpoint))

    def child_table(self, endpoint: Endpoint, parent: DltResource) -> DltResource:
        fetch = self._environment_scope if endpoint.scope == "environment" else self.workspace_scope
        if endpoint.parent == "traffic_types":
            fetch = self._traffic_type_scope

        def scopes(items: Any) -> Iterator[Callable[[], Any]]:
            for row in _rows(items):
                # Deferred calls run in dlt's worker pool: many scopes in flight at once.
                yield lambda row=row: fetch(endpoint, row)

        resource = dlt.transformer(
            scopes, data_from=parent, parallelized=True, **self.resource_options(endpoint)
        )
        resource.add_step(MaterializeEmptyScope())
        return resource

    def workspace_scope(self, endpoint: Endpoint, workspace: dict[str, Any]) -> list[dict]:
        """One workspace's rows of a workspace-scoped endpoint, each with its workspace id."""
        workspace_id = str(workspace["id"])
        records = self.read(
            endpoint, {"workspace_id": workspace_id}, (("workspace", workspace_id),)
        )
        return [{**record, "workspace_id": workspace_id} for record in records or []]

    def _traffic_type_scope(self, endpoint: Endpoint, traffic_type: dict[str, Any]) -> list[dict]:
        workspace_id = str(traffic_type["workspace_id"])
        traffic_type_id = str(traffic_type["id"])
        records = self.read(
            endpoint,
            {"workspace_id": workspace_id, "traffic_type_id": traffic_type_id},
            (("workspace", workspace_id), ("traffic type", traffic_type_id)),
        )
        context = {"workspace_id": workspace_id, "traffic_type_id": traffic_type_id}
        return paging_variants.with_context(records or [], context)

    def _environment_scope(self, endpoint: Endpoint, environment: dict[str, Any]) -> list[dict]:
        workspace_id = str(environment["workspace_id"])
        environment_id = str(environment["id"])
        records = self.read(
            endpoint,
            {"workspace_id": workspace_id, "environment_id": environment_id},
            (("workspace", workspace_id), ("environment", environment_id)),
        )
        return [
            {**record, "environment_id": environment_id, "workspace_id": workspace_id}
            for record in records or []
        ]

    def environments(self, workspaces: DltResource) -> DltResource:
        if self.scope.environments is not None:
            return _static_resource(
                "environments",
                [
                    {"id": e.environment_id, "workspace_id": e.workspace_id}
                    for e in self.scope.environments
                ],
            )
        return self.child_table(ENDPOINTS_BY_TABLE["environments"], workspaces)

    def segments_keys(self, environment_segments: DltResource) -> DltResource:
        endpoint = ENDPOINTS_BY_TABLE["segments_keys"]
        paging = paging_for(endpoint)
        assert isinstance(paging, OffsetPaging)
        arrow_schema = pa.schema(
            [
                pa.field(name, pa.string(), nullable=False)
                for name in ("environment_id", "segment_name", "key", "workspace_id")
            ]
        )

        def fetch_segment(segment: dict[str, Any]) -> pa.Table:
            environment_id = str(segment["environment_id"])
            name = str(segment["name"])
            workspace_id = str(segment.get("workspace_id"))
            path = endpoint.path.format(
                environment_id=quote(environment_id, safe=""), segment_name=quote(name, safe="")
            )
            context = RequestContext(
                endpoint,
                path,
                (("workspace", workspace_id), ("environment", environment_id), ("segment", name)),
            )
            records = read_offset_scope_concurrently(
                self.transport, context, {}, paging, self.transport.in_flight.workers
            )
            # Only the key strings are kept: the parsed pages are dropped here.
            keys = [str(record["key"]) for record in records]
            count = len(keys)
            return pa.Table.from_arrays(
                [
                    pa.array([environment_id] * count, pa.string()),
                    pa.array([name] * count, pa.string()),
                    pa.array(keys, pa.string()),
                    pa.array([workspace_id] * count, pa.string()),
                ],
                schema=arrow_schema,
            )

        scheduled: set[tuple[str, str]] = set()

        def segments_keys(segments: Any) -> Iterator[Callable[[], pa.Table]]:
            for segment in _rows(segments):
                pair = (segment["environment_id"], segment["name"])
                if pair in scheduled:
                    continue
                scheduled.add(pair)
                yield lambda segment=segment: fetch_segment(segment)

        resource = dlt.transformer(
            segments_keys,
            data_from=environment_segments,
            name="segments_keys",
            primary_key=list(endpoint.primary_key),
            # Each (environment, segment) is read once and whole, its keys unique (the read
            # checks it): the merge can skip its own de-duplication (a window over every
            # staged row, the largest memory cost of loading a million keys).
            write_disposition={**_write_disposition(endpoint, self.scope), "deduplicated": True},
            parallelized=True,
        )
        resource.add_step(_EmptyArrowScope())
        return resource


def read_listing(settings: SplitSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The organisation's workspaces and their environments, read straight from the API with
    no pipeline: what checking names given on the command line needs, and nothing more."""
    tables = _Tables(SplitTransport(settings), SyncScope(), settings)
    workspaces = tables.read(ENDPOINTS_BY_TABLE["workspaces"], {}, ()) or []
    environments = ENDPOINTS_BY_TABLE["environments"]
    return workspaces, [
        environment
        for workspace in workspaces
        for environment in tables.workspace_scope(environments, workspace)
    ]


def _static_resource(name: str, rows: Sequence[dict[str, Any]]) -> DltResource:
    """A parent that yields known scope rows instead of asking the API for them."""

    def rows_one_by_one() -> Iterator[dict[str, Any]]:
        for row in rows:
            yield dict(row)

    return dlt.resource(rows_one_by_one, name=name, selected=False)


_extract_threads_offered: int | None = None


def _offer_extract_threads(workers: int) -> None:
    """Give dlt's extract pool as many threads as requests may be in flight.

    dlt runs each scope's read in that pool, 5 threads unless configured. A scope keeps about
    one request in flight, so 5 threads cap a sync at 5 / latency requests a second: 12.5 at
    400 ms, below a limit of 20. A value the user configured (``EXTRACT__WORKERS``,
    ``[extract] workers`` in config.toml, ``pipeline.extract(workers=)``) is left alone."""
    global _extract_threads_offered
    configured = dlt.config.get("extract.workers")
    if configured is None or configured == _extract_threads_offered:
        dlt.config["extract.workers"] = workers
        _extract_threads_offered = workers


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
    cancellation: Cancellation | None = None,
    limiter: RateLimiter | None = None,
) -> list[DltResource]:
    """All Split Admin tables for one scope of the organisation.

    Args:
        settings: how to reach the API; default: resolved from SPLIT_* variables.
        scope: what to fetch and replace; default: the whole organisation.
        stats: request counters to fill (requests, retries, 429s, waits).
        cancellation: stops every request and wait of this source when cancelled.
        limiter: pacing and 429 waits shared with other sources of the same run (default:
            this source's own).
    """
    settings = settings or SplitSettings.from_environment()
    scope = scope or SyncScope()
    # segments_keys is loaded as Arrow; dlt adds _dlt_load_id to Arrow rows only when asked.
    # Every table then carries the load id, as JSON-normalized tables always do.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    transport = SplitTransport(settings, stats, cancellation, limiter)
    _offer_extract_threads(transport.in_flight.workers)
    tables = _Tables(transport, scope, settings)
    wanted = scope.tables()

    workspaces = tables.workspaces()
    built: dict[str, DltResource] = {"workspaces": workspaces}
    built["environments"] = tables.environments(workspaces)
    for endpoint in ENDPOINTS:
        if endpoint.table in built or endpoint.table not in wanted:
            continue
        if endpoint.scope == "org":
            built[endpoint.table] = tables.organisation_table(endpoint)
        elif endpoint.table == "segments_keys":
            continue
        elif endpoint.parent == "traffic_types":
            if "traffic_types" not in built:
                built["traffic_types"] = tables.child_table(
                    ENDPOINTS_BY_TABLE["traffic_types"], workspaces
                )
            built[endpoint.table] = tables.child_table(endpoint, built["traffic_types"])
        elif endpoint.scope == "workspace":
            built[endpoint.table] = tables.child_table(endpoint, workspaces)
        else:
            built[endpoint.table] = tables.child_table(endpoint, built["environments"])
    if "segments_keys" in wanted:
        built["segments_keys"] = tables.segments_keys(built["environment_segments"])
    return [built[name] for name in built]
