"""The organisation the sandbox serves: plain objects plus the API records built from them.

Objects hold the state; ``record(...)`` methods turn one into the JSON record the Admin API
returns (field names and shapes per contract §2 and §3.1/§3.2). Records are built on demand,
page by page, so the served organisation stays small in memory; segment keys are not stored
at all (see :mod:`analytics_assets.sandbox.keys`).
"""

from __future__ import annotations

import bisect
import copy
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from analytics_assets.sandbox.endpoints import CHANGE_REQUEST_STATUSES, USER_STATUSES
from analytics_assets.sandbox.forms import ServedForms
from analytics_assets.sandbox.keys import KeySequence

Record = dict[str, Any]


def iso_millis(epoch_ms: int) -> str:
    """Epoch milliseconds as the ISO-8601 string flag sets use (contract §2.8)."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@dataclass
class Workspace:
    """A workspace (Harness "project"), contract §2.1."""

    id: str
    name: str
    requires_title_and_comments: bool

    def record(self) -> Record:
        return {
            "name": self.name,
            "type": "workspace",
            "id": self.id,
            "requiresTitleAndComments": self.requires_title_and_comments,
        }


@dataclass
class Environment:
    """An environment; the list endpoint returns only id, name and production (§2.2)."""

    id: str
    name: str
    production: bool
    workspace_id: str

    def record(self) -> Record:
        return {"name": self.name, "id": self.id, "production": self.production}

    def reference(self) -> Record:
        return {"id": self.id, "name": self.name}


@dataclass
class TrafficType:
    """A traffic type, contract §2.3 (``type`` and ``workspace`` as seen by the AB schema)."""

    id: str
    name: str
    display_attribute_id: str | None
    workspace_id: str

    def record(self, workspace: Workspace) -> Record:
        return {
            "name": self.name,
            "id": self.id,
            "type": "trafficType",
            "displayAttributeId": self.display_attribute_id,
            "workspace": {"type": "workspace", "id": workspace.id, "name": workspace.name},
        }

    def reference(self) -> Record:
        return {"id": self.id, "name": self.name}


@dataclass
class RolloutStatus:
    """A rollout status, contract §2.7 (ids are per workspace here)."""

    id: str
    name: str
    description: str
    workspace_id: str

    def record(self) -> Record:
        return {"id": self.id, "name": self.name, "description": self.description}


@dataclass
class FlagSet:
    """A flag set (v3), contract §2.8; ``createdAt`` is an ISO string, not epoch ms."""

    id: str
    seq: int
    name: str
    description: str
    workspace_id: str
    created_at: int

    def record(self) -> Record:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "workspace": {"id": self.workspace_id, "type": "workspace"},
            "createdAt": iso_millis(self.created_at),
            "type": "flag_set",
        }


@dataclass
class Flag:
    """Workspace-level feature-flag metadata, contract §2.4.

    ``legacy`` flags predate rollout statuses and owners: those keys are absent from their
    records, as in the older fixtures the contract cites.
    """

    id: str
    name: str
    workspace_id: str
    description: str | None
    traffic_type_id: str
    creation_time: int
    rollout_status_id: str | None
    rollout_status_timestamp: int | None
    tags: list[str] | None
    owners: list[tuple[str, str]]
    legacy: bool = False

    def record(self, org: Organisation) -> Record:
        traffic_type = org.traffic_type_by_id[self.traffic_type_id]
        record: Record = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "trafficType": traffic_type.reference(),
            "creationTime": self.creation_time,
        }
        if not self.legacy:
            status = org.rollout_status_by_id.get(self.rollout_status_id or "")
            record["rolloutStatus"] = {"id": status.id, "name": status.name} if status else None
            record["rolloutStatusTimestamp"] = self.rollout_status_timestamp
        record["tags"] = None if self.tags is None else [{"name": tag} for tag in self.tags]
        if not self.legacy:
            record["owners"] = [{"id": owner, "type": kind} for owner, kind in self.owners]
        if "new_field" in org.drift:
            digest = hashlib.blake2b(self.id.encode(), digest_size=1).digest()[0]
            record["releaseChannel"] = ("stable", "beta", "canary")[digest % 3]
        if "type_change" in org.drift:
            record["creationTime"] = iso_millis(self.creation_time)
        return record


@dataclass
class FlagDefinition:
    """A flag's definition in one environment, contract §3.1; ``id`` is the flag's id."""

    flag_id: str
    environment_id: str
    killed: bool
    treatments: list[Record]
    default_treatment: str
    baseline_treatment: str
    traffic_allocation: int
    rules: list[Record]
    default_rule: list[Record]
    creation_time: int
    last_update_time: int
    last_traffic_received_at: int | None
    impressions_disabled: bool
    flag_set_ids: list[str] = field(default_factory=list)

    def record(self, org: Organisation) -> Record:
        flag = org.flag_by_id[self.flag_id]
        environment = org.environment_by_id[self.environment_id]
        record: Record = {
            "id": flag.id,
            "name": flag.name,
            "environment": environment.reference(),
            "trafficType": org.traffic_type_by_id[flag.traffic_type_id].reference(),
            "killed": self.killed,
            "treatments": copy.deepcopy(self.treatments),
            "defaultTreatment": self.default_treatment,
            "baselineTreatment": self.baseline_treatment,
            "trafficAllocation": self.traffic_allocation,
            "rules": copy.deepcopy(self.rules),
            "defaultRule": copy.deepcopy(self.default_rule),
            "creationTime": self.creation_time,
            "lastUpdateTime": self.last_update_time,
        }
        # Never-evaluated flags have no traffic timestamp: the key is absent.
        if self.last_traffic_received_at is not None:
            record["lastTrafficReceivedAt"] = self.last_traffic_received_at
        record["impressionsDisabled"] = self.impressions_disabled
        record["flagSets"] = [
            {"id": flag_set_id, "type": "flagSet"} for flag_set_id in self.flag_set_ids
        ]
        return record


@dataclass
class Segment:
    """Workspace-level segment metadata, contract §2.5: no id, keyed by (workspace, name)."""

    name: str
    workspace_id: str
    description: str | None
    traffic_type_id: str
    creation_time: int
    tags: list[str] | None

    def record(self, org: Organisation) -> Record:
        return {
            "name": self.name,
            "description": self.description,
            "trafficType": org.traffic_type_by_id[self.traffic_type_id].reference(),
            "creationTime": self.creation_time,
            "tags": None if self.tags is None else [{"name": tag} for tag in self.tags],
        }


@dataclass
class SegmentActivation:
    """A segment activated (defined) in one environment, with its keys (§3.2, §2.6)."""

    segment_name: str
    workspace_id: str
    environment_id: str
    creation_time: int
    keys: KeySequence
    open_change_request_id: str | None = None

    def record(self, org: Organisation) -> Record:
        segment = org.segment_by_key[(self.workspace_id, self.segment_name)]
        return {
            "name": self.segment_name,
            "environment": org.environment_by_id[self.environment_id].reference(),
            "trafficType": org.traffic_type_by_id[segment.traffic_type_id].reference(),
            "creationTime": self.creation_time,
        }


@dataclass
class User:
    """A user, contract §2.9; ``group_ids is None`` means the `groups` key is absent."""

    id: str
    seq: int
    name: str
    email: str
    status: str
    two_factor: bool
    group_ids: list[str] | None

    def record(self) -> Record:
        record: Record = {
            "id": self.id,
            "type": "user",
            "name": self.name,
            "email": self.email,
            "status": self.status,
            "2fa": self.two_factor,
        }
        if self.group_ids is not None:
            record["groups"] = [{"id": group_id, "type": "group"} for group_id in self.group_ids]
        return record


@dataclass
class Group:
    """A group, contract §2.10; descriptions may be empty strings."""

    id: str
    name: str
    description: str

    def record(self) -> Record:
        return {"id": self.id, "name": self.name, "description": self.description, "type": "group"}


@dataclass
class ChangeRequest:
    """A change request, contract §2.11: exactly one payload object, the others null.

    The payload is a snapshot taken when the request was made, so it does not follow later
    edits of the flag or segment.
    """

    id: str
    seq: int
    status: str
    title: str
    comment: str | None
    operation_type: str
    workspace_id: str
    environment_id: str | None
    approvers: list[str]
    comments: list[Record]
    rollout_status: Record | None
    rollout_status_timestamp: int | None
    split: Record | None = None
    segment: Record | None = None
    scheduled_for: int | None = None
    scheduled_for_timezone: str | None = None

    def record(self) -> Record:
        record: Record = {
            "split": copy.deepcopy(self.split),
            "segment": copy.deepcopy(self.segment),
            "largeSegment": None,
            "ruleBasedSegment": None,
            "id": self.id,
            "status": self.status,
            "title": self.title,
            "comment": self.comment,
            "workspace": {"id": self.workspace_id, "type": "workspace"},
            "approvers": list(self.approvers),
            "operationType": self.operation_type,
            "comments": copy.deepcopy(self.comments),
            "rolloutStatus": copy.deepcopy(self.rollout_status),
            "rolloutStatusTimestamp": self.rollout_status_timestamp,
        }
        if self.scheduled_for is not None:
            record["scheduledFor"] = self.scheduled_for
            record["scheduledForTimezone"] = self.scheduled_for_timezone
        return record


@dataclass
class Attribute:
    """One attribute of a traffic type's schema, contract §3.4.

    ``data_type`` is kept upper case (or None, "display the raw string"); the served case is
    a form setting. Implicitly created attributes have no type, display name or description.
    """

    id: str
    seq: int
    workspace_id: str
    traffic_type_id: str
    display_name: str | None
    description: str | None
    data_type: str | None
    is_searchable: bool
    suggested_values: list[str]

    def record(self, org: Organisation) -> Record:
        data_type = self.data_type
        if org.forms.attribute_data_type == "lower" and data_type is not None:
            data_type = data_type.lower()
        elif org.forms.attribute_data_type == "null":
            data_type = None
        return {
            "id": self.id,
            "organizationId": org.organization_id,
            "trafficTypeId": self.traffic_type_id,
            "displayName": self.display_name,
            "description": self.description,
            "dataType": data_type,
            "isSearchable": self.is_searchable,
            "suggestedValues": list(self.suggested_values),
        }


def _traffic_type_fields(org: Organisation, traffic_type_id: str) -> Record:
    """contract §3.6: `trafficTypeId` (+ a null URN) per HGO, or `trafficType {id, name}` per PY."""
    if org.forms.rule_based_segment_traffic_type == "object":
        return {"trafficType": org.traffic_type_by_id[traffic_type_id].reference()}
    return {"trafficTypeId": traffic_type_id, "trafficTypeURN": None}


def _rule_based_timestamps(org: Organisation, created: int, updated: int) -> Record:
    """contract §3.6: epoch-ms `creationTime`, or ISO-8601 `createdAt` / `updatedAt`."""
    if org.forms.rule_based_segment_timestamps == "iso":
        return {"createdAt": iso_millis(created), "updatedAt": iso_millis(updated)}
    return {"creationTime": created}


@dataclass
class RuleBasedSegment:
    """A rule-based segment of a workspace (the project-level list item), contract §3.6."""

    id: str
    name: str
    workspace_id: str
    traffic_type_id: str
    description: str
    creator_id: str
    creation_time: int
    update_time: int
    tags: list[str] | None

    def record(self, org: Organisation) -> Record:
        return {
            "id": self.id,
            "workspaceIds": [self.workspace_id],
            "orgId": org.organization_id,
            "name": self.name,
            "status": "ACTIVE",
            **_traffic_type_fields(org, self.traffic_type_id),
            "description": self.description,
            "creator": {"type": "User", "id": self.creator_id},
            **_rule_based_timestamps(org, self.creation_time, self.update_time),
            "views": None,
            "favorite": None,
            "tags": None if self.tags is None else [{"name": tag} for tag in self.tags],
            "canEdit": None,
            "constraints": None,
        }


@dataclass
class RuleBasedSegmentDefinition:
    """A rule-based segment's definition in one environment, contract §3.6.

    Rules have conditions but no buckets. With epoch timestamps the record has PY's field
    set (no id); with ISO timestamps HGO's (id, description, createdAt, updatedAt).
    """

    segment_id: str
    workspace_id: str
    environment_id: str
    rules: list[Record]
    excluded_keys: list[str]
    excluded_segments: list[Record]
    creation_time: int
    update_time: int

    def record(self, org: Organisation) -> Record:
        segment = org.rule_based_segment_by_id[self.segment_id]
        record: Record = {}
        if org.forms.rule_based_segment_timestamps == "iso":
            record["id"] = segment.id
        record["name"] = segment.name
        if org.forms.rule_based_segment_timestamps == "iso":
            record["description"] = segment.description
        record.update(_traffic_type_fields(org, segment.traffic_type_id))
        record.update(_rule_based_timestamps(org, self.creation_time, self.update_time))
        record["rules"] = copy.deepcopy(self.rules)
        if org.forms.rule_based_segment_matchers == "docs":
            for rule in record["rules"]:
                condition = rule["condition"]
                condition["matchers"] = [_docs_matcher(m) for m in condition["matchers"]]
        record["excludedKeys"] = list(self.excluded_keys)
        record["excludedSegments"] = copy.deepcopy(self.excluded_segments)
        return record


_MATCHER_VALUE_FIELDS = ("string", "strings", "number", "bool", "date", "between", "depends")


def _docs_matcher(matcher: Record) -> Record:
    """A flag-dialect matcher in the docs example's `attribute`/`operator`/`value` (§3.6)."""
    docs: Record = {
        "attribute": matcher.get("attribute"),
        "operator": matcher["type"],
        "value": next((matcher[f] for f in _MATCHER_VALUE_FIELDS if f in matcher), None),
    }
    if "negate" in matcher:
        docs["negate"] = matcher["negate"]
    return docs


