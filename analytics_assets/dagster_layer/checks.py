"""Asset checks: freshness (from the cadences) and data quality (keys and references).

Quality checks read the warehouse through dlt's SQL client, one op (and one connection) per
group of assets, evaluating only the checks a run selected. They join the writers' pool and
lock, so on DuckDB they never race a load for the file.
"""

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from analytics_assets.dagster_layer.assets import pool_for
from analytics_assets.dagster_layer.partitions import (
    ENVIRONMENTS_KEY,
    WORKSPACES_KEY,
    listing_by_partition,
)
from analytics_assets.dagster_layer.policies import CADENCES, Cadence
from analytics_assets.dagster_layer.resources import WarehouseResource
from analytics_assets.dagster_layer.translator import GROUP_BY_TABLE, asset_key
from analytics_assets.split_source import ENDPOINTS
from analytics_assets.warehouse import WarehouseSettings, warehouse_reader, writer_lock

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Reference:
    """Every row of ``table`` has a row in ``target`` with the same ``columns``.

    ``scope`` is the column (in both tables) that says which partition of ``target`` a row
    needs; None when ``target`` is loaded whole (the organisation tables).
    """

    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    scope: str | None = None

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
        scope="environment_id",
    ),
    Reference(
        "feature_flag_definitions",
        ("workspace_id", "id"),
        "feature_flags",
        ("workspace_id", "id"),
        scope="workspace_id",
    ),
)


def _current(table: str, alias: str = "") -> str:
    history = any(e.table == table and e.history for e in ENDPOINTS)
    return f"{alias}_dlt_valid_to IS NULL" if history else "1 = 1"


@dataclass(frozen=True)
class QualityCheck:
    """One data-quality check: the offending rows, which must be none.

    ``offending`` gives a SELECT of the offending rows (their key columns, a ``scope`` and
    a boolean ``pending``: the row waits for a load of its target that has not happened
    since the row was loaded, so it says nothing about the data yet).
    """

    table: str
    name: str
    description: str
    tables: tuple[str, ...]
    offending: Callable[..., str]
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
        offending=lambda t: (
            f"SELECT {columns}, count(*) AS copies, '' AS scope, 1 = 0 AS pending FROM {t}"
            f" WHERE {_current(table)} GROUP BY {columns} HAVING count(*) > 1"
        ),
        severity=AssetCheckSeverity.ERROR,
    )


def _load_time(column: str) -> str:
    # dlt load ids are the load's start as epoch seconds, in text.
    return f"CAST({column} AS DOUBLE PRECISION)"


def _reference(reference: Reference) -> QualityCheck:
    join = " AND ".join(
        f"r.{tc} = s.{c}" for c, tc in zip(reference.columns, reference.target_columns, strict=True)
    )
    scope_filter = f" WHERE t.{reference.scope} = s.{reference.scope}" if reference.scope else ""
    scope = f"s.{reference.scope}" if reference.scope else "''"

    def offending(s: str, r: str) -> str:
        # A row is pending when its target (that partition of it) was last loaded before the
        # row was: runs of different partitionings happen in any order (an environment run
        # before the workspace run that lists a new flag), so such a row is not an orphan yet.
        target_loaded = f"(SELECT max({_load_time('t._dlt_load_id')}) FROM {r} AS t{scope_filter})"
        return (
            f"SELECT {', '.join(f's.{c}' for c in reference.columns)}, {scope} AS scope,"
            f" coalesce({target_loaded}, 0) < {_load_time('s._dlt_load_id')} AS pending"
            f" FROM {s} AS s WHERE {_current(reference.table, 's.')}"
            f" AND NOT EXISTS (SELECT 1 FROM {r} AS r WHERE {join}"
            f" AND {_current(reference.target, 'r.')})"
        )

    return QualityCheck(
        table=reference.table,
        name=reference.name,
        description=f"Every row's ({', '.join(reference.columns)}) exists in {reference.target}"
        " (rows loaded after their target's last load are reported as pending, not failed).",
        tables=(reference.table, reference.target),
        offending=offending,
        severity=AssetCheckSeverity.WARN,
    )


QUALITY: tuple[QualityCheck, ...] = (
    *(_unique_key(e.table, e.primary_key) for e in ENDPOINTS),
    *(_reference(r) for r in REFERENCES),
)


