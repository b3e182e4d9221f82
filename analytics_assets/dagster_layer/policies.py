"""Refresh cadences and freshness, per table, said once.

The automation conditions, the freshness policies on every asset, the executable freshness
checks and the (optional) cron schedules are all derived from ``CADENCES``. Segment keys are
the most expensive table (100 keys a request, up to 100,000 keys a segment), so they refresh
daily; everything else hourly.

Automation: every Split asset refreshes ``on_cron`` of its cadence, that is once per tick and
only after all of its upstream assets have been updated since that tick. So the organisation
tables load first, then the workspace tables, then the environment tables, in that order
whatever the daemon's timing. The dbt models follow ``eager``: they rebuild once their
upstream tables are updated and none is still loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from dagster import (
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    FreshnessPolicy,
    apply_freshness_policy,
    map_asset_specs,
)

from analytics_assets.dagster_layer.translator import GROUP_BY_TABLE, asset_key


@dataclass(frozen=True)
class Cadence:
    name: str
    cron: str  # the tick; automation waits for the upstream tables after it
    fail_after: timedelta
    warn_after: timedelta
    tables: tuple[str, ...]
    # A schedule cannot wait for upstream tables, so it starts this much after the tick.
    schedule_delay_minutes: int = 0

    def __post_init__(self) -> None:
        # The delay shifts the minute field only, so the tick must be one minute of the hour
        # that the delay keeps inside it.
        minute = self.cron.split(" ", 1)[0]
        if not minute.isdigit() or int(minute) + self.schedule_delay_minutes > 59:
            raise ValueError(
                f"Cadence {self.name}: the cron's minute must be a number that stays below 60"
                f" after the {self.schedule_delay_minutes}-minute schedule delay, got {self.cron!r}"
            )

    @property
    def schedule_cron(self) -> str:
        minute, rest = self.cron.split(" ", 1)
        return f"{int(minute) + self.schedule_delay_minutes} {rest}"


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
        "0 * * * *",
        timedelta(hours=3),
        timedelta(hours=2),
        tuple(t for t, g in GROUP_BY_TABLE.items() if g == "split_workspace"),
        schedule_delay_minutes=10,
    ),
    Cadence(
        "environments_hourly",
        "0 * * * *",
        timedelta(hours=3),
        timedelta(hours=2),
        tuple(
            table
            for table, group in GROUP_BY_TABLE.items()
            if group == "split_environment" and table != "segments_keys"
        ),
        schedule_delay_minutes=20,
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


# dbt models: rebuilt once their upstream tables are updated and none is still loading.
MODELS_AUTOMATION = AutomationCondition.eager()


def _with_cadence(spec: AssetSpec) -> AssetSpec:
    table = spec.key.path[-1]
    cadence = CADENCE_BY_TABLE.get(table)
    if cadence is None or spec.key != asset_key(table):
        return spec
    spec = spec.replace_attributes(automation_condition=AutomationCondition.on_cron(cadence.cron))
    return apply_freshness_policy(
        spec,
        FreshnessPolicy.time_window(fail_window=cadence.fail_after, warn_window=cadence.warn_after),
    )


def with_cadences(assets: Sequence[AssetsDefinition]) -> list[AssetsDefinition]:
    """A freshness policy and an automation condition on every Split asset, from its cadence.

    (``dagster.map_asset_specs`` over the assets, not ``Definitions.map_asset_specs``, which
    is a preview API and warns on every load of the code location.)"""
    return list(map_asset_specs(_with_cadence, assets))
