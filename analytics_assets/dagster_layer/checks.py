"""Asset checks: freshness (from the cadences) and data quality (keys and references).

Quality checks read the warehouse through dlt's SQL client. They join the writers' pool and
lock, so on DuckDB they never race a load for the file.
"""


from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    asset_check,
    build_last_update_freshness_checks,
)

from analytics_assets.dagster_layer.assets import POOL
from analytics_assets.dagster_layer.policies import CADENCES
from analytics_assets.dagster_layer.resources import WarehouseResource
from analytics_assets.dagster_layer.translator import asset_key
from analytics_assets.split_source import ENDPOINTS
from analytics_assets.warehouse import make_pipeline, writer_lock


@dataclass(frozen=True)
class Reference:
    """Every row of ``table`` has a row in ``target`` with the same ``columns``."""

    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.table}_references_{self.target}"


REFERENCES: tuple[Reference, ...] = (
    *(
        Reference(e.table, ("workspace_id",), "workspaces", ("id",))
        for e in ENDPOINTS
        if e.scope == "workspace"
    ),
    *(
        Reference(e.table, ("environment_id",), "environments", ("id",))
        for e in ENDPOINTS
        if e.scope == "environment"
    ),
    Reference(
        "segments_keys",
        ("environment_id", "segment_name"),
        "environment_segments",
        ("environment_id", "name"),
    ),
    Reference("feature_flag_definitions", ("workspace_id", "id"), "feature_flags", ("workspace_id", "id")),
)


def _current(table: str) -> str:
    history = any(e.table == table and e.history for e in ENDPOINTS)
    return "_dlt_valid_to IS NULL" if history else "1 = 1"


def _count(warehouse: WarehouseResource, tables: Sequence[str], sql: Callable[..., str]) -> Any:
    """Run a count query over qualified table names; None when a table is not loaded yet."""
    settings = warehouse.settings()
    with writer_lock(settings):
        pipeline = make_pipeline(settings)
        with pipeline.sql_client() as client:
            qualified = [client.make_qualified_table_name(t) for t in tables]
            for name in qualified:
                try:
                    client.execute_sql(f"SELECT 1 FROM {name} LIMIT 1")
                except Exception:
                    return None
            return client.execute_sql(sql(*qualified))[0][0]


def _unique_key_check(table: str, key: tuple[str, ...]) -> Any:
    columns = ", ".join(key)

    @asset_check(
        asset=asset_key(table),
        name="natural_key_unique",
        description=f"({columns}) identifies exactly one current row.",
        pool=POOL,
        blocking=False,
    )
    def check(warehouse: WarehouseResource) -> AssetCheckResult:
        duplicates = _count(
            warehouse,
            [table],
            lambda t: f"SELECT count(*) FROM (SELECT {columns} FROM {t} WHERE {_current(table)}"
            f" GROUP BY {columns} HAVING count(*) > 1) AS duplicates",
        )
        if duplicates is None:
            return AssetCheckResult(passed=False, metadata={"reason": f"{table} is not loaded"})
        return AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_keys": duplicates})

    return check


def _reference_check(reference: Reference) -> Any:
    join = " AND ".join(
        f"r.{tc} = s.{c}" for c, tc in zip(reference.columns, reference.target_columns)
    )

    @asset_check(
        asset=asset_key(reference.table),
        name=f"references_{reference.target}",
        description=f"Every row's ({', '.join(reference.columns)}) exists in {reference.target}.",
        pool=POOL,
        blocking=False,
    )
    def check(warehouse: WarehouseResource) -> AssetCheckResult:
        orphans = _count(
            warehouse,
            [reference.table, reference.target],
            lambda s, r: f"SELECT count(*) FROM {s} AS s WHERE {_current(reference.table)}"
            f" AND NOT EXISTS (SELECT 1 FROM {r} AS r WHERE {join}"
            f" AND {_current(reference.target).replace('_dlt', 'r._dlt')})",
        )
        if orphans is None:
            return AssetCheckResult(
                passed=True,
                severity=AssetCheckSeverity.WARN,
                metadata={"reason": "not all tables are loaded yet"},
            )
        # Between a parent's refresh and its children's, orphans are expected for a while:
        # a warning, not an error.
        return AssetCheckResult(
            passed=orphans == 0, severity=AssetCheckSeverity.WARN, metadata={"orphan_rows": orphans}
        )

    return check


QUALITY_CHECKS = (
    *(_unique_key_check(e.table, e.primary_key) for e in ENDPOINTS),
    *(_reference_check(r) for r in REFERENCES),
)

FRESHNESS_CHECKS = tuple(
    check
    for cadence in CADENCES
    for check in build_last_update_freshness_checks(
        assets=[asset_key(t) for t in cadence.tables], lower_bound_delta=cadence.fail_after
    )
)