@dataclass
class LargeSegment:
    """A large segment of a workspace (metadata only; members are not exportable), §3.5."""

    id: str
    name: str
    workspace_id: str
    description: str | None
    """None: served as null, or absent when ``description_absent``."""
    description_absent: bool
    traffic_type_id: str
    creation_time: int
    tags: list[str] | None

    def record(self, org: Organisation) -> Record:
        record: Record = {"id": self.id, "name": self.name}
        if not self.description_absent:
            record["description"] = self.description
        record["trafficType"] = org.traffic_type_by_id[self.traffic_type_id].reference()
        record["creationTime"] = self.creation_time
        record["tags"] = _large_segment_tags(org, self.tags)
        return record


def _large_segment_tags(org: Organisation, tags: list[str] | None) -> list[Record] | None:
    """contract §3.5: `[{name}]` (PY), URN references `[{id, type, name}]` (HGO), or null."""
    form = org.forms.large_segment_tags
    if tags is None or form == "null":
        return None
    if form == "urns":
        return [
            {
                "id": "tag-" + hashlib.blake2b(tag.encode(), digest_size=6).hexdigest(),
                "type": "tag",
                "name": tag,
            }
            for tag in tags
        ]
    return [{"name": tag} for tag in tags]


@dataclass
class LargeSegmentDefinition:
    """A large segment defined in one environment (metadata), contract §3.5."""

    segment_name: str
    workspace_id: str
    environment_id: str
    creation_time: int

    def record(self, org: Organisation) -> Record:
        segment = org.large_segment_by_key[(self.workspace_id, self.segment_name)]
        return {
            "id": segment.id,
            "name": segment.name,
            "environment": org.environment_by_id[self.environment_id].reference(),
            "trafficType": org.traffic_type_by_id[segment.traffic_type_id].reference(),
            "creationTime": self.creation_time,
        }


