"""What the source knows about the Split Admin API, said once.

``ENDPOINTS`` is the declarative table that the source, the Dagster layer, the docs and the
tests read: each table's path, pagination style, record selector, page size, natural key,
scope and write semantics. Section numbers refer to the API contract the project builds
against (the Split Admin API as documented publicly; see the README).

``SplitSettings`` resolves the connection settings from the environment, the public
configuration interface of the project:

=================================  ==========================================================
``SPLIT_API_KEY``                  The Admin API key (also read from dlt secrets ``api_key``).
``SPLIT_API_BASE_URL``             Default ``https://api.split.io/internal/api``.
``SPLIT_AUTH_SCHEME``              ``bearer`` (default) or ``x-api-key`` (Harness accounts).
``SPLIT_MAX_REQUESTS_PER_SECOND``  Optional client-side pacing limit.
``SPLIT_MAX_RETRIES``              Retries per request after transient faults (default 20).
``SPLIT_BACKOFF_FACTOR``           Backoff base in seconds (default 2): full jitter, doubling.
``SPLIT_MAX_BACKOFF``              Longest single backoff in seconds (default 60).
``SPLIT_REQUEST_TIMEOUT``          Seconds a socket read may wait (default 60).
``SPLIT_REQUEST_DEADLINE``         Seconds one whole request may take, body included (300).
``SPLIT_MAX_SERVER_WAIT``          Longest rate-limit wait a server may ask for (900 s).
``SPLIT_RATE_LIMIT_WAIT_BUDGET``   Total rate-limit waiting per sync (default 3600 s).
``SPLIT_MAX_CONCURRENT_REQUESTS``  Requests in flight at once (default: rate x latency, 4-16).
=================================  ==========================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

from analytics_assets.split_source.errors import SplitConfigurationError

DEFAULT_BASE_URL = "https://api.split.io/internal/api"
AUTH_SCHEMES = ("bearer", "x-api-key")

# contract §2.9: without `status` the API omits PENDING users, so each status is asked for.
USER_STATUSES = ("ACTIVE", "DEACTIVATED", "PENDING")
# contract §2.11: without `status` the API returns REQUESTED only.
CHANGE_REQUEST_STATUSES = (
    "REQUESTED",
    "SCHEDULE_REQUESTED",
    "APPROVED",
    "REJECTED",
    "WITHDRAWN",
    "PUBLISHED",
)

Pagination = Literal["offset", "marker", "none", "list_or_offset", "attribute_markers"]
"""``list_or_offset`` and ``attribute_markers`` are the newer endpoints' paging (contract
§3.4–§3.6), whose form varies: see :mod:`analytics_assets.split_source.paging_variants`."""
Scope = Literal["org", "workspace", "environment"]


@dataclass(frozen=True)
class Endpoint:
    """One Admin API list endpoint and the table it fills."""

    table: str
    path: str
    """Relative to the base URL. Placeholders: {workspace_id}, {environment_id}, {segment_name},
    {traffic_type_id}."""
    pagination: Pagination
    records: str
    """JSONPath of the records in the response ("$" for a bare array)."""
    primary_key: tuple[str, ...]
    scope: Scope
    description: str
    contract: str
    page_size: int | None = None
    """The largest page the endpoint serves; every request asks for it, so none is wasted."""
    total: str | None = None
    """Offset endpoints: where the total sits in the envelope."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Fixed query parameters; placeholders are resolved like the path's."""
    parent: str | None = None
    """The table whose rows drive this endpoint's requests (a real lineage edge)."""
    describes: tuple[str, ...] = ()
    """Other tables whose objects this one details (lineage beyond the request parent)."""
    statuses: tuple[str, ...] = ()
    """Each status is requested separately (the API filters by one status at a time)."""
    history: bool = False
    """Keep every version (dlt scd2) instead of the current state only."""
    missing_is_empty: bool = False
    """A 404 means "nothing here" (not an error) for this endpoint."""
    optional_for_harness: bool = False
    """Deprecated for Harness-migrated accounts: warn and skip if the API refuses it."""
    paywall_means_empty: bool = False
    """A 402 means "not in this organisation's plan": warn once, zero rows, not a failure."""
    columns: Mapping[str, str] = field(default_factory=dict)
    """Every documented column (dlt's normalized name -> dlt data type), so it exists from the
    first load with its type even when the API omits or nulls it (see ``schema.py``)."""


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        table="workspaces",
        path="v2/workspaces",
        pagination="offset",
        records="objects",
        total="totalCount",
        # The documented maximum is 1000, but clients disagree (contract §2.1); 100 is safe,
        # and an organisation rarely has more workspaces than fit one page.
        page_size=100,
        primary_key=("id",),
        scope="org",
        description="Workspaces (Harness FME projects) of the organisation.",
        contract="§2.1",
        columns={
            "id": "text",
            "name": "text",
            "type": "text",
            "requires_title_and_comments": "bool",
        },
    ),
    Endpoint(
        table="environments",
        path="v2/environments/ws/{workspace_id}",
        pagination="none",
        records="$",
        primary_key=("workspace_id", "id"),
        scope="workspace",
        parent="workspaces",
        description="Environments of each workspace (id, name, production flag).",
        contract="§2.2",
        columns={
            "id": "text",
            "name": "text",
            "production": "bool",
        },
    ),
    Endpoint(
        table="traffic_types",
        path="v2/trafficTypes/ws/{workspace_id}",
        pagination="none",
        records="$",
        primary_key=("workspace_id", "id"),
        scope="workspace",
        parent="workspaces",
        description="Traffic types of each workspace.",
        contract="§2.3",
        columns={
            "id": "text",
            "name": "text",
            "display_attribute_id": "text",
        },
    ),
    Endpoint(
        table="rollout_statuses",
        path="v2/rolloutStatuses",
        params={"wsId": "{workspace_id}"},
        pagination="none",
        records="$",
        primary_key=("workspace_id", "id"),
        scope="workspace",
        parent="workspaces",
        description="Rollout statuses available in each workspace.",
        contract="§2.7",
        columns={
            "id": "text",
            "name": "text",
            "description": "text",
        },
    ),
    Endpoint(
        table="flag_sets",
        path="v3/flag-sets",
        params={"workspace_id": "{workspace_id}"},
        pagination="marker",
        # contract §2.8: the array key has varied across API versions.
        records="data,objects,items",
        page_size=200,
        primary_key=("workspace_id", "id"),
        scope="workspace",
        parent="workspaces",
        description="Flag sets of each workspace.",
        contract="§2.8",
        columns={
            "id": "text",
            "name": "text",
            "description": "text",
            "created_at": "timestamp",
            "type": "text",
            "workspace__id": "text",
            "workspace__type": "text",
        },
    ),
    Endpoint(
        table="feature_flags",
        path="v2/splits/ws/{workspace_id}",
        pagination="offset",
        records="objects",
        total="totalCount",
        page_size=50,
        primary_key=("workspace_id", "id"),
        scope="workspace",
        parent="workspaces",
        description="Feature flags (splits) of each workspace: metadata, tags, owners.",
        contract="§2.4",
        columns={
            "id": "text",
            "name": "text",
            "description": "text",
            "creation_time": "bigint",
            "rollout_status__id": "text",
            "rollout_status__name": "text",
            "rollout_status_timestamp": "bigint",
            "traffic_type__id": "text",
            "traffic_type__name": "text",
        },
    ),
    Endpoint(
        table="segments",
        path="v2/segments/ws/{workspace_id}",
        pagination="offset",
        records="objects",
        total="totalCount",
        page_size=50,
        primary_key=("workspace_id", "name"),
        scope="workspace",
        parent="workspaces",
        description="Segments of each workspace (segments have no id; the name is the key).",
        contract="§2.5",
        columns={
            "name": "text",
            "description": "text",
            "creation_time": "bigint",
            "traffic_type__id": "text",
            "traffic_type__name": "text",
        },
    ),
    Endpoint(
        table="feature_flag_definitions",
        path="v2/splits/ws/{workspace_id}/environments/{environment_id}",
        pagination="offset",
        records="objects",
        total="totalCount",
        page_size=50,
        primary_key=("environment_id", "id"),
        scope="environment",
        parent="environments",
        describes=("feature_flags",),
        history=True,
        description=(
            "Per-environment flag definitions (targeting rules, treatments, default rule, kill"
            " state), with history: each change is a new version valid from _dlt_valid_from to"
            " _dlt_valid_to (null for the current version)."
        ),
        contract="§3.1",
        columns={
            "id": "text",
            "name": "text",
            "environment": "json",
            "traffic_type": "json",
            "killed": "bool",
            "treatments": "json",
            "default_treatment": "text",
            "baseline_treatment": "text",
            "traffic_allocation": "bigint",
            "rules": "json",
            "default_rule": "json",
            "creation_time": "bigint",
            "last_update_time": "bigint",
            "last_traffic_received_at": "bigint",
            "impressions_disabled": "bool",
            "flag_sets": "json",
        },
    ),
    Endpoint(
        table="environment_segments",
        path="v2/segments/ws/{workspace_id}/environments/{environment_id}",
        pagination="offset",
        records="objects",
        total="totalCount",
        page_size=50,
        primary_key=("environment_id", "name"),
        scope="environment",
        parent="environments",
        describes=("segments",),
        description="Segments active in each environment.",
        contract="§3.2",
        columns={
            "name": "text",
            "creation_time": "bigint",
            "traffic_type__id": "text",
            "traffic_type__name": "text",
            "environment__id": "text",
            "environment__name": "text",
        },
    ),
    Endpoint(
        table="segments_keys",
        path="v2/segments/{environment_id}/{segment_name}/keys",
        pagination="offset",
        records="keys",
        # contract §2.6: this envelope's total is `count`, not `totalCount`.
        total="count",
        page_size=100,
        primary_key=("environment_id", "segment_name", "key"),
        scope="environment",
        parent="environment_segments",
        # contract §2.6: 404 when the segment is not (or no longer) active in the environment.
        missing_is_empty=True,
        description="Member keys of each segment in each environment where it is active.",
        contract="§2.6",
    ),
    Endpoint(
        table="users",
        path="v2/users",
        params={"status": "{status}"},
        pagination="marker",
        records="data",
        page_size=200,
        primary_key=("id",),
        scope="org",
        statuses=USER_STATUSES,
        optional_for_harness=True,
        description="Users of the organisation, in every status (ACTIVE, DEACTIVATED, PENDING).",
        contract="§2.9",
        columns={
            "id": "text",
            "type": "text",
            "name": "text",
            "email": "text",
            "status": "text",
            "_2fa": "bool",
        },
    ),
    Endpoint(
        table="groups",
        path="v2/groups",
        pagination="offset",
        records="objects",
        total="totalCount",
        page_size=200,
        primary_key=("id",),
        scope="org",
        optional_for_harness=True,
        description="User groups of the organisation.",
        contract="§2.10",
        columns={
            "id": "text",
            "name": "text",
            "description": "text",
            "type": "text",
        },
    ),
    Endpoint(
        table="change_requests",
        path="v2/changeRequests",
        params={"status": "{status}"},
        pagination="marker",
        records="data",
        page_size=100,
        primary_key=("id",),
        scope="org",
        statuses=CHANGE_REQUEST_STATUSES,
        description="Change requests in all six statuses, with their payloads and comments.",
        contract="§2.11",
        columns={
            "id": "text",
            "status": "text",
            "title": "text",
            "comment": "text",
            "operation_type": "text",
            "workspace__id": "text",
            "workspace__type": "text",
            "rollout_status__id": "text",
            "rollout_status__type": "text",
            "rollout_status__name": "text",
            "rollout_status_timestamp": "bigint",
            "scheduled_for": "bigint",
            "scheduled_for_timezone": "text",
            "split__id": "text",
            "split__name": "text",
            "split__environment": "json",
            "split__killed": "bool",
            "segment__name": "text",
            "segment__keys": "json",
            "segment__environment": "json",
        },
    ),
    Endpoint(
        table="attributes",
        path="v2/schema/ws/{workspace_id}/trafficTypes/{traffic_type_id}",
        # contract §3.4: paginate=true&markerLimit=200 (the maximum); the legacy bare array
        # is accepted too, and the envelope's key is `objects` or `data`.
        pagination="attribute_markers",
        records="$,objects,data",
        page_size=200,
        primary_key=("workspace_id", "traffic_type_id", "id"),
        scope="workspace",
        parent="traffic_types",
        description=(
            "Attribute schema of each traffic type (what targeting can match on): data type,"
            " display name, description, searchable, suggested values."
        ),
        contract="§3.4",
        # contract §3.4: every field except `id` is nullable (implicitly created attributes).
        columns={
            "organization_id": "text",
            "display_name": "text",
            "description": "text",
            "data_type": "text",
            "is_searchable": "bool",
        },
    ),
    Endpoint(
        table="rule_based_segments",
        path="v2/rule-based-segments/ws/{workspace_id}",
        # contract §3.6: a bare array live, `{objects}` or an offset envelope in the docs.
        pagination="list_or_offset",
        records="$,objects",
        total="totalCount",
        page_size=50,
        primary_key=("workspace_id", "id"),
        scope="workspace",
        parent="workspaces",
        description="Rule-based segments of each workspace (metadata).",
        contract="§3.6",
        # contract §3.6: `trafficTypeId` or `trafficType {id, name}`; epoch `creationTime` or
        # ISO `createdAt`/`updatedAt`: both forms' columns exist, whichever the API serves.
        columns={
            "org_id": "text",
            "name": "text",
            "status": "text",
            "description": "text",
            "traffic_type_id": "text",
            "traffic_type_urn": "text",
            "traffic_type__id": "text",
            "traffic_type__name": "text",
            "creation_time": "bigint",
            "created_at": "timestamp",
            "updated_at": "timestamp",
            "creator__type": "text",
            "creator__id": "text",
        },
    ),
    Endpoint(
        table="rule_based_segment_definitions",
        path="v2/rule-based-segments/ws/{workspace_id}/environments/{environment_id}",
        pagination="list_or_offset",
        records="$,objects",
        total="totalCount",
        page_size=50,
        primary_key=("environment_id", "name"),
        scope="environment",
        parent="environments",
        describes=("rule_based_segments",),
        history=True,
        description=(
            "Per-environment rule-based segment definitions (rules, excluded keys, excluded"
            " segments), with history like flag definitions."
        ),
        contract="§3.6",
        # As rule_based_segments; a version row keeps nested objects whole (`traffic_type`).
        columns={
            "id": "text",
            "description": "text",
            "traffic_type_id": "text",
            "traffic_type": "json",
            "creation_time": "bigint",
            "created_at": "timestamp",
            "updated_at": "timestamp",
            "rules": "json",
            "excluded_keys": "json",
            "excluded_segments": "json",
        },
    ),
    Endpoint(
        table="large_segments",
        path="v2/large-segments/ws/{workspace_id}",
        # contract §3.5: a bare array (first-party code) or an offset envelope (docs).
        pagination="list_or_offset",
        records="$,objects",
        total="totalCount",
        page_size=50,
        primary_key=("workspace_id", "name"),
        scope="workspace",
        parent="workspaces",
        paywall_means_empty=True,
        description="Large segments of each workspace (metadata; members are not exportable).",
        contract="§3.5",
        columns={
            "id": "text",
            "description": "text",
            "traffic_type__id": "text",
            "traffic_type__name": "text",
            "creation_time": "bigint",
        },
    ),
    Endpoint(
        table="environment_large_segments",
        path="v2/large-segments/ws/{workspace_id}/environments/{environment_id}",
        pagination="list_or_offset",
        records="$,objects",
        total="totalCount",
        page_size=50,
        primary_key=("environment_id", "name"),
        scope="environment",
        parent="environments",
        describes=("large_segments",),
        paywall_means_empty=True,
        description="Large segments defined in each environment (metadata).",
        contract="§3.5",
        columns={
            "id": "text",
            "environment__id": "text",
            "environment__name": "text",
            "traffic_type__id": "text",
            "traffic_type__name": "text",
            "creation_time": "bigint",
        },
    ),
)