def _evaluate(
    client: Any, check: QualityCheck, partition_of: Mapping[str, str]
) -> AssetCheckResult:
    """``partition_of``: workspace or environment id -> its partition key, to name the
    partitions whose rows wait for a load."""
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
                description=f"{table} is not loaded yet.",
                metadata={"reason": f"{table} is not loaded yet"},
            )
    rows = check.offending(*qualified)
    total, pending = client.execute_sql(
        "SELECT count(*), coalesce(sum(CASE WHEN pending THEN 1 ELSE 0 END), 0)"
        f" FROM ({rows}) AS offending"
    )[0]
    failing = int(total) - int(pending)
    metadata: dict[str, Any] = {"offending_rows": failing, "pending_rows": int(pending)}
    description = None
    if failing:
        with client.execute_query(
            f"SELECT * FROM ({rows}) AS offending WHERE NOT pending LIMIT {SAMPLE_ROWS}"
        ) as cursor:
            names = [d[0].lower() for d in cursor.description]
            sample = [
                {n: v for n, v in zip(names, row, strict=True) if n not in ("pending", "scope")}
                for row in cursor.fetchall()
            ]
        metadata["sample"] = MetadataValue.json(json.loads(json.dumps(sample, default=str)))
        description = f"{failing} offending row(s), e.g. {json.dumps(sample[0], default=str)}."
    if pending:
        scopes = [
            partition_of.get(str(row[0]), str(row[0]))
            for row in client.execute_sql(
                f"SELECT DISTINCT scope FROM ({rows}) AS offending WHERE pending"
                f" LIMIT {SAMPLE_ROWS}"
            )
        ]
        metadata["pending_partitions"] = MetadataValue.json(scopes)
        waiting = (
            f"{pending} row(s) wait for the next load of {check.tables[1]}"
            + (f" for partition(s) {', '.join(s for s in scopes if s)}" if any(scopes) else "")
            + ", which was last loaded before them."
        )
        description = f"{description} {waiting}" if description else waiting
    return AssetCheckResult(
        asset_key=asset_key(check.table),
        check_name=check.name,
        passed=failing == 0,
        severity=check.severity,
        description=description,
        metadata=metadata,
    )


def _group_checks(group: str, pool: str | None) -> Any:
    checks = [c for c in QUALITY if GROUP_BY_TABLE[c.table] == group]

    @multi_asset_check(
        name=f"{group}_quality",
        specs=[c.spec for c in checks],
        can_subset=True,
        # Reads only: on DuckDB they queue with the writers for the file; elsewhere they must
        # not take API slots away from loads.
        pool=pool,
    )
    def quality(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        selected = context.selected_asset_check_keys
        settings = warehouse.settings()
        partition_of = {
            entry["id"]: key
            for listing in (WORKSPACES_KEY, ENVIRONMENTS_KEY)
            for key, entry in listing_by_partition(context.instance, listing).items()
        }
        with writer_lock(settings), warehouse_reader(settings, read_only=True) as client:
            for check in checks:
                if check.spec.key in selected:
                    yield _evaluate(client, check, partition_of)

    return quality


def build_quality_checks(destination: WarehouseSettings) -> tuple[Any, ...]:
    """One multi-asset check per group. The checks only read: on DuckDB they queue with the
    writers for the file (the writers' pool); elsewhere they take no pool, so they never
    hold an API slot that a load could use."""
    pool = pool_for(destination) if destination.single_writer else None
    return tuple(
        _group_checks(group, pool)
        for group in ("split_organisation", "split_workspace", "split_environment")
    )


def current_time() -> float:
    """Now, as a POSIX timestamp (a seam for tests that move the clock)."""
    return time.time()


def describe_duration(seconds: float) -> str:
    """A rough, readable age: "42 seconds", "3 minutes", "5 hours", "2 days"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = max(int(seconds), 0)
    return f"{count} second{'s' if count != 1 else ''}"


FRESHNESS_CHECK_NAME = "freshness_check"


def _freshness_checks(cadence: Cadence) -> Any:
    """Each table of a cadence was updated (any partition) within its ``fail_after``.

    Dagster's ``build_last_update_freshness_checks`` is superseded by freshness policies
    (which the assets carry too); this executable form remains for CI and the CLI.
    """
    allowed = describe_duration(cadence.fail_after / timedelta(seconds=1))
    specs = [
        AssetCheckSpec(
            name=FRESHNESS_CHECK_NAME,
            asset=asset_key(table),
            description=f"Updated within the last {allowed} (the {cadence.name} cadence).",
            blocking=False,
        )
        for table in cadence.tables
    ]

    @multi_asset_check(name=f"{cadence.name}_freshness", specs=specs, can_subset=True)
    def freshness(context: AssetCheckExecutionContext):
        now = current_time()
        for check_key in context.selected_asset_check_keys:
            event = context.instance.get_latest_materialization_event(check_key.asset_key)
            if event is None:
                yield AssetCheckResult(
                    asset_key=check_key.asset_key,
                    check_name=FRESHNESS_CHECK_NAME,
                    passed=False,
                    description="Never materialized: run `analytics-assets sync`, or"
                    " materialize it in the UI.",
                )
                continue
            age = now - event.timestamp
            passed = age <= cadence.fail_after.total_seconds()
            yield AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=FRESHNESS_CHECK_NAME,
                passed=passed,
                description=f"Last updated {describe_duration(age)} ago; allowed {allowed}.",
                metadata={
                    "last_updated": MetadataValue.timestamp(event.timestamp),
                    "age_seconds": round(age, 1),
                    "allowed_seconds": cadence.fail_after.total_seconds(),
                },
            )

    return freshness


FRESHNESS_CHECKS = tuple(_freshness_checks(cadence) for cadence in CADENCES)
