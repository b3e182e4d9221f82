"""The three pagination styles of the Admin API (contract §1.5), as envelopes.

* offset: ``{"objects", "offset", "limit", "totalCount"}``
* offset, keys variant: ``{"keys", "openChangeRequestId", "count", "offset", "limit"}``
* marker: ``{"data", "nextMarker", "previousMarker", "limit", "count"}``

Bare-array endpoints have no envelope and ignore query parameters. The newer endpoints
(contract §3.4–§3.6) serve one of several documented forms, chosen by a sandbox setting:
:func:`attribute_page` and :func:`list_or_offset`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analytics_assets.sandbox.endpoints import EndpointSpec
from analytics_assets.sandbox.keys import KeySequence
from analytics_assets.sandbox.model import MarkerIndex, Record


class ApiError(Exception):
    """An error the sandbox answers with the Admin API's JSON error body (contract §1.3)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def _integer(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"Query parameter '{name}' must be an integer, got '{raw}'") from None


def page_limit(query: Mapping[str, str], spec: EndpointSpec) -> int:
    """The effective page size: the default when absent, clamped to the endpoint maximum.

    contract §5.3: behaviour above the maximum is undocumented; clamping is the safer
    simulation. A limit below 1 is a client bug and gets a 400.
    """
    assert spec.default_limit is not None and spec.max_limit is not None
    limit = _integer(query, "limit")
    if limit is None:
        return spec.default_limit
    if limit < 1:
        raise bad_request(f"Query parameter 'limit' must be between 1 and {spec.max_limit}")
    return min(limit, spec.max_limit)


def page_offset(query: Mapping[str, str]) -> int:
    offset = _integer(query, "offset")
    if offset is None:
        return 0
    if offset < 0:
        raise bad_request("Query parameter 'offset' must be 0 or more")
    return offset


def offset_envelope(
    items: Sequence[Any],
    query: Mapping[str, str],
    spec: EndpointSpec,
    to_record: Callable[[Any], Record],
) -> Record:
    """One offset page; past the end it is empty but keeps the true total (contract §5.1)."""
    offset, limit = page_offset(query), page_limit(query, spec)
    return {
        "objects": [to_record(item) for item in items[offset : offset + limit]],
        "offset": offset,
        "limit": limit,
        "totalCount": len(items),
    }


def keys_envelope(
    keys: KeySequence,
    query: Mapping[str, str],
    spec: EndpointSpec,
    open_change_request_id: str | None,
) -> Record:
    """One page of segment keys; the total is `count`, not `totalCount` (contract §2.6)."""
    offset, limit = page_offset(query), page_limit(query, spec)
    return {
        "keys": [{"key": key} for key in keys.page(offset, limit)],
        "openChangeRequestId": open_change_request_id,
        "count": len(keys),
        "offset": offset,
        "limit": limit,
    }


# --- markers ----------------------------------------------------------------------------------

_NEXT = "next__"
_PREVIOUS = "prev__"


def encode_marker(direction: str, seq: int) -> str:
    """An opaque marker: base64 of ``next__<n>`` or ``prev__<n>`` (contract §1.5)."""
    return base64.b64encode(f"{direction}{seq}".encode()).decode()