ENDPOINTS_BY_TABLE: dict[str, Endpoint] = {e.table: e for e in ENDPOINTS}


def upstream_tables(endpoint: Endpoint) -> tuple[str, ...]:
    """The tables a table derives from: its scope's table, its request parent, what it details."""
    scope_table = {"org": None, "workspace": "workspaces", "environment": "environments"}[
        endpoint.scope
    ]
    candidates = (scope_table, endpoint.parent, *endpoint.describes)
    return tuple(dict.fromkeys(t for t in candidates if t and t != endpoint.table))


TABLES: tuple[str, ...] = tuple(ENDPOINTS_BY_TABLE)


_NUMBER_HINTS = {
    "SPLIT_MAX_REQUESTS_PER_SECOND": "requests per second, e.g. 3 or 0.5",
    "SPLIT_MAX_RETRIES": "a whole number of retries, e.g. 20",
    "SPLIT_BACKOFF_FACTOR": "seconds, e.g. 2",
    "SPLIT_MAX_BACKOFF": "seconds, e.g. 60",
    "SPLIT_REQUEST_TIMEOUT": "seconds, e.g. 60",
    "SPLIT_REQUEST_DEADLINE": "seconds, e.g. 300",
    "SPLIT_MAX_SERVER_WAIT": "seconds, e.g. 900",
    "SPLIT_RATE_LIMIT_WAIT_BUDGET": "seconds, e.g. 3600",
    "SPLIT_MAX_CONCURRENT_REQUESTS": "a whole number, e.g. 4",
}


