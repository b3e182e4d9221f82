"""Ground truth: every row a perfect client would load, and how few requests it needs.

Computed from the organisation model, never by crawling the sandbox, so a crawl can be
checked against it. Rows are the API records as served plus the context columns a connector
must inject because the API leaves them out (workspace, environment, segment name).

Minimal requests assume each endpoint's largest page (``EndpointSpec.page_size``): for offset
endpoints ``ceil(n / page)`` per scope but at least 1 (an empty scope still costs one request
to learn that it is empty); one request per workspace for bare arrays; users per each of the
3 statuses and change requests per each of the 6 statuses (contract §2.9, §2.11: the
defaults hide some); segment keys only for segments active in the environment (§3.2).
Workspaces are counted with pages of 100, the safe limit contract §2.1 recommends, although
the sandbox accepts up to 1000.

The newer endpoints (§3.4–§3.6) depend on the served form: a bare array or ``{objects}`` is
one request per scope; the offset form is paged like the others (its ``totalCount`` is
true); attributes in a marker form page by 200 per traffic type. When large segments are
paywalled (402), both of their tables are empty and a perfect client asks once: the plan is
the organisation's, so the first 402 answers for every other scope too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from analytics_assets.sandbox.endpoints import (
    CHANGE_REQUEST_STATUSES,
    ENDPOINTS,
    ENDPOINTS_BY_TABLE,
    TABLES,
    USER_STATUSES,
)
from analytics_assets.sandbox.model import Organisation, Record

MINIMAL_REQUESTS_NOTE = (
    "Counted at each endpoint's maximum page size, except workspaces at 100 (the safe limit "
    "the contract recommends; the sandbox accepts up to 1000). Offset and marker scopes cost "
    "at least one request even when empty. Users are fetched per status (3) and change "
    "requests per status (6); segment keys only for segments active in the environment. "
    "Attributes: one request per traffic type per 200 attributes (one for a legacy array); "
    "rule-based and large segments: one per scope for a bare array or {objects}, one per 50 "
    "in the offset form; with large segments paywalled (402), one request in all."
)


def iter_rows(org: Organisation, table: str) -> Iterator[Record]:
    """Every row of ``table``: the served record plus its context columns."""
    if table not in ENDPOINTS_BY_TABLE:
        raise KeyError(table)
    if table == "workspaces":
        for workspace in org.workspaces:
            yield workspace.record()
    elif table == "users":
        for user in org.users:
            yield user.record()
    elif table == "groups":
        for group in org.groups:
            yield group.record()
    elif table == "change_requests":
        for request in org.change_requests:
            yield request.record()
    elif table in ("feature_flag_definitions", "environment_segments", "segments_keys"):
        yield from _environment_rows(org, table)
    elif table in _NEWER_TABLES:
        yield from _newer_rows(org, table)
    else:
        yield from _workspace_rows(org, table)


def _workspace_rows(org: Organisation, table: str) -> Iterator[Record]:
    for workspace in org.workspaces:
        ws = workspace.id
        records: Iterable[Record]
        if table == "environments":
            records = (env.record() for env in org.environments_of(ws))
        elif table == "traffic_types":
            records = (tt.record(workspace) for tt in org.traffic_types.get(ws, []))
        elif table == "rollout_statuses":
            records = (rs.record() for rs in org.rollout_statuses.get(ws, []))
        elif table == "flag_sets":
            records = (fs.record() for fs in org.flag_sets.get(ws, []))
        elif table == "feature_flags":
            records = (flag.record(org) for flag in org.flags.get(ws, []))
        elif table == "segments":
            records = (segment.record(org) for segment in org.segments.get(ws, []))
        else:  # pragma: no cover - guarded by iter_rows
            raise KeyError(table)
        for record in records:
            record["workspace_id"] = ws
            yield record


def _environment_rows(org: Organisation, table: str) -> Iterator[Record]:
    for workspace, environment in org.iter_environments():
        context = {"workspace_id": workspace.id, "environment_id": environment.id}
        if table == "feature_flag_definitions":
            for definition in org.definitions[environment.id]:
                yield {**definition.record(org), **context}
        elif table == "environment_segments":
            for activation in org.activations[environment.id]:
                yield {**activation.record(org), **context}
        else:
            for activation in org.activations[environment.id]:
                for key in activation.keys:
                    yield {"key": key, **context, "segment_name": activation.segment_name}


_NEWER_TABLES = (
    "attributes",
    "rule_based_segments",
    "rule_based_segment_definitions",
    "large_segments",
    "environment_large_segments",
)
_LARGE_SEGMENT_TABLES = ("large_segments", "environment_large_segments")


def _newer_rows(org: Organisation, table: str) -> Iterator[Record]:
    """Rows of the §3.4–§3.6 tables in the served form; none while large segments are paywalled."""
    if table in _LARGE_SEGMENT_TABLES and org.forms.large_segments_paywalled:
        return
    if table == "attributes":
        for workspace in org.workspaces:
            for traffic_type in org.traffic_types.get(workspace.id, []):
                context = {"workspace_id": workspace.id, "traffic_type_id": traffic_type.id}
                for attribute in org.attributes.get(traffic_type.id, []):
                    yield {**attribute.record(org), **context}
    elif table in ("rule_based_segments", "large_segments"):
        containers = (
            org.rule_based_segments if table == "rule_based_segments" else org.large_segments
        )
        for workspace in org.workspaces:
            for segment in containers.get(workspace.id, []):
                yield {**segment.record(org), "workspace_id": workspace.id}
    else:
        definitions: dict[str, list[Any]] = (
            org.rule_based_definitions
            if table == "rule_based_segment_definitions"
            else org.large_segment_definitions
        )
        for workspace, environment in org.iter_environments():
            context = {"workspace_id": workspace.id, "environment_id": environment.id}
            for definition in definitions.get(environment.id, []):
                yield {**definition.record(org), **context}


def row_count(org: Organisation, table: str) -> int:
    """How many rows ``table`` has, without building them."""
    counts: dict[str, Any] = {
        "workspaces": lambda: len(org.workspaces),
        "environments": lambda: sum(len(v) for v in org.environments.values()),
        "traffic_types": lambda: sum(len(v) for v in org.traffic_types.values()),
        "rollout_statuses": lambda: sum(len(v) for v in org.rollout_statuses.values()),
        "flag_sets": lambda: sum(len(v) for v in org.flag_sets.values()),
        "feature_flags": lambda: sum(len(v) for v in org.flags.values()),
        "feature_flag_definitions": lambda: sum(len(v) for v in org.definitions.values()),
        "segments": lambda: sum(len(v) for v in org.segments.values()),
        "environment_segments": lambda: sum(len(v) for v in org.activations.values()),
        "segments_keys": org.segment_key_count,
        "users": lambda: len(org.users),
        "groups": lambda: len(org.groups),
        "change_requests": lambda: len(org.change_requests),
    }
    if table in _NEWER_TABLES:
        return sum(1 for _ in _newer_rows(org, table))
    return int(counts[table]())


def _pages(count: int, page_size: int | None) -> int:
    assert page_size is not None
    return max(1, math.ceil(count / page_size))


ORGANISATION_SCOPE = "organisation"


def minimal_requests(org: Organisation) -> dict[str, int]:
    """Requests a perfect client needs per endpoint (see the module docstring)."""
    totals = {spec.table: 0 for spec in ENDPOINTS}
    for requests in minimal_requests_by_scope(org).values():
        for table, count in requests.items():
            totals[table] += count
    return totals


def minimal_requests_by_scope(org: Organisation) -> dict[str, dict[str, int]]:
    """The same requests per scope a sync commits on its own, by endpoint: the organisation
    (its listings and organisation tables), ``workspace <id>`` and ``environment <id>``."""
    size = {spec.table: spec.page_size for spec in ENDPOINTS}
    forms = org.forms
    users = org.user_status_counts()
    change_requests = org.change_request_status_counts()

    def listed(count: int, envelope: str, table: str) -> int:
        # a bare array or {objects}: the whole list at once; the offset form pages
        return _pages(count, size[table]) if envelope == "offset" else 1

    scopes: dict[str, dict[str, int]] = {
        ORGANISATION_SCOPE: {
            "workspaces": _pages(len(org.workspaces), size["workspaces"]),
            "environments": len(org.workspaces),
            "users": sum(_pages(users[status], size["users"]) for status in USER_STATUSES),
            "groups": _pages(len(org.groups), size["groups"]),
            "change_requests": sum(
                _pages(change_requests[status], size["change_requests"])
                for status in CHANGE_REQUEST_STATUSES
            ),
        }
    }
    for index, ws in enumerate(org.workspaces):
        attribute_counts = [
            len(org.attributes.get(tt.id, [])) for tt in org.traffic_types.get(ws.id, [])
        ]
        large_segments = listed(
            len(org.large_segments.get(ws.id, [])), forms.large_segments_envelope, "large_segments"
        )
        if forms.large_segments_paywalled:
            # the plan is the organisation's: the first 402 answers for every workspace
            large_segments = 1 if index == 0 else 0
        scopes[f"workspace {ws.id}"] = {
            "traffic_types": 1,
            "rollout_statuses": 1,
            "flag_sets": _pages(len(org.flag_sets.get(ws.id, [])), size["flag_sets"]),
            "feature_flags": _pages(len(org.flags.get(ws.id, [])), size["feature_flags"]),
            "segments": _pages(len(org.segments.get(ws.id, [])), size["segments"]),
            "attributes": len(attribute_counts)
            if forms.attributes_envelope == "array"
            else sum(_pages(count, size["attributes"]) for count in attribute_counts),
            "rule_based_segments": listed(
                len(org.rule_based_segments.get(ws.id, [])),
                forms.rule_based_segments_envelope,
                "rule_based_segments",
            ),
            "large_segments": large_segments,
        }
    for _, env in org.iter_environments():
        activations = org.activations[env.id]
        scopes[f"environment {env.id}"] = {
            "feature_flag_definitions": _pages(
                len(org.definitions[env.id]), size["feature_flag_definitions"]
            ),
            "environment_segments": _pages(len(activations), size["environment_segments"]),
            "segments_keys": sum(
                _pages(len(act.keys), size["segments_keys"]) for act in activations
            ),
            "rule_based_segment_definitions": listed(
                len(org.rule_based_definitions.get(env.id, [])),
                forms.rule_based_segment_definitions_envelope,
                "rule_based_segment_definitions",
            ),
            "environment_large_segments": 0
            if forms.large_segments_paywalled
            else listed(
                len(org.large_segment_definitions.get(env.id, [])),
                forms.environment_large_segments_envelope,
                "environment_large_segments",
            ),
        }
    return scopes


def summary(org: Organisation) -> dict[str, Any]:
    """Counts and minimal requests, without rows (cheap at any size)."""
    requests = minimal_requests(org)
    return {
        "size": org.size,
        "seed": org.seed,
        "generation": org.generation,
        "tables": {
            table: {
                "key": list(ENDPOINTS_BY_TABLE[table].natural_key),
                "count": row_count(org, table),
            }
            for table in TABLES
        },
        "minimal_requests": {
            "by_endpoint": requests,
            "by_scope": {
                scope: sum(n.values()) for scope, n in minimal_requests_by_scope(org).items()
            },
            "total": sum(requests.values()),
            "page_sizes": {spec.table: spec.page_size for spec in ENDPOINTS},
            "note": MINIMAL_REQUESTS_NOTE,
        },
        "status_counts": {
            "users": org.user_status_counts(),
            "change_requests": org.change_request_status_counts(),
        },
        "forms": org.forms.public(),
    }


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def stream_ground_truth(
    org: Organisation, rows: bool = True, tables: Iterable[str] | None = None
) -> Iterator[bytes]:
    """The ground-truth document as JSON, streamed table by table to keep memory flat."""
    document = summary(org)
    wanted = [table for table in TABLES if tables is None or table in set(tables)]
    head = {key: document[key] for key in ("size", "seed", "generation")}
    yield (_dump(head)[:-1] + ',"tables":{').encode()
    for position, table in enumerate(wanted):
        info = document["tables"][table]
        prefix = "," if position else ""
        opening = f'{prefix}{_dump(table)}:{{"key":{_dump(info["key"])},"count":{info["count"]}'
        if not rows:
            yield (opening + "}").encode()
            continue
        yield (opening + ',"rows":[').encode()
        yield from _batched(
            ("," if i else "") + _dump(row) for i, row in enumerate(iter_rows(org, table))
        )
        yield b"]}"
    tail = {key: document[key] for key in ("minimal_requests", "status_counts", "forms")}
    yield ("}," + _dump(tail)[1:]).encode()


def stream_ndjson(org: Organisation, table: str) -> Iterator[bytes]:
    """One table's rows as newline-delimited JSON."""
    yield from _batched(_dump(row) + "\n" for row in iter_rows(org, table))


def _batched(pieces: Iterable[str], batch_bytes: int = 256 * 1024) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= batch_bytes:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()
