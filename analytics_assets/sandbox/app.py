"""The sandbox Starlette application: Admin API routes plus ``/_sandbox`` control routes.

API handlers only select data and wrap it in the right envelope; authentication, rate
limiting, faults, latency and statistics are applied around them by
:class:`analytics_assets.sandbox.gateway.ApiGateway`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from analytics_assets.sandbox.config import ConfigError, SandboxConfig
from analytics_assets.sandbox.endpoints import (
    API_PREFIX,
    CHANGE_REQUEST_STATUSES,
    DEFAULT_CHANGE_REQUEST_STATUSES,
    DEFAULT_USER_STATUSES,
    ENDPOINTS,
    ENDPOINTS_BY_TABLE,
    USER_STATUSES,
)
from analytics_assets.sandbox.faults import FaultInjector
from analytics_assets.sandbox.forms import ServedForms
from analytics_assets.sandbox.gateway import ApiGateway
from analytics_assets.sandbox.generate import build_organisation
from analytics_assets.sandbox.model import (
    Environment,
    MarkerIndex,
    Organisation,
    Workspace,
)
from analytics_assets.sandbox.pagination import (
    ApiError,
    attribute_page,
    bad_request,
    keys_envelope,
    list_or_offset,
    marker_envelope,
    not_found,
    offset_envelope,
)
from analytics_assets.sandbox.ratelimit import SlidingWindowRateLimiter
from analytics_assets.sandbox.stats import RequestStats
from analytics_assets.sandbox.truth import stream_ground_truth, stream_ndjson, summary


class SandboxState:
    """Everything a running sandbox holds: config, organisation, counters, limiter, faults."""

    def __init__(self, config: SandboxConfig, org: Organisation | None = None) -> None:
        self.config = config
        self.org = _served_as(
            org or build_organisation(config.seed, config.size, config.generation),
            config.drift,
            config.forms,
        )
        self.stats = RequestStats()
        self.rate_limiter = SlidingWindowRateLimiter(config.effective_rate_limit)
        self.faults = FaultInjector()
        self._control_lock = asyncio.Lock()

    async def apply(self, changes: dict[str, Any]) -> SandboxConfig:
        """Apply control changes; a new generation is built off the event loop, then swapped in."""
        async with self._control_lock:
            new = self.config.with_changes(changes)
            if new.generation != self.org.generation:
                self.org = await run_in_threadpool(
                    build_organisation, new.seed, new.size, new.generation
                )
            self.org = _served_as(self.org, new.drift, new.forms)
            if new.effective_rate_limit != self.config.effective_rate_limit:
                self.rate_limiter = SlidingWindowRateLimiter(new.effective_rate_limit)
            self.config = new
            return new


def _served_as(org: Organisation, drift: tuple[str, ...], forms: ServedForms) -> Organisation:
    """The organisation serving ``drift`` and ``forms``: a shallow copy, swapped in whole
    like a generation, so one request never mixes two forms."""
    if org.drift == drift and org.forms == forms:
        return org
    return dataclasses.replace(org, drift=drift, forms=forms)


def error_body(error: ApiError) -> bytes:
    """The Admin API's JSON error body (contract §1.3)."""
    return json.dumps(
        {
            "code": error.status,
            "message": error.message,
            "details": "",
            "transactionId": secrets.token_hex(6)[:11],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def error_response(error: ApiError) -> Response:
    return Response(error_body(error), status_code=error.status, media_type="application/json")


Handler = Callable[[Request, Organisation], Response]
"""An API handler: select data from one organisation snapshot, wrap it in its envelope."""


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox  # type: ignore[no-any-return]


def _workspace(org: Organisation, workspace_id: str | None) -> Workspace:
    workspace = org.workspace_by_id.get(workspace_id or "")
    if workspace is None:
        raise not_found(f"Could not find workspace {workspace_id}")
    return workspace


def _environment(org: Organisation, workspace: Workspace, environment_id: str) -> Environment:
    environment = org.environment_by_id.get(environment_id)
    if environment is None or environment.workspace_id != workspace.id:
        raise not_found(f"Could not find environment {environment_id} in workspace {workspace.id}")
    return environment


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise bad_request(f"Missing required query parameter '{name}'")
    return value


def _statuses(
    request: Request, allowed: tuple[str, ...], default: tuple[str, ...]
) -> tuple[str, ...]:
    status = request.query_params.get("status")
    if status is None or status == "":
        return default
    if status not in allowed:
        raise bad_request(f"Invalid status '{status}'; expected one of {', '.join(allowed)}")
    return (status,)


# --- the Admin API handlers, one per table -----------------------------------------------------


def workspaces(request: Request, org: Organisation) -> Response:
    """contract §2.1 — offset; optional `name` filter with `nameOp` IS/STARTS_WITH/CONTAINS."""
    items = org.workspaces
    name = request.query_params.get("name")
    if name:
        operation = request.query_params.get("nameOp", "IS").upper()
        tests: dict[str, Callable[[str], bool]] = {
            "IS": lambda value: value == name,
            "STARTS_WITH": lambda value: value.startswith(name),
            "CONTAINS": lambda value: name in value,
        }
        if operation not in tests:
            raise bad_request(f"Invalid nameOp '{operation}'; expected IS, STARTS_WITH or CONTAINS")
        items = [ws for ws in items if tests[operation](ws.name)]
    spec = ENDPOINTS_BY_TABLE["workspaces"]
    return JSONResponse(offset_envelope(items, request.query_params, spec, Workspace.record))


def environments(request: Request, org: Organisation) -> Response:
    """contract §2.2 — bare array, no pagination; 404 for an unknown workspace."""
    workspace = _workspace(org, request.path_params["ws"])
    return JSONResponse([env.record() for env in org.environments_of(workspace.id)])


def traffic_types(request: Request, org: Organisation) -> Response:
    """contract §2.3 — bare array."""
    workspace = _workspace(org, request.path_params["ws"])
    return JSONResponse([tt.record(workspace) for tt in org.traffic_types.get(workspace.id, [])])


def rollout_statuses(request: Request, org: Organisation) -> Response:
    """contract §2.7 — bare array; `wsId` is required (400 without it, §5.5)."""
    workspace = _workspace(org, _required(request, "wsId"))
    return JSONResponse([rs.record() for rs in org.rollout_statuses.get(workspace.id, [])])


def flag_sets(request: Request, org: Organisation) -> Response:
    """contract §2.8 — v3, marker pagination; `workspace_id` is required."""
    workspace = _workspace(org, _required(request, "workspace_id"))
    index = org.flag_set_index.get(workspace.id) or MarkerIndex([], [])
    spec = ENDPOINTS_BY_TABLE["flag_sets"]
    return JSONResponse(
        marker_envelope(index, request.query_params, spec, lambda flag_set: flag_set.record())
    )


def feature_flags(request: Request, org: Organisation) -> Response:
    """contract §2.4 — offset; optional repeatable `tag` and `rolloutStatus` filters."""
    workspace = _workspace(org, request.path_params["ws"])
    items = org.flags.get(workspace.id, [])
    tags = set(request.query_params.getlist("tag"))
    if tags:
        items = [flag for flag in items if flag.tags and tags & set(flag.tags)]
    status = request.query_params.get("rolloutStatus")
    if status:
        items = [flag for flag in items if flag.rollout_status_id == status]
    spec = ENDPOINTS_BY_TABLE["feature_flags"]
    return JSONResponse(
        offset_envelope(items, request.query_params, spec, lambda flag: flag.record(org))
    )


def feature_flag_definitions(request: Request, org: Organisation) -> Response:
    """contract §3.1 — offset; the flags defined in one environment of the workspace."""
    workspace = _workspace(org, request.path_params["ws"])
    environment = _environment(org, workspace, request.path_params["env"])
    spec = ENDPOINTS_BY_TABLE["feature_flag_definitions"]
    return JSONResponse(
        offset_envelope(
            org.definitions[environment.id],
            request.query_params,
            spec,
            lambda definition: definition.record(org),
        )
    )


def segments(request: Request, org: Organisation) -> Response:
    """contract §2.5 — offset; records have no id (key: workspace + name)."""
    workspace = _workspace(org, request.path_params["ws"])
    items = org.segments.get(workspace.id, [])
    tags = set(request.query_params.getlist("tag"))
    if tags:
        items = [segment for segment in items if segment.tags and tags & set(segment.tags)]
    spec = ENDPOINTS_BY_TABLE["segments"]
    return JSONResponse(
        offset_envelope(items, request.query_params, spec, lambda segment: segment.record(org))
    )


def environment_segments(request: Request, org: Organisation) -> Response:
    """contract §3.2 — offset; the segments activated in one environment."""
    workspace = _workspace(org, request.path_params["ws"])
    environment = _environment(org, workspace, request.path_params["env"])
    spec = ENDPOINTS_BY_TABLE["environment_segments"]
    return JSONResponse(
        offset_envelope(
            org.activations[environment.id],
            request.query_params,
            spec,
            lambda activation: activation.record(org),
        )
    )


def segments_keys(request: Request, org: Organisation) -> Response:
    """contract §2.6 — `keys` + `count`; 404 when the segment is not active in the environment."""
    environment_id = request.path_params["env"]
    segment_name = request.path_params["segment"]
    if environment_id not in org.environment_by_id:
        raise not_found(f"Could not find environment {environment_id}")
    activation = org.activation_by_key.get((environment_id, segment_name))
    if activation is None:
        # The message Airbyte's manifest matches on (contract §1.3).
        raise not_found("Segment not defined for the partition")
    spec = ENDPOINTS_BY_TABLE["segments_keys"]
    return JSONResponse(
        keys_envelope(
            activation.keys, request.query_params, spec, activation.open_change_request_id
        )
    )


def users(request: Request, org: Organisation) -> Response:
    """contract §2.9 — marker; no `status` means ACTIVE + DEACTIVATED (PENDING hidden)."""
    statuses = _statuses(request, USER_STATUSES, DEFAULT_USER_STATUSES)
    index = org.users_with_status(statuses)
    group_id = request.query_params.get("group_id")
    if group_id:
        index = MarkerIndex.of([u for u in index.items if group_id in (u.group_ids or [])])
    spec = ENDPOINTS_BY_TABLE["users"]
    return JSONResponse(marker_envelope(index, request.query_params, spec, lambda u: u.record()))


def groups(request: Request, org: Organisation) -> Response:
    """contract §2.10 — offset."""
    spec = ENDPOINTS_BY_TABLE["groups"]
    return JSONResponse(
        offset_envelope(org.groups, request.query_params, spec, lambda group: group.record())
    )


def change_requests(request: Request, org: Organisation) -> Response:
    """contract §2.11 — marker; no `status` means REQUESTED only; optional `environmentId`."""
    statuses = _statuses(request, CHANGE_REQUEST_STATUSES, DEFAULT_CHANGE_REQUEST_STATUSES)
    index = org.change_requests_with_status(statuses)
    environment_id = request.query_params.get("environmentId")
    if environment_id:
        index = MarkerIndex.of([cr for cr in index.items if cr.environment_id == environment_id])
    spec = ENDPOINTS_BY_TABLE["change_requests"]
    return JSONResponse(marker_envelope(index, request.query_params, spec, lambda cr: cr.record()))


def _traffic_type_of(org: Organisation, workspace: Workspace, traffic_type_id: str) -> str:
    traffic_type = org.traffic_type_by_id.get(traffic_type_id)
    if traffic_type is None or traffic_type.workspace_id != workspace.id:
        raise not_found(f"Could not find trafficType {traffic_type_id} in workspace {workspace.id}")
    return traffic_type.id


def attributes(request: Request, org: Organisation) -> Response:
    """contract §3.4 — legacy bare array, or with `paginate=true` a marker page (per form)."""
    workspace = _workspace(org, request.path_params["ws"])
    traffic_type_id = _traffic_type_of(org, workspace, request.path_params["tt"])
    index = org.attribute_index.get(traffic_type_id) or MarkerIndex([], [])
    spec = ENDPOINTS_BY_TABLE["attributes"]
    return JSONResponse(
        attribute_page(
            index,
            request.query_params,
            spec,
            org.forms.attributes_envelope,
            lambda attribute: attribute.record(org),
        )
    )


def rule_based_segments(request: Request, org: Organisation) -> Response:
    """contract §3.6 — the workspace's rule-based segments (array, {objects} or offset)."""
    workspace = _workspace(org, request.path_params["ws"])
    spec = ENDPOINTS_BY_TABLE["rule_based_segments"]
    return JSONResponse(
        list_or_offset(
            org.rule_based_segments.get(workspace.id, []),
            request.query_params,
            spec,
            org.forms.rule_based_segments_envelope,
            lambda segment: segment.record(org),
        )
    )


def rule_based_segment_definitions(request: Request, org: Organisation) -> Response:
    """contract §3.6 — the rule-based segments defined in one environment."""
    workspace = _workspace(org, request.path_params["ws"])
    environment = _environment(org, workspace, request.path_params["env"])
    spec = ENDPOINTS_BY_TABLE["rule_based_segment_definitions"]
    return JSONResponse(
        list_or_offset(
            org.rule_based_definitions.get(environment.id, []),
            request.query_params,
            spec,
            org.forms.rule_based_segment_definitions_envelope,
            lambda definition: definition.record(org),
        )
    )


def _large_segments_in_plan(org: Organisation) -> None:
    """contract §3.5: plans without large segments answer 402 (an Enterprise feature)."""
    if org.forms.large_segments_paywalled:
        raise ApiError(402, "Forbidden by Paywalls: largeSegments")


def large_segments(request: Request, org: Organisation) -> Response:
    """contract §3.5 — the workspace's large segments (metadata; array or offset)."""
    _large_segments_in_plan(org)
    workspace = _workspace(org, request.path_params["ws"])
    spec = ENDPOINTS_BY_TABLE["large_segments"]
    return JSONResponse(
        list_or_offset(
            org.large_segments.get(workspace.id, []),
            request.query_params,
            spec,
            org.forms.large_segments_envelope,
            lambda segment: segment.record(org),
        )
    )


def environment_large_segments(request: Request, org: Organisation) -> Response:
    """contract §3.5 — the large segments defined in one environment (metadata)."""
    _large_segments_in_plan(org)
    workspace = _workspace(org, request.path_params["ws"])
    environment = _environment(org, workspace, request.path_params["env"])
    spec = ENDPOINTS_BY_TABLE["environment_large_segments"]
    return JSONResponse(
        list_or_offset(
            org.large_segment_definitions.get(environment.id, []),
            request.query_params,
            spec,
            org.forms.environment_large_segments_envelope,
            lambda definition: definition.record(org),
        )
    )


HANDLERS: dict[str, Handler] = {
    "workspaces": workspaces,
    "environments": environments,
    "traffic_types": traffic_types,
    "rollout_statuses": rollout_statuses,
    "flag_sets": flag_sets,
    "feature_flags": feature_flags,
    "feature_flag_definitions": feature_flag_definitions,
    "segments": segments,
    "environment_segments": environment_segments,
    "segments_keys": segments_keys,
    "users": users,
    "groups": groups,
    "change_requests": change_requests,
    "attributes": attributes,
    "rule_based_segments": rule_based_segments,
    "rule_based_segment_definitions": rule_based_segment_definitions,
    "large_segments": large_segments,
    "environment_large_segments": environment_large_segments,
}


def _api_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        # One organisation per request: a generation switched mid-request cannot mix states.
        org = _state(request).org
        try:
            return handler(request, org)
        except ApiError as error:
            return error_response(error)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def api_routes() -> list[Route]:
    """One GET route per endpoint table entry, named after its table."""
    return [
        Route(
            API_PREFIX + spec.path,
            _api_endpoint(HANDLERS[spec.table]),
            methods=["GET"],
            name=spec.table,
        )
        for spec in ENDPOINTS
    ]


# --- /_sandbox control and observability routes ------------------------------------------------


async def health(request: Request) -> Response:
    state = _state(request)
    org = state.org
    return JSONResponse(
        {"status": "ok", "size": org.size, "seed": org.seed, "generation": org.generation}
    )


async def stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats.snapshot())


async def reset_stats(request: Request) -> Response:
    state = _state(request)
    state.stats.reset()
    return JSONResponse(state.stats.snapshot())


async def control(request: Request) -> Response:
    """GET: the effective config. POST a JSON object of changes: apply them, return the config."""
    state = _state(request)
    if request.method == "POST":
        try:
            changes = await request.json()
        except json.JSONDecodeError:
            return error_response(bad_request("The control body must be a JSON object"))
        if not isinstance(changes, dict):
            return error_response(bad_request("The control body must be a JSON object"))
        try:
            await state.apply(changes)
        except ConfigError as error:
            return error_response(bad_request(str(error)))
    return JSONResponse(state.config.public())


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("false", "0", "no", "off")


async def ground_truth(request: Request) -> Response:
    """The full ground truth (streamed); `?rows=false` for counts only, `?tables=a,b` to select."""
    org = _state(request).org
    rows = _flag(request, "rows", True)
    tables_param = request.query_params.get("tables")
    tables = [t.strip() for t in tables_param.split(",")] if tables_param else None
    if tables is not None:
        unknown = [t for t in tables if t not in ENDPOINTS_BY_TABLE]
        if unknown:
            return error_response(not_found(f"Unknown tables: {', '.join(unknown)}"))
    if not rows:
        document = summary(org)
        if tables is not None:
            document["tables"] = {t: document["tables"][t] for t in tables}
        return JSONResponse(document)
    return StreamingResponse(
        stream_ground_truth(org, rows=True, tables=tables), media_type="application/json"
    )


async def ground_truth_table(request: Request) -> Response:
    """One table's rows as NDJSON, streamed (the way to read millions of segment keys)."""
    org = _state(request).org
    table = request.path_params["table"]
    if table not in ENDPOINTS_BY_TABLE:
        return error_response(not_found(f"Unknown table {table}"))
    return StreamingResponse(stream_ndjson(org, table), media_type="application/x-ndjson")


def sandbox_routes() -> list[Route]:
    return [
        Route("/_sandbox/health", health, methods=["GET"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/stats/reset", reset_stats, methods=["POST"]),
        Route("/_sandbox/control", control, methods=["GET", "POST"]),
        Route("/_sandbox/ground-truth", ground_truth, methods=["GET"]),
        Route("/_sandbox/ground-truth/{table}.ndjson", ground_truth_table, methods=["GET"]),
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods get the Admin API's JSON error body too."""
    assert isinstance(exc, HTTPException)
    return error_response(ApiError(exc.status_code, exc.detail))


def create_app(config: SandboxConfig | None = None, state: SandboxState | None = None) -> Starlette:
    """The ASGI application. Pass a prepared ``state`` to reuse an organisation already built."""
    state = state or SandboxState(config or SandboxConfig())
    routes = api_routes()
    app = Starlette(
        routes=[*routes, *sandbox_routes()],
        middleware=[Middleware(ApiGateway, state=state, api_routes=routes, error_body=error_body)],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sandbox = state
    return app
