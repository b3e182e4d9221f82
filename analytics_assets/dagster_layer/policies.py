"""Refresh cadences and freshness, per table, said once.

The schedules, the freshness policies on every asset and the executable freshness checks
are all derived from ``CADENCES``. Segment keys are the most expensive table (100 keys a
request, up to 100,000 keys a segment), so they refresh daily; everything else hourly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from dagster import (
    AssetsDefinition,
    AssetSpec,
    FreshnessPolicy,
    apply_freshness_policy,
    map_asset_specs,
)

from analytics_assets.dagster_layer.translator import GROUP_BY_TABLE, asset_key


@dataclass(frozen=True)
class Cadence:
    name: str
    cron: str
    fail_after: timedelta
    warn_after: timedelta
    tables: tuple[str, ...]


CADENCES: tuple[Cadence, ...] = (
    Cadence(
        "organisation_hourly",
        "0 * * * *",
        timedelta(hours=3),
        timedelta(hours=2),
        tuple(t for t, g in GROUP_BY_TABLE.items() if g == "split_organisation"),
    ),
    Cadence(
        "workspaces_hourly",
        "10 * * * *",
        timedelta(hours=3),
        timedelta(hours=2),
        tuple(t for t, g in GROUP_BY_TABLE.items() if g == "split_workspace"),
    ),
    Cadence(
        "environments_hourly",
        "20 * * * *",
        timedelta(hours=3),
        timedelta(hours=2),
        tuple(
            table
            for table, group in GROUP_BY_TABLE.items()
            if group == "split_environment" and table != "segments_keys"
        ),
    ),
    Cadence(
        "segment_keys_daily",
        "30 3 * * *",
        timedelta(hours=30),
        timedelta(hours=26),
        ("segments_keys",),
    ),
)

CADENCE_BY_TABLE = {table: cadence for cadence in CADENCES for table in cadence.tables}


def _with_freshness(spec: AssetSpec) -> AssetSpec:
    table = spec.key.path[-1]
    cadence = CADENCE_BY_TABLE.get(table)
    if cadence is None or spec.key != asset_key(table):
        return spec
    return apply_freshness_policy(
        spec,
        FreshnessPolicy.time_window(fail_window=cadence.fail_after, warn_window=cadence.warn_after),
    )


def with_freshness_policies(assets: Sequence[AssetsDefinition]) -> list[AssetsDefinition]:
    """A freshness policy on every Split asset, from its cadence.

    (``dagster.map_asset_specs`` over the assets, not ``Definitions.map_asset_specs``, which
    is a preview API and warns on every load of the code location.)"""
    return list(map_asset_specs(_with_freshness, assets))
