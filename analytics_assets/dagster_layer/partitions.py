"""Workspace and environment partitions, kept in step with the organisation.

A partition key is the object's name followed by its Split id in parentheses,
``Default (ws-1)`` for a workspace and ``Default/Production (env-1)`` for an environment: the
UI's partition pickers find a partition by its name, and the id keeps each key unique and is
what a load is scoped by. A rename gives the partition a new key (the old one is deleted and
the new one loaded, which replaces the object's rows by id). The org-level assets publish what
exists as materialization metadata (``split/workspaces`` lists the workspaces,
``split/environments`` the environments with their workspace); sensors, schedules, the CLI and
the environment assets read those listings instead of opening the warehouse, so nothing here
competes with a running load for DuckDB's single writer lock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, DagsterInstance, DynamicPartitionsDefinition

workspace_partitions = DynamicPartitionsDefinition(name="split_workspaces")
environment_partitions = DynamicPartitionsDefinition(name="split_environments")

WORKSPACES_KEY = AssetKey(["split", "workspaces"])
ENVIRONMENTS_KEY = AssetKey(["split", "environments"])
LISTING_METADATA_KEY = "split/listing"
# Dagster refuses "..." (its range syntax) and control characters in a key; the UI's partition
# text box splits a selection on commas and brackets. Such characters in a name become spaces:
# the id at the end of the key still tells every object apart.
_NOT_IN_KEYS = re.compile(r"\.\.\.|[\x00-\x1f\x7f,\[\]]")


def partition_key(name: str | None, object_id: str) -> str:
    """The key of an object's partition: ``<name> (<id>)``, or the bare id without a name."""
    label = " ".join(_NOT_IN_KEYS.sub(" ", name or "").split())
    return f"{label} ({object_id})" if label else object_id


def partition_id(key: str) -> str:
    """The Split id a partition key ends with (a key from before names were added to keys is
    the bare id)."""
    if key.endswith(")") and " (" in key:
        return key[key.rindex(" (") + 2 : -1]
    return key


def listing_entry(row: Mapping[str, Any], id_field: str = "id") -> dict[str, Any]:
    """One listed object: its id, its display fields, its partition key, and a fingerprint of
    its row. An environment's row carries its workspace's name (``workspace_name``): it is
    part of the environment's key."""
    fingerprint = hashlib.sha256(
        json.dumps(dict(row), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    object_id = str(row[id_field])
    entry = {"id": object_id, "name": row.get("name"), "fingerprint": fingerprint}
    name = row.get("name")
    if "workspace_id" in row:
        entry["workspace_id"] = row["workspace_id"]
        name = f"{row.get('workspace_name') or row['workspace_id']}/{name or object_id}"
    entry["partition"] = partition_key(name, object_id)
    return entry


def entry_partition(entry: Mapping[str, Any]) -> str:
    """A listing entry's partition key (a listing stored before keys had names: its id)."""
    return str(entry.get("partition") or entry["id"])


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
    current = [entry_partition(entry) for entry in listing]
    existing = set(existing_partitions)
    previous = {entry_partition(e): e.get("fingerprint") for e in (previous_listing or [])}
    added = tuple(key for key in current if key not in existing)
    deleted = tuple(p for p in existing_partitions if p not in set(current))
    changed = tuple(
        key
        for key, entry in zip(current, listing, strict=True)
        if key in existing and key in previous and previous[key] != entry["fingerprint"]
    )
    return PartitionChanges(added=added, deleted=deleted, changed=changed)


def listing_by_partition(instance: DagsterInstance, key: AssetKey) -> dict[str, dict[str, Any]]:
    """partition key -> listing entry, from the latest materialization of ``key``."""
    return {entry_partition(e): e for e in latest_listing(instance, key) or []}


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
