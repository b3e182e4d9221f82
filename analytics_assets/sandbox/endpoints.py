"""The sandbox's endpoint table: every served list endpoint, said once.

Each entry names the logical table it feeds (the name used by ``/_sandbox/stats`` and
``/_sandbox/ground-truth``), its path under ``/internal/api``, its pagination style
(contract §1.5), its page-size default and maximum (contract §2 and §5.3), the page size a
perfect client uses (``crawl_limit``, the basis of the minimal-request count) and the natural
key of the ground-truth rows.

The table is written from ``shared/split-admin-api.md`` only; the ingestion code keeps its own
table on purpose, so a mistake in one is caught by tests against the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

API_PREFIX = "/internal/api"
"""Path prefix of the real Admin API (contract §1.1); a client's base URL ends with it."""

PaginationStyle = Literal[
    "offset", "keys", "marker", "array", "attribute_markers", "list_or_offset"
]
"""``attribute_markers`` and ``list_or_offset`` serve the form a sandbox setting selects
(:mod:`analytics_assets.sandbox.forms`): attributes as a legacy array or a marker envelope
(§3.4); rule-based and large segments as a bare array, ``{objects}`` or an offset envelope."""


@dataclass(frozen=True)
class EndpointSpec:
    """One list endpoint of the Admin API as the sandbox serves it."""

    table: str
    path: str
    style: PaginationStyle
    natural_key: tuple[str, ...]
    default_limit: int | None = None
    max_limit: int | None = None
    crawl_limit: int | None = None
    """Page size the minimal-request count assumes; the maximum unless noted."""

    @property
    def page_size(self) -> int | None:
        """The page size a perfect client asks for (``crawl_limit`` or else ``max_limit``)."""
        return self.crawl_limit if self.crawl_limit is not None else self.max_limit


ENDPOINTS: tuple[EndpointSpec, ...] = (
    # contract §2.1: default 20, max 1000, but other sources say 100 — the minimal-request
    # count assumes the safe 100 the contract recommends.
    EndpointSpec("workspaces", "/v2/workspaces", "offset", ("id",), 20, 1000, crawl_limit=100),
    EndpointSpec("environments", "/v2/environments/ws/{ws}", "array", ("workspace_id", "id")),
    EndpointSpec("traffic_types", "/v2/trafficTypes/ws/{ws}", "array", ("workspace_id", "id")),
    # contract §2.7: statuses may be org-wide, so the key keeps the workspace.
    EndpointSpec("rollout_statuses", "/v2/rolloutStatuses", "array", ("workspace_id", "id")),
    EndpointSpec("flag_sets", "/v3/flag-sets", "marker", ("workspace_id", "id"), 50, 200),
    EndpointSpec("feature_flags", "/v2/splits/ws/{ws}", "offset", ("workspace_id", "id"), 20, 50),
    EndpointSpec(
        "feature_flag_definitions",
        "/v2/splits/ws/{ws}/environments/{env}",
        "offset",
        ("environment_id", "id"),
        20,
        50,
    ),
    # contract §2.5: segments have no id; names are unique within a workspace.
    EndpointSpec("segments", "/v2/segments/ws/{ws}", "offset", ("workspace_id", "name"), 20, 50),
    EndpointSpec(
        "environment_segments",
        "/v2/segments/ws/{ws}/environments/{env}",
        "offset",
        ("environment_id", "name"),
        20,
        50,
    ),
    # contract §2.6: offset paging, but the envelope is `keys` + `count`.
    EndpointSpec(
        "segments_keys",
        "/v2/segments/{env}/{segment}/keys",
        "keys",
        ("environment_id", "segment_name", "key"),
        100,
        100,
    ),
    EndpointSpec("users", "/v2/users", "marker", ("id",), 50, 200),
    EndpointSpec("groups", "/v2/groups", "offset", ("id",), 50, 200),
    EndpointSpec("change_requests", "/v2/changeRequests", "marker", ("id",), 20, 100),
    # contract §3.4: `markerLimit` default 50, max 200 (clamped); ids are unique per traffic type.
    EndpointSpec(
        "attributes",
        "/v2/schema/ws/{ws}/trafficTypes/{tt}",
        "attribute_markers",
        ("workspace_id", "traffic_type_id", "id"),
        50,
        200,
    ),
    # contract §3.6: no paging is documented; PY sends limit 50, so the offset form uses 50.
    EndpointSpec(
        "rule_based_segments",
        "/v2/rule-based-segments/ws/{ws}",
        "list_or_offset",
        ("workspace_id", "id"),
        50,
        50,
    ),
    EndpointSpec(
        "rule_based_segment_definitions",
        "/v2/rule-based-segments/ws/{ws}/environments/{env}",
        "list_or_offset",
        ("environment_id", "name"),
        50,
        50,
    ),
    # contract §3.5: docs-derived clients send limit 20 or 50; a robust client asks for 50.
    EndpointSpec(
        "large_segments",
        "/v2/large-segments/ws/{ws}",
        "list_or_offset",
        ("workspace_id", "name"),
        20,
        50,
    ),
    EndpointSpec(
        "environment_large_segments",
        "/v2/large-segments/ws/{ws}/environments/{env}",
        "list_or_offset",
        ("environment_id", "name"),
        20,
        50,
    ),
)

ENDPOINTS_BY_TABLE: dict[str, EndpointSpec] = {spec.table: spec for spec in ENDPOINTS}
TABLES: tuple[str, ...] = tuple(spec.table for spec in ENDPOINTS)

USER_STATUSES: tuple[str, ...] = ("ACTIVE", "DEACTIVATED", "PENDING")
"""contract §2.9: without `status` only ACTIVE and DEACTIVATED users are listed."""
DEFAULT_USER_STATUSES: tuple[str, ...] = ("ACTIVE", "DEACTIVATED")

CHANGE_REQUEST_STATUSES: tuple[str, ...] = (
    "REQUESTED",
    "SCHEDULE_REQUESTED",
    "APPROVED",
    "REJECTED",
    "WITHDRAWN",
    "PUBLISHED",
)
"""contract §2.11: without `status` only REQUESTED change requests are listed."""
DEFAULT_CHANGE_REQUEST_STATUSES: tuple[str, ...] = ("REQUESTED",)
