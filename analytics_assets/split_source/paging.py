"""How each pagination style reads a body (contract §1.5): pure logic, no HTTP.

A ``Paging`` gives the first request's page parameters and reads each answer into a
``Page``: its records and the next page's parameters (None: the last page). A body that is
not the documented form raises ``UnexpectedShape``, which the transport retries as a
transient fault: a wrong-shaped 200 is never an empty page.

Paging ends on the data: offset paging reads until a short or empty page, and trusts a
claimed total only where it agrees with what was served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Page:
    records: list[dict[str, Any]]
    next_params: dict[str, Any] | None
    """Page parameters of the next request; None when this was the last page."""
    total: int | None = None
    """A total the envelope claims, if any."""


class UnexpectedShape(Exception):
    """The body is not any documented form of the endpoint's answer."""


class Paging(Protocol):
    def first_params(self) -> dict[str, Any]: ...

    def read(self, body: Any, params: dict[str, Any]) -> Page: ...


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        keys = ", ".join(sorted(map(str, value))[:6])
        return f"an object with keys {keys or 'none'}"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def records_of(value: Any, where: str) -> list[dict[str, Any]]:
    """``value`` as a list of records, or UnexpectedShape."""
    if not isinstance(value, list):
        raise UnexpectedShape(f"expected a list of records {where}, got {_describe(value)}")
    for record in value:
        if not isinstance(record, dict):
            raise UnexpectedShape(f"expected records (objects) {where}, got {_describe(record)}")
    return value


def _envelope(body: Any, keys: Sequence[str]) -> tuple[dict[str, Any], str]:
    if not isinstance(body, dict):
        raise UnexpectedShape(
            f"expected an object with `{'`/`'.join(keys)}`, got {_describe(body)}"
        )
    for key in keys:
        if key in body:
            return body, key
    raise UnexpectedShape(f"expected an object with `{'`/`'.join(keys)}`, got {_describe(body)}")


def _count(body: dict[str, Any], names: Sequence[str]) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UnexpectedShape(f"expected `{name}` to be a count, got {value!r}")
        return value
    return None


@dataclass(frozen=True)
class SinglePage:
    """A bare JSON array, one request (environments, traffic types, rollout statuses)."""

    def first_params(self) -> dict[str, Any]:
        return {}

    def read(self, body: Any, params: dict[str, Any]) -> Page:
        return Page(records_of(body, "at the top level"), None)


@dataclass(frozen=True)
class OffsetPaging:
    """``offset``/``limit`` with an ``objects`` + total envelope (the total in ``totals``:
    ``totalCount``, or ``count`` for segment keys, contract §2.6)."""

    page_size: int
    records: str = "objects"
    totals: tuple[str, ...] = ("totalCount",)

    def first_params(self) -> dict[str, Any]:
        return {"offset": 0, "limit": self.page_size}

    def read(self, body: Any, params: dict[str, Any]) -> Page:
        envelope, key = _envelope(body, (self.records,))
        records = records_of(envelope[key], f"in `{key}`")
        total = _count(envelope, self.totals)
        offset, asked = int(params["offset"]), int(params["limit"])
        served_limit = _count(envelope, ("limit",))
        # A server may clamp the limit (contract §5.3); a page is full at what it allows.
        full = min(asked, served_limit) if served_limit else asked
        reached = offset + len(records)
        if not records:
            last = True
        elif total is not None and reached == total:
            last = True  # the total agrees with the data: no extra request to confirm
        elif total is not None and reached < total:
            last = False  # more to come, even after a short page (a clamped limit)
        else:
            # No total, or more rows than it claims: the data decides. A short page ends it.
            last = len(records) < full
        next_params = None if last else {"offset": reached, "limit": asked}
        return Page(records, next_params, total)


@dataclass(frozen=True)
class MarkerPaging:
    """``limit`` + ``after=<nextMarker>`` until the marker is null (contract §1.5)."""

    page_size: int
    records: tuple[str, ...] = ("data",)

    def first_params(self) -> dict[str, Any]:
        return {"limit": self.page_size}

    def read(self, body: Any, params: dict[str, Any]) -> Page:
        envelope, key = _envelope(body, self.records)
        records = records_of(envelope[key], f"in `{key}`")
        marker = envelope.get("nextMarker")
        if marker is not None and not isinstance(marker, str):
            raise UnexpectedShape(f"expected `nextMarker` to be a string or null, got {marker!r}")
        next_params = {"limit": self.page_size, "after": marker} if marker else None
        return Page(records, next_params)
