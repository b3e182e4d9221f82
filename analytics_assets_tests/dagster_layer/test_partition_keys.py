"""Partition keys carry names people give: Dagster must accept them, the id must come back."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, DynamicPartitionsDefinition

from analytics_assets.dagster_layer.partitions import (
    diff_listing,
    entry_partition,
    listing_entry,
    partition_id,
    partition_key,
)

NAMES = [
    "Default",
    "Experimentation Lab ('25) (week 3)",  # parentheses, as the id's are
    "Production, EU",  # the UI's partition text box splits on commas
    "Stage... or not",  # "..." is Dagster's range syntax
    "tab\there\nnewline",  # control characters Dagster refuses
    "[legacy] checkout",
    "Mobile Apps — São Paulo / iOS",  # a slash, as Workspace/Environment has
    "",
]


@pytest.mark.parametrize("name", NAMES)
def test_every_name_gives_a_key_dagster_accepts_and_the_id_comes_back(name):
    key = partition_key(name, "5f3c1e2a-ws")
    assert partition_id(key) == "5f3c1e2a-ws"
    with DagsterInstance.ephemeral() as instance:
        partitions = DynamicPartitionsDefinition(name="names")
        instance.add_dynamic_partitions(partitions.name, [key])
        assert instance.get_dynamic_partitions(partitions.name) == [key]
    for refused in ("...", ",", "[", "]", "\n", "\t"):
        assert refused not in key


def test_a_key_reads_as_the_name_a_user_types():
    assert partition_key("Default", "ws-1") == "Default (ws-1)"
    assert partition_key("Production, EU", "env-1") == "Production EU (env-1)"
    assert partition_key(None, "ws-1") == "ws-1"
    environment = listing_entry(
        {"id": "env-1", "name": "Production", "workspace_id": "ws-1", "workspace_name": "Default"}
    )
    assert environment["partition"] == "Default/Production (env-1)"


def test_a_bare_id_key_from_before_names_is_its_own_id():
    assert partition_id("5f3c1e2a-ws") == "5f3c1e2a-ws"
    assert entry_partition({"id": "5f3c1e2a-ws", "name": "Default"}) == "5f3c1e2a-ws"


def test_a_rename_or_an_upgrade_replaces_the_partition():
    listing = [listing_entry({"id": "ws-1", "name": "Default (week 2)"})]
    renamed = diff_listing(["Default (ws-1)"], listing, None)
    assert renamed.added == ("Default (week 2) (ws-1)",)
    assert renamed.deleted == ("Default (ws-1)",)
    upgraded = diff_listing(["ws-1"], listing, None)
    assert upgraded.added == ("Default (week 2) (ws-1)",) and upgraded.deleted == ("ws-1",)
    unchanged = diff_listing(["Default (week 2) (ws-1)"], listing, listing)
    assert not (unchanged.added or unchanged.deleted or unchanged.changed)
