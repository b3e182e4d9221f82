"""How to read the pages of the newer endpoints (contract §3.4–§3.6), in every documented form.

Pure logic, no HTTP: a paging loop sends ``first_params()``, hands each decoded body to
``read(body, params)`` and sends ``Page.next_params`` until it is None. The loop owns
requests, retries, repeat detection and scopes; these classes only interpret bodies.

* :class:`ListOrOffsetEnvelope` — rule-based segments and large segments (§3.5, §3.6): a bare
  array (observed live) is the whole list; ``{"objects": [...]}`` without paging fields (the
  documented environment list) too; the offset envelope ``{objects, offset, limit,
  totalCount}`` is paged by offset.
* :class:`AttributeMarkers` — traffic-type attributes (§3.4): asked for with
  ``paginate=true&markerLimit=200``; a legacy bare array is complete; an envelope holds
  ``objects`` (or ``data``) and is followed with ``afterMarker=<nextMarker>``.

A body in none of these forms raises :class:`UnexpectedShape` with a sentence saying what was
expected; the loop treats it as a transient fault and retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analytics_assets.split_source.paging import Page, Paging, UnexpectedShape
from analytics_assets.split_source.settings import Endpoint

__all__ = ["AttributeMarkers", "ListOrOffsetEnvelope", "Page", "Paging", "UnexpectedShape"]

Record = dict[str, Any]


def _described(body: Any) -> str:
    if body is None:
        return "null"
    if isinstance(body, bool):
        return "a boolean"
    if isinstance(body, str):
        return "a string"
    if isinstance(body, int | float):
        return "a number"
    if isinstance(body, list):
        return "an array"
    if isinstance(body, dict):
        keys = ", ".join(sorted(map(str, body))[:6]) or "no keys"
        return f"an object with keys {keys}"
    return type(body).__name__


def _objects(items: Any, where: str, expected: str) -> list[Record]:
    """``items`` as a list of JSON objects, or UnexpectedShape naming what is wrong."""
    if not isinstance(items, list):
        raise UnexpectedShape(f"Expected {expected}; {where} is {_described(items)}.")
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise UnexpectedShape(
                f"Expected every record in {where} to be a JSON object; record {position} is"
                f" {_described(item)}."
            )
    return items


def _count(value: Any) -> int | None:
    """An integer count from an envelope; anything else (bool, string, null) is no count."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


_OFFSET_FIELDS = ("offset", "limit", "totalCount")


class ListOrOffsetEnvelope:
    """A bare array, ``{objects}``, or the offset envelope (contract §3.5, §3.6, §1.5).

    The first request is ``offset=0&limit=<page_size>``. A JSON array is the whole list and
    is never paged (the endpoints that serve one ignore ``offset`` and would send it again).
    ``{"objects": [...]}`` with none of ``offset``/``limit``/``totalCount`` is the whole list
    too (the documented, unpaged environment list). The offset envelope is paged by offset
    until a page is short or empty, or holds more than was asked for (the endpoint ignores
    ``limit``: PY's guard); a page as long as an echoed, clamped ``limit`` is full. A
    ``totalCount`` ends the paging early only when it agrees with the data: a full page that
    reaches exactly the claimed total is the last one; a total the pages contradict is
    ignored.
    """

    def __init__(self, page_size: int, what: str = "records") -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self.what = what

    def first_params(self) -> dict[str, Any]:
        return {"offset": 0, "limit": self.page_size}

    def read(self, body: Any, params: dict[str, Any]) -> Page:
        expected = (
            f"a JSON array of {self.what}, or an object whose `objects` is a list of {self.what}"
        )
        if isinstance(body, list):
            return Page(_objects(body, "the array", expected), None)
        if not isinstance(body, dict) or "objects" not in body:
            raise UnexpectedShape(f"Expected {expected}; the body is {_described(body)}.")
        records = _objects(body["objects"], "`objects`", expected)
        total = _count(body.get("totalCount"))
        if not any(name in body for name in _OFFSET_FIELDS):
            return Page(records, None, total)
        offset = int(params.get("offset", 0))
        asked = int(params.get("limit", self.page_size))
        # A server that clamps the limit says so in the echoed `limit`; a page of that size
        # is full, not short.
        page = min(asked, _count(body.get("limit")) or asked)
        reached = offset + len(records)
        if not records or len(records) < page or len(records) > asked:
            return Page(records, None, total)  # empty or short: the end; longer: not paged
        if total is not None and reached == total:
            return Page(records, None, total)
        return Page(records, {"offset": reached, "limit": asked}, total)


class AttributeMarkers:
    """Traffic-type attributes, contract §3.4.

    The first request is ``paginate=true&markerLimit=<page_size>`` (200, the documented
    maximum). A JSON array is the complete list (the legacy form). An object is read from
    ``objects``, falling back to ``data``, and followed with ``afterMarker=<nextMarker>``
    until ``nextMarker`` is null or absent. No count is relied on (no source shows one).
    """

    def __init__(self, page_size: int = 200, what: str = "attributes") -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self.what = what

    def first_params(self) -> dict[str, Any]:
        return {"paginate": "true", "markerLimit": self.page_size}

    def read(self, body: Any, params: dict[str, Any]) -> Page:
        expected = (
            f"a JSON array of {self.what}, or an object whose `objects` (or `data`) is a list"
            f" of {self.what}"
        )
        if isinstance(body, list):
            return Page(_objects(body, "the array", expected), None)
        if not isinstance(body, dict):
            raise UnexpectedShape(f"Expected {expected}; the body is {_described(body)}.")
        key = "objects" if "objects" in body else "data" if "data" in body else None
        if key is None:
            raise UnexpectedShape(f"Expected {expected}; the body is {_described(body)}.")
        records = _objects(body[key], f"`{key}`", expected)
        marker = body.get("nextMarker")
        if marker is None or marker == "":
            return Page(records, None)
        if not isinstance(marker, str):
            raise UnexpectedShape(
                f"Expected `nextMarker` to be a string or null; it is {_described(marker)}."
            )
        return Page(records, {**self.first_params(), "afterMarker": marker})


def paging_for(endpoint: Endpoint) -> Paging:
    """The reader of one of the newer endpoints, at its page size from the endpoint table."""
    assert endpoint.page_size is not None, f"{endpoint.table} has no page size"
    what = endpoint.table.replace("_", " ")
    if endpoint.pagination == "list_or_offset":
        return ListOrOffsetEnvelope(endpoint.page_size, what)
    if endpoint.pagination == "attribute_markers":
        return AttributeMarkers(endpoint.page_size, what)
    raise ValueError(f"{endpoint.table} pages with {endpoint.pagination!r}, not a variant here")


def context_columns(endpoint: Endpoint) -> tuple[str, ...]:
    """The ids a record of ``endpoint`` gets from its request: the API leaves them out.

    Workspace-scoped tables get ``workspace_id``; environment-scoped ones also
    ``environment_id``; tables requested per traffic type also ``traffic_type_id``.
    """
    columns = {"org": (), "workspace": ("workspace_id",)}.get(
        endpoint.scope, ("workspace_id", "environment_id")
    )
    if endpoint.parent == "traffic_types":
        columns = (*columns, "traffic_type_id")
    return columns


def with_context(records: list[Record], context: Mapping[str, str]) -> list[Record]:
    """Records with their context ids added; every served field is kept exactly as served.

    The forms the sources disagree on (``trafficTypeId`` or ``trafficType.id``, epoch or ISO
    timestamps, the case of ``dataType``, tag shapes) stay as served: raw exactness compares
    served values, and the staging models reconcile the forms.
    """
    return [{**record, **context} for record in records]
