"""Asset checks: freshness (from the cadences) and data quality (keys and references).

Quality checks read the warehouse through dlt's SQL client, one op (and one connection) per
group of assets, evaluating only the checks a run selected. They join the writers' pool and
lock, so on DuckDB they never race a load for the file.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    build_last_update_freshness_checks,
    multi_asset_check,
)

from analytics_assets.dagster_layer.assets import POOL, WAREHOUSE_IS_SINGLE_WRITER
from analytics_assets.dagster_layer.policies import CADENCES
from analytics_assets.dagster_layer.resources import WarehouseResource
from analytics_assets.dagster_layer.translator import GROUP_BY_TABLE, asset_key
from analytics_assets.split_source import ENDPOINTS
from analytics_assets.warehouse import warehouse_reader, writer_lock


@dataclass(frozen=True)
class Reference:
    """Every row of ``table`` has a row in ``target`` with the same ``columns``."""

    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"references_{self.target}"


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
    Reference(
        "feature_flag_definitions", ("workspace_id", "id"), "feature_flags", ("workspace_id", "id")
    ),
)


def _current(table: str, alias: str = "") -> str:
    history = any(e.table == table and e.history for e in ENDPOINTS)
    return f"{alias}_dlt_valid_to IS NULL" if history else "1 = 1"


@dataclass(frozen=True)
class QualityCheck:
    """One data-quality check: a count of offending rows that must be zero."""

    table: str
    name: str
    description: str
    tables: tuple[str, ...]
    sql: Callable[..., str]
    severity: AssetCheckSeverity

    @property
    def spec(self) -> AssetCheckSpec:
        return AssetCheckSpec(
            name=self.name,
            asset=asset_key(self.table),
            description=self.description,
            blocking=False,
        )


def _unique_key(table: str, key: tuple[str, ...]) -> QualityCheck:
    columns = ", ".join(key)
    return QualityCheck(
        table=table,
        name="natural_key_unique",
        description=f"({columns}) identifies exactly one current row.",
        tables=(table,),
        sql=lambda t: (
            f"SELECT count(*) FROM (SELECT {columns} FROM {t} WHERE {_current(table)}"
            f" GROUP BY {columns} HAVING count(*) > 1) AS duplicates"
        ),
        severity=AssetCheckSeverity.ERROR,
    )


def _reference(reference: Reference) -> QualityCheck:
    join = " AND ".join(
        f"r.{tc} = s.{c}" for c, tc in zip(reference.columns, reference.target_columns, strict=True)
    )
    return QualityCheck(
        table=reference.table,
        name=reference.name,
        description=f"Every row's ({', '.join(reference.columns)}) exists in {reference.target}.",
        tables=(reference.table, reference.target),
        sql=lambda s, r: (
            f"SELECT count(*) FROM {s} AS s WHERE {_current(reference.table, 's.')}"
            f" AND NOT EXISTS (SELECT 1 FROM {r} AS r WHERE {join}"
            f" AND {_current(reference.target, 'r.')})"
        ),
        # Between a parent's refresh and its children's, orphans are expected for a while:
        # a warning, not an error.
        severity=AssetCheckSeverity.WARN,
    )


QUALITY: tuple[QualityCheck, ...] = (
    *(_unique_key(e.table, e.primary_key) for e in ENDPOINTS),
    *(_reference(r) for r in REFERENCES),
)


def _evaluate(client: Any, check: QualityCheck) -> AssetCheckResult:
    qualified = [client.make_qualified_table_name(t) for t in check.tables]
    for table, name in zip(check.tables, qualified, strict=True):
        try:
            client.execute_sql(f"SELECT 1 FROM {name} LIMIT 1")
        except Exception:
            return AssetCheckResult(
                asset_key=asset_key(check.table),
                check_name=check.name,
                passed=check.severity == AssetCheckSeverity.WARN,
                severity=check.severity,
                metadata={"reason": f"{table} is not loaded yet"},
            )
    offending = client.execute_sql(check.sql(*qualified))[0][0]
    return AssetCheckResult(
        asset_key=asset_key(check.table),
        check_name=check.name,
        passed=offending == 0,
        severity=check.severity,
        metadata={"offending_rows": offending},
    )


def _group_checks(group: str) -> Any:
    checks = [c for c in QUALITY if GROUP_BY_TABLE[c.table] == group]

    @multi_asset_check(
        name=f"{group}_quality",
        specs=[c.spec for c in checks],
        can_subset=True,
        # Reads only: on DuckDB they queue with the writers for the file; elsewhere they must
        # not take API slots away from loads.
        pool=POOL if WAREHOUSE_IS_SINGLE_WRITER else None,
    )
    def quality(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        selected = context.selected_asset_check_keys
        settings = warehouse.settings()
        with writer_lock(settings), warehouse_reader(settings, read_only=True) as client:
            for check in checks:
                if check.spec.key in selected:
                    yield _evaluate(client, check)

    return quality


QUALITY_CHECKS = tuple(
    _group_checks(group) for group in ("split_organisation", "split_workspace", "split_environment")
)

FRESHNESS_CHECKS = tuple(
    check
    for cadence in CADENCES
    for check in build_last_update_freshness_checks(
        assets=[asset_key(t) for t in cadence.tables], lower_bound_delta=cadence.fail_after
    )
)
