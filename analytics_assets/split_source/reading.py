"""Reading one scope whole and exactly: every page, consistently, or a loud failure.

A scope (one workspace's flags, one environment's definitions, one segment's keys, one
status of users) is read into memory before any of it is yielded, so a read that turns out
inconsistent can be thrown away and done again. Inconsistent means: a natural key served
twice, a page parameter served twice, or a total that changed between pages — offset paging
over objects that moved. Such a scope is re-read from the start up to ``MAX_REREADS``
times, then the sync fails naming it. A record without its natural key fails at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from analytics_assets.split_source.errors import SplitDataError, SplitNotFoundError
from analytics_assets.split_source.paging import OffsetPaging, Page, Paging
from analytics_assets.split_source.settings import Endpoint
from analytics_assets.split_source.transport import RequestContext, SplitTransport

logger = logging.getLogger("analytics_assets.split_source")

MAX_REREADS = 3
CONTEXT_COLUMNS = frozenset({"workspace_id", "environment_id", "segment_name", "traffic_type_id"})
"""Columns the source adds from the request's scope; every other key column is the API's."""


def record_key_fields(endpoint: Endpoint) -> tuple[str, ...]:
    """The natural key fields the API itself serves in each record."""
    return tuple(name for name in endpoint.primary_key if name not in CONTEXT_COLUMNS)


class _Inconsistent(Exception):
    pass


def _key_of(record: Mapping[str, Any], fields: Sequence[str], context: RequestContext) -> tuple:
    values = tuple(record.get(name) for name in fields)
    if any(value is None or value == "" for value in values):
        missing = ", ".join(f for f, v in zip(fields, values, strict=True) if v in (None, ""))
        raise SplitDataError(
            f"Split API {context.where} served a record without its natural key ({missing})"
            f" for table `{context.endpoint.table}`; it cannot be stored exactly. This is an"
            " API fault: re-run the sync, and report it if it persists.",
            status=None,
            endpoint=context.where,
            scope=context.describe_scope(),
        )
    return values


def _fetch_page(
    transport: SplitTransport,
    context: RequestContext,
    params: Mapping[str, Any],
    paging: Paging,
    page_params: dict[str, Any],
) -> Page:
    return transport.fetch(
        context, {**params, **page_params}, lambda body: paging.read(body, page_params)
    )


def _read_once(
    transport: SplitTransport,
    context: RequestContext,
    params: Mapping[str, Any],
    paging: Paging,
) -> list[dict[str, Any]]:
    fields = record_key_fields(context.endpoint)
    records: list[dict[str, Any]] = []
    seen_keys: set[tuple] = set()
    seen_pages: set[tuple] = set()
    totals: set[int] = set()
    page_params: dict[str, Any] | None = paging.first_params()
    while page_params is not None:
        fingerprint = tuple(sorted(page_params.items()))
        if fingerprint in seen_pages:
            raise _Inconsistent(f"the page {dict(page_params)} was served twice")
        seen_pages.add(fingerprint)
        page = _fetch_page(transport, context, params, paging, page_params)
        for record in page.records:
            key = _key_of(record, fields, context)
            if key in seen_keys:
                raise _Inconsistent(f"{'/'.join(map(str, key))} was served twice")
            seen_keys.add(key)
        records.extend(page.records)
        if page.total is not None:
            totals.add(page.total)
            if len(totals) > 1:
                raise _Inconsistent(f"the total changed from {min(totals)} to {max(totals)}")
        page_params = page.next_params
    return records


def read_scope(
    transport: SplitTransport,
    context: RequestContext,
    params: Mapping[str, Any],
    paging: Paging,
) -> list[dict[str, Any]]:
    """Every record of one scope, read consistently. A 404 where the endpoint says it means
    "nothing here" is an empty scope; any other error propagates."""
    for attempt in range(MAX_REREADS + 1):
        try:
            return _read_once(transport, context, params, paging)
        except SplitNotFoundError:
            if context.endpoint.missing_is_empty:
                return []
            raise
        except _Inconsistent as change:
            reason = str(change)
            if attempt < MAX_REREADS:
                logger.warning(
                    "Split API %s changed while it was read (%s); reading it again from the"
                    " start (%d of %d)",
                    context.where,
                    reason,
                    attempt + 1,
                    MAX_REREADS,
                )
    raise SplitDataError(
        f"Split API {context.where} kept changing while it was read ({reason}), {MAX_REREADS}"
        f" times after the first read; table `{context.endpoint.table}` was not changed for this"
        " scope. Re-run the sync when the objects stop moving (e.g. after a bulk edit).",
        status=None,
        endpoint=context.where,
        scope=context.describe_scope(),
    )


def read_offset_scope_concurrently(
    transport: SplitTransport,
    context: RequestContext,
    params: Mapping[str, Any],
    paging: OffsetPaging,
    workers: int,
) -> list[dict[str, Any]]:
    """Like ``read_scope`` for an offset endpoint, but the pages after the first are fetched
    concurrently: the first page's total gives every other offset at once, so a large scope
    (a segment of 100,000 keys) is not read one latency at a time. The result is checked like
    a sequential read (full pages, one total, no key twice); if it does not hold, the scope is
    read again sequentially, which has its own bounded re-reads."""
    first_params = paging.first_params()
    try:
        first = _fetch_page(transport, context, params, paging, first_params)
    except SplitNotFoundError:
        if context.endpoint.missing_is_empty:
            return []
        raise
    if first.next_params is None and _unique(first.records, context):
        return first.records
    if first.next_params is None or first.total is None:
        return read_scope(transport, context, params, paging)
    step = len(first.records)
    offsets = list(range(step, first.total, step))
    page_params = [{"offset": offset, "limit": first_params["limit"]} for offset in offsets]
    try:
        with ThreadPoolExecutor(min(len(offsets), workers), "split-pages") as pool:
            pages = list(
                pool.map(lambda p: _fetch_page(transport, context, params, paging, p), page_params)
            )
    except SplitNotFoundError:
        if context.endpoint.missing_is_empty:
            return []  # deactivated while it was read: not active there any more
        raise
    records = list(first.records)
    consistent = all(page.total == first.total for page in pages)
    for index, page in enumerate(pages):
        is_last = index == len(pages) - 1
        if (not is_last and len(page.records) != step) or (is_last and page.next_params):
            consistent = False
        records.extend(page.records)
    if consistent and len(records) == first.total and _unique(records, context):
        return records
    return read_scope(transport, context, params, paging)


def _unique(records: list[dict[str, Any]], context: RequestContext) -> bool:
    fields = record_key_fields(context.endpoint)
    keys = [_key_of(record, fields, context) for record in records]
    return len(set(keys)) == len(keys)