def decode_marker(marker: str, direction: str, parameter: str) -> int:
    try:
        text = base64.b64decode(marker.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request(f"Invalid marker in '{parameter}'") from None
    if not text.startswith(direction) or not text[len(direction) :].isdigit():
        raise bad_request(f"Invalid marker in '{parameter}'")
    return int(text[len(direction) :])


@dataclass(frozen=True)
class MarkerWindow:
    """Which slice of a marker-ordered list one request asked for."""

    start: int
    stop: int
    limit: int


def marker_window(index: MarkerIndex, query: Mapping[str, str], spec: EndpointSpec) -> MarkerWindow:
    """Resolve ``after`` / ``before`` / ``limit``; ``offset`` is ignored (contract §1.5)."""
    limit = page_limit(query, spec)
    after, before = query.get("after"), query.get("before")
    if after and before:
        raise bad_request("Use either 'after' or 'before', not both")
    if after:
        start = index.index_after(decode_marker(after, _NEXT, "after"))
        return MarkerWindow(start, min(start + limit, len(index.items)), limit)
    if before:
        stop = index.index_before(decode_marker(before, _PREVIOUS, "before"))
        return MarkerWindow(max(0, stop - limit), stop, limit)
    return MarkerWindow(0, min(limit, len(index.items)), limit)


def marker_envelope(
    index: MarkerIndex,
    query: Mapping[str, str],
    spec: EndpointSpec,
    to_record: Callable[[Any], Record],
) -> Record:
    """One marker page; `count` is this page's length and there is no total (contract §1.5).

    ``nextMarker`` is null on the page that reaches the end — also when the list length is an
    exact multiple of the limit — and ``previousMarker`` is null on the first page.
    """
    window = marker_window(index, query, spec)
    page = index.items[window.start : window.stop]
    next_marker = None
    if window.stop < len(index.items) and page:
        next_marker = encode_marker(_NEXT, index.seqs[window.stop - 1])
    previous_marker = None
    if window.start > 0:
        boundary = index.seqs[window.start] if page else index.seqs[window.start - 1] + 1
        previous_marker = encode_marker(_PREVIOUS, boundary)
    return {
        "data": [to_record(item) for item in page],
        "nextMarker": next_marker,
        "previousMarker": previous_marker,
        "limit": window.limit,
        "count": len(page),
    }


# --- the newer endpoints (contract §3.4–§3.6) -------------------------------------------------

_BOUNDARY = "at__"


def attribute_page(
    index: MarkerIndex,
    query: Mapping[str, str],
    spec: EndpointSpec,
    envelope: str,
    to_record: Callable[[Any], Record],
) -> Any:
    """Attributes of one traffic type, contract §3.4.

    Without ``paginate=true``, or when the ``array`` form is selected, the legacy bare array
    of every attribute. Otherwise one page in the ``objects`` or ``data`` envelope, sized by
    ``markerLimit`` (default 50, clamped to 200). A marker names the boundary between two
    items, so ``nextMarker`` and ``previousMarker`` both work as ``afterMarker`` and as
    ``beforeMarker`` (the four documented moves); ``nextMarker`` is null on the last page.
    ``searchPrefix`` filters ids and only works with pagination.
    """
    paginated = query.get("paginate", "").strip().lower() == "true"
    if envelope == "array" or not paginated:
        return [to_record(item) for item in index.items]
    prefix = query.get("searchPrefix")
    if prefix:
        index = MarkerIndex.of([item for item in index.items if item.id.startswith(prefix)])
    limit = _integer(query, "markerLimit")
    if limit is None:
        limit = spec.default_limit or 50
    elif limit < 1:
        raise bad_request("Query parameter 'markerLimit' must be 1 or more")
    limit = min(limit, spec.max_limit or limit)
    after, before = query.get("afterMarker"), query.get("beforeMarker")
    if after and before:
        raise bad_request("Use either 'afterMarker' or 'beforeMarker', not both")
    if before:
        stop = index.index_after(decode_marker(before, _BOUNDARY, "beforeMarker"))
        start = max(0, stop - limit)
    else:
        start = index.index_after(decode_marker(after, _BOUNDARY, "afterMarker")) if after else 0
        stop = min(start + limit, len(index.items))
    page = index.items[start:stop]
    next_marker = (
        encode_marker(_BOUNDARY, index.seqs[stop - 1]) if stop < len(index.items) else None
    )
    previous_marker = encode_marker(_BOUNDARY, index.seqs[start - 1]) if start > 0 else None
    records = [to_record(item) for item in page]
    if envelope == "objects":  # as HGO decodes it; no source shows a count or a limit
        return {"objects": records, "nextMarker": next_marker, "previousMarker": previous_marker}
    return {
        "data": records,
        "nextMarker": next_marker,
        "previousMarker": previous_marker,
        "limit": limit,
        "count": len(records),
    }


def list_or_offset(
    items: Sequence[Any],
    query: Mapping[str, str],
    spec: EndpointSpec,
    envelope: str,
    to_record: Callable[[Any], Record],
) -> Any:
    """Rule-based or large segments (§3.5, §3.6) in the selected form.

    ``array``: the whole list, query parameters ignored (as observed live); ``objects``: the
    whole list in ``{"objects": [...]}`` (the documented environment list, no paging);
    ``offset``: the documented ``{objects, offset, limit, totalCount}`` envelope, paged.
    """
    if envelope == "array":
        return [to_record(item) for item in items]
    if envelope == "objects":
        return {"objects": [to_record(item) for item in items]}
    return offset_envelope(items, query, spec, to_record)
