"""Workspace and environment partitions, kept in step with the organisation.

The partition keys are Split ids (stable across renames). The org-level assets publish what
exists as materialization metadata (``split/workspaces`` lists the workspaces,
``split/environments`` the environments with their workspace); sensors, schedules, the CLI and
the environment assets read those listings instead of opening the warehouse, so nothing here
competes with a running load for DuckDB's single writer lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, DagsterInstance, DynamicPartitionsDefinition

workspace_partitions = DynamicPartitionsDefinition(name="split_workspaces")
environment_partitions = DynamicPartitionsDefinition(name="split_environments")

WORKSPACES_KEY = AssetKey(["split", "workspaces"])
ENVIRONMENTS_KEY = AssetKey(["split", "environments"])
LISTING_METADATA_KEY = "split/listing"


def listing_entry(row: Mapping[str, Any], id_field: str = "id") -> dict[str, Any]:
    """One listed object: its id, its display fields, and a fingerprint of its row."""
    fingerprint = hashlib.sha256(
        json.dumps(dict(row), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    entry = {"id": str(row[id_field]), "name": row.get("name"), "fingerprint": fingerprint}
    if "workspace_id" in row:
        entry["workspace_id"] = row["workspace_id"]
    return entry


def listing_from_metadata(metadata: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    if not metadata or LISTING_METADATA_KEY not in metadata:
        return None
    value = metadata[LISTING_METADATA_KEY]
    return list(getattr(value, "value", value) or [])


def latest_listing(instance: DagsterInstance, key: AssetKey) -> list[dict[str, Any]] | None:
    """The objects listed by the latest materialization of ``key`` (None if never run)."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return listing_from_metadata(event.asset_materialization.metadata)


@dataclass(frozen=True)
class PartitionChanges:
    """What a sensor, schedule or the CLI must do to match the partitions to a listing."""

    added: tuple[str, ...]
    deleted: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def to_refresh(self) -> tuple[str, ...]:
        return self.added + self.changed


def diff_listing(
    existing_partitions: Sequence[str],
    listing: Sequence[Mapping[str, Any]],
    previous_listing: Sequence[Mapping[str, Any]] | None,
) -> PartitionChanges:
    """Compare the current partitions (and the previous listing) with a new listing."""
    current_ids = [entry["id"] for entry in listing]
    existing = set(existing_partitions)
    previous = {e["id"]: e.get("fingerprint") for e in (previous_listing or [])}
    added = tuple(i for i in current_ids if i not in existing)
    deleted = tuple(p for p in existing_partitions if p not in set(current_ids))
    changed = tuple(
        e["id"]
        for e in listing
        if e["id"] in existing and e["id"] in previous and previous[e["id"]] != e["fingerprint"]
    )
    return PartitionChanges(added=added, deleted=deleted, changed=changed)


def environment_refs(instance: DagsterInstance) -> dict[str, str]:
    """environment id -> workspace id, from the latest ``split/environments`` listing."""
    listing = latest_listing(instance, ENVIRONMENTS_KEY) or []
    return {e["id"]: e["workspace_id"] for e in listing}


def contiguous_ranges(all_keys: Sequence[str], wanted: Sequence[str]) -> list[tuple[str, str]]:
    """Group wanted partition keys into runs of neighbours in the partition order.

    A single-run backfill policy lets one run serve a whole range, so a refresh of N
    partitions costs one Dagster run per contiguous range (one load package per partition
    inside it), not N runs.
    """
    wanted_set = set(wanted)
    ranges: list[tuple[str, str]] = []
    start: str | None = None
    previous: str | None = None
    for key in all_keys:
        if key in wanted_set:
            if start is None:
                start = key
            previous = key
        elif start is not None:
            ranges.append((start, previous))  # type: ignore[arg-type]
            start = None
    if start is not None:
        ranges.append((start, previous))  # type: ignore[arg-type]
    return ranges