def _env_number(environ: Mapping[str, str], name: str, kind: type, default: object) -> object:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    hint = _NUMBER_HINTS.get(name, "a number")
    try:
        value = kind(raw.strip())
    except ValueError:
        raise SplitConfigurationError(
            f"{name}={raw!r} is not valid; set it to {hint}, or unset it for the default."
        ) from None
    if value != value or value in (float("inf"), float("-inf")):  # NaN or infinite
        raise SplitConfigurationError(f"{name}={raw!r} is not valid; set it to {hint}.")
    if value < 0:
        raise SplitConfigurationError(f"{name} must not be negative (got {raw!r}); use {hint}.")
    return value


@dataclass(frozen=True)
class SplitSettings:
    """How to reach the API, and how patiently. The key is kept out of ``repr`` and messages.

    Retries: a transient fault (5xx, a dropped or stalled connection, a timeout, a body that is
    not the documented shape) is retried up to ``max_retries`` times with exponential backoff
    and full jitter (``backoff_factor`` doubling, at most ``max_backoff``). The defaults ride
    out an API incident of several minutes. A 429 that says when to come back is flow
    control, not a fault: it is waited out without using a retry, up to ``max_server_wait``
    per answer and ``rate_limit_wait_budget`` per sync.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    auth_scheme: str = "bearer"
    max_requests_per_second: float | None = None
    max_retries: int = 20
    backoff_factor: float = 2.0
    max_backoff: float = 60.0
    request_timeout: float = 60.0
    request_deadline: float = 300.0
    max_server_wait: float = 900.0
    rate_limit_wait_budget: float = 3600.0
    max_concurrent_requests: int | None = None  # None: follows rate x latency (pacing)

    def __post_init__(self) -> None:
        # Keys pasted from a secret file often end in a newline; surrounding whitespace is
        # never part of a key.
        object.__setattr__(self, "api_key", (self.api_key or "").strip())
        if not self.api_key:
            raise SplitConfigurationError(
                "No Split Admin API key. Set SPLIT_API_KEY (or `api_key` in .dlt/secrets.toml);"
                " create a key in Split under Admin settings > API keys (type Admin)."
            )
        if not _HEADER_SAFE.fullmatch(self.api_key):
            raise SplitConfigurationError(
                "SPLIT_API_KEY contains a character that cannot be sent in an HTTP header (a"
                " space, a line break, a quote mark or a non-ASCII character inside the key)."
                " Copy the key again from Split's Admin settings > API keys. (The key is not"
                " shown here.)"
            )
        object.__setattr__(self, "base_url", (self.base_url or "").strip())
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SplitConfigurationError(
                f"SPLIT_API_BASE_URL={self.base_url!r} is not a valid http(s) URL; expected"
                f" something like {DEFAULT_BASE_URL!r}."
            )
        if self.auth_scheme not in AUTH_SCHEMES:
            raise SplitConfigurationError(
                f"SPLIT_AUTH_SCHEME={self.auth_scheme!r} is not supported; use one of"
                f" {', '.join(AUTH_SCHEMES)}."
            )
        if self.max_requests_per_second is not None and self.max_requests_per_second <= 0:
            raise SplitConfigurationError(
                "SPLIT_MAX_REQUESTS_PER_SECOND must be more than 0 (e.g. 3, or 0.5 for one"
                " request every two seconds); unset it to learn the limit from the API."
            )
        for name, value in (
            ("SPLIT_REQUEST_TIMEOUT", self.request_timeout),
            ("SPLIT_REQUEST_DEADLINE", self.request_deadline),
        ):
            if value <= 0:
                raise SplitConfigurationError(
                    f"{name} must be more than 0 seconds (got {value:g}); it bounds how long"
                    f" a request may wait, e.g. {_NUMBER_HINTS[name].split('e.g. ')[1]}."
                )
        if self.max_concurrent_requests is not None and self.max_concurrent_requests < 1:
            raise SplitConfigurationError(
                "SPLIT_MAX_CONCURRENT_REQUESTS must be at least 1 (e.g. 4)."
            )

    @property
    def normalized_base_url(self) -> str:
        return self.base_url.rstrip("/") + "/"

    def with_overrides(self, **changes: object) -> SplitSettings:
        """A copy with some fields changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> SplitSettings:
        """Resolve settings from SPLIT_* variables, then dlt secrets for the key."""
        env = os.environ if environ is None else environ
        api_key = overrides.pop("api_key", None) or env.get("SPLIT_API_KEY")
        if not api_key or not str(api_key).strip():
            api_key = _key_from_dlt_secrets()
        defaults = cls.__dataclass_fields__
        numbers: dict[str, object] = {}
        for name, kind in (
            ("max_requests_per_second", float),
            ("max_retries", int),
            ("backoff_factor", float),
            ("max_backoff", float),
            ("request_timeout", float),
            ("request_deadline", float),
            ("max_server_wait", float),
            ("rate_limit_wait_budget", float),
            ("max_concurrent_requests", int),
        ):
            numbers[name] = _env_number(env, f"SPLIT_{name.upper()}", kind, defaults[name].default)
        values: dict[str, object] = {
            "api_key": api_key or "",
            "base_url": env.get("SPLIT_API_BASE_URL") or DEFAULT_BASE_URL,
            "auth_scheme": (env.get("SPLIT_AUTH_SCHEME") or "bearer").strip().lower(),
            **numbers,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


# Visible ASCII only: what an HTTP header value can carry without being refused or rewritten.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def _key_from_dlt_secrets() -> str | None:
    """The original configuration read ``dlt.secrets["api_key"]``; keep that working."""
    import dlt

    for name in ("api_key", "sources.split.api_key"):
        try:
            value = dlt.secrets.get(name)
        except Exception:  # a malformed secrets.toml must not hide the clearer error below
            value = None
        if value:
            return str(value)
    return None