@dataclass
class MarkerIndex:
    """Items in marker order with their sort keys, for cursor pagination (contract §1.5)."""

    items: list[Any]
    seqs: list[int]

    @classmethod
    def of(cls, items: Sequence[Any]) -> MarkerIndex:
        ordered = sorted(items, key=lambda item: item.seq)
        return cls(ordered, [item.seq for item in ordered])

    def index_after(self, seq: int) -> int:
        return bisect.bisect_right(self.seqs, seq)

    def index_before(self, seq: int) -> int:
        return bisect.bisect_left(self.seqs, seq)


@dataclass
class Organisation:
    """One Split organisation at one generation: everything the sandbox serves.

    Containers keep creation order, which is also the order the API lists things in.
    Call :meth:`freeze` after building or evolving to refresh the lookup indexes.
    """

    seed: int
    size: str
    generation: int
    workspaces: list[Workspace] = field(default_factory=list)
    environments: dict[str, list[Environment]] = field(default_factory=dict)
    traffic_types: dict[str, list[TrafficType]] = field(default_factory=dict)
    rollout_statuses: dict[str, list[RolloutStatus]] = field(default_factory=dict)
    flag_sets: dict[str, list[FlagSet]] = field(default_factory=dict)
    flags: dict[str, list[Flag]] = field(default_factory=dict)
    definitions: dict[str, list[FlagDefinition]] = field(default_factory=dict)
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    activations: dict[str, list[SegmentActivation]] = field(default_factory=dict)
    users: list[User] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    change_requests: list[ChangeRequest] = field(default_factory=list)
    organization_id: str = ""
    attributes: dict[str, list[Attribute]] = field(default_factory=dict)
    """By traffic type id (traffic type ids are unique across workspaces)."""
    rule_based_segments: dict[str, list[RuleBasedSegment]] = field(default_factory=dict)
    rule_based_definitions: dict[str, list[RuleBasedSegmentDefinition]] = field(
        default_factory=dict
    )
    large_segments: dict[str, list[LargeSegment]] = field(default_factory=dict)
    large_segment_definitions: dict[str, list[LargeSegmentDefinition]] = field(default_factory=dict)
    drift: tuple[str, ...] = ()
    """Schema drift applied to served records (``SandboxConfig.drift``)."""
    forms: ServedForms = field(default_factory=ServedForms)
    """Which documented form the newer endpoints serve (``SandboxConfig.forms``)."""

    # Indexes, rebuilt by freeze().
    workspace_by_id: dict[str, Workspace] = field(default_factory=dict, repr=False)
    environment_by_id: dict[str, Environment] = field(default_factory=dict, repr=False)
    traffic_type_by_id: dict[str, TrafficType] = field(default_factory=dict, repr=False)
    rollout_status_by_id: dict[str, RolloutStatus] = field(default_factory=dict, repr=False)
    flag_by_id: dict[str, Flag] = field(default_factory=dict, repr=False)
    segment_by_key: dict[tuple[str, str], Segment] = field(default_factory=dict, repr=False)
    activation_by_key: dict[tuple[str, str], SegmentActivation] = field(
        default_factory=dict, repr=False
    )
    flag_set_index: dict[str, MarkerIndex] = field(default_factory=dict, repr=False)
    attribute_index: dict[str, MarkerIndex] = field(default_factory=dict, repr=False)
    rule_based_segment_by_id: dict[str, RuleBasedSegment] = field(default_factory=dict, repr=False)
    large_segment_by_key: dict[tuple[str, str], LargeSegment] = field(
        default_factory=dict, repr=False
    )
    user_index: dict[tuple[str, ...], MarkerIndex] = field(default_factory=dict, repr=False)
    change_request_index: dict[tuple[str, ...], MarkerIndex] = field(
        default_factory=dict, repr=False
    )

    def freeze(self) -> Organisation:
        """Rebuild the lookup indexes; the organisation is read-only afterwards."""
        self.workspace_by_id = {ws.id: ws for ws in self.workspaces}
        self.environment_by_id = {
            env.id: env for envs in self.environments.values() for env in envs
        }
        self.traffic_type_by_id = {tt.id: tt for tts in self.traffic_types.values() for tt in tts}
        self.rollout_status_by_id = {
            rs.id: rs for statuses in self.rollout_statuses.values() for rs in statuses
        }
        self.flag_by_id = {flag.id: flag for flags in self.flags.values() for flag in flags}
        self.segment_by_key = {
            (seg.workspace_id, seg.name): seg for segs in self.segments.values() for seg in segs
        }
        self.activation_by_key = {
            (act.environment_id, act.segment_name): act
            for acts in self.activations.values()
            for act in acts
        }
        self.flag_set_index = {ws: MarkerIndex.of(sets) for ws, sets in self.flag_sets.items()}
        self.attribute_index = {tt: MarkerIndex.of(attrs) for tt, attrs in self.attributes.items()}
        self.rule_based_segment_by_id = {
            rbs.id: rbs for segments in self.rule_based_segments.values() for rbs in segments
        }
        self.large_segment_by_key = {
            (seg.workspace_id, seg.name): seg
            for segments in self.large_segments.values()
            for seg in segments
        }
        self.user_index = {}
        self.change_request_index = {}
        return self

    def users_with_status(self, statuses: tuple[str, ...]) -> MarkerIndex:
        """Users whose status is one of ``statuses``, in marker order (cached)."""
        index = self.user_index.get(statuses)
        if index is None:
            index = MarkerIndex.of([user for user in self.users if user.status in statuses])
            self.user_index[statuses] = index
        return index

    def change_requests_with_status(self, statuses: tuple[str, ...]) -> MarkerIndex:
        """Change requests whose status is one of ``statuses``, in marker order (cached)."""
        index = self.change_request_index.get(statuses)
        if index is None:
            index = MarkerIndex.of(
                [request for request in self.change_requests if request.status in statuses]
            )
            self.change_request_index[statuses] = index
        return index

    def environments_of(self, workspace_id: str) -> list[Environment]:
        return self.environments.get(workspace_id, [])

    def iter_environments(self) -> Iterator[tuple[Workspace, Environment]]:
        for workspace in self.workspaces:
            for environment in self.environments_of(workspace.id):
                yield workspace, environment

    def user_status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(USER_STATUSES, 0)
        for user in self.users:
            counts[user.status] += 1
        return counts

    def change_request_status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CHANGE_REQUEST_STATUSES, 0)
        for request in self.change_requests:
            counts[request.status] += 1
        return counts

    def segment_key_count(self) -> int:
        return sum(len(act.keys) for acts in self.activations.values() for act in acts)
