"""Comparing a warehouse with the sandbox's ground truth, through dlt's SQL client.

The same comparison serves every destination (DuckDB here, Postgres in its own tests):
natural keys (the same set, no duplicates) and every scalar field of every record.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlt.common.normalizers.naming.snake_case import NamingConvention

from analytics_assets.split_source import ENDPOINTS_BY_TABLE, TABLES
from analytics_assets.warehouse import WarehouseSettings, make_pipeline

ISO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def flatten(record: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Scalar leaves of a record, keyed by their path (dicts are flattened, lists skipped)."""
    flat: dict[tuple[str, ...], Any] = {}
    for name, value in record.items():
        path = (*prefix, name)
        if isinstance(value, Mapping):
            flat.update(flatten(value, path))
        elif not isinstance(value, list):
            flat[path] = value
    return flat


@dataclass
class TableDiff:
    table: str
    expected: int
    actual: int
    duplicates: int = 0
    missing: list[tuple] = field(default_factory=list)
    unexpected: list[tuple] = field(default_factory=list)
    value_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.missing or self.unexpected or self.value_mismatches)

    def __str__(self) -> str:
        return (
            f"{self.table}: expected {self.expected}, got {self.actual}, duplicates"
            f" {self.duplicates}, missing {self.missing[:3]}, unexpected {self.unexpected[:3]},"
            f" values {self.value_mismatches[:3]}"
        )


def _stored_value(pipeline: Any, row: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    """Find a record path in a row: a flattened column, or inside a JSON column above it."""
    for depth in range(len(path), 0, -1):
        column = _column_name(pipeline, path[:depth])
        if column not in row:
            continue
        value = row[column]
        for part in path[depth:]:
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, Mapping) or part not in value:
                return False, None
            value = value[part]
        return True, value
    return False, None


def _normalize(value: Any) -> Any:
    if isinstance(value, datetime):
        # dlt types ISO-8601 strings (flag sets' createdAt) as timestamps: compare instants.
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    if isinstance(value, str) and ISO_TIMESTAMP.fullmatch(value):
        return (
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            .astimezone(timezone.utc)
            .isoformat(timespec="milliseconds")
        )
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


def compare_with_truth(
    warehouse: WarehouseSettings,
    truth: Mapping[str, Any],
    tables: Iterable[str] = TABLES,
    compare_values: bool = True,
) -> list[TableDiff]:
    """Diff each table against the truth rows (current versions for history tables)."""
    pipeline = make_pipeline(warehouse)
    diffs = []
    with pipeline.sql_client() as client:
        normalize_name = client.capabilities.casefold_identifier
        for table in tables:
            endpoint = ENDPOINTS_BY_TABLE[table]
            key = truth["tables"][table]["key"]
            rows = truth["tables"][table]["rows"]
            qualified = client.make_qualified_table_name(table)
            where = "WHERE _dlt_valid_to IS NULL" if endpoint.history else ""
            with client.execute_query(f"SELECT * FROM {qualified} {where}") as cursor:
                columns = [normalize_name(d[0]).lower() for d in cursor.description]
                actual_rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
            key_columns = [_column_name(pipeline, (k,)) for k in key]
            actual_keys = [tuple(str(r[c]) for c in key_columns) for r in actual_rows]
            expected_keys = [tuple(str(r[k]) for k in key) for r in rows]
            diff = TableDiff(table, expected=len(expected_keys), actual=len(actual_keys))
            diff.duplicates = len(actual_keys) - len(set(actual_keys))
            diff.missing = sorted(set(expected_keys) - set(actual_keys))
            diff.unexpected = sorted(set(actual_keys) - set(expected_keys))
            if compare_values and not diff.missing:
                by_key = dict(zip(actual_keys, actual_rows, strict=True))
                for expected_key, row in zip(expected_keys, rows, strict=True):
                    actual = by_key[expected_key]
                    for path, value in flatten(row).items():
                        found, stored = _stored_value(pipeline, actual, path)
                        if not found:
                            if value is None:
                                continue  # a column that only ever held nulls is not created
                            diff.value_mismatches.append(f"{expected_key} {path} missing")
                            continue
                        if _normalize(stored) != _normalize(value):
                            diff.value_mismatches.append(
                                f"{expected_key} {path}: {stored!r} != {value!r}"
                            )
            diffs.append(diff)
    return diffs


_NAMING = NamingConvention()


def _column_name(pipeline: Any, path: tuple[str, ...]) -> str:
    """The column dlt's default (snake_case) naming gives a record path."""
    return _NAMING.normalize_path(_NAMING.make_path(*path)).lower()


def assert_matches_truth(
    warehouse: WarehouseSettings, truth: Mapping[str, Any], tables: Iterable[str] = TABLES
) -> None:
    diffs = compare_with_truth(warehouse, truth, tables)
    bad = [str(d) for d in diffs if not d.ok]
    assert not bad, "warehouse differs from the sandbox truth:\n" + "\n".join(bad)


def truth_partition_keys(truth: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Workspace id -> partition key and environment id -> partition key, as the README says
    a user finds them: ``<workspace> (<id>)`` and ``<workspace>/<environment> (<id>)``, with
    commas, brackets, "..." and control characters in names as spaces."""

    def readable(name: str) -> str:
        return " ".join(re.sub(r"\.\.\.|[,\[\]\x00-\x1f\x7f]", " ", name).split())

    workspaces = {r["id"]: r["name"] for r in truth["tables"]["workspaces"]["rows"]}
    return (
        {i: f"{readable(name)} ({i})" for i, name in workspaces.items()},
        {
            r["id"]: f"{readable(workspaces[r['workspace_id']] + '/' + r['name'])} ({r['id']})"
            for r in truth["tables"]["environments"]["rows"]
        },
    )


def cli_environment(**extra: str) -> dict[str, str]:
    """This process's environment without the project's settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPLIT_", "ANALYTICS_", "DAGSTER_"))
    }
    env.update({"SPLIT_BACKOFF_FACTOR": "0.05", "RUNTIME__DLTHUB_TELEMETRY": "false"}, **extra)
    return env


def run_cli(
    args: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``analytics-assets <args>`` as a user (or a CronJob) runs it: output piped, no
    standard input."""
    return subprocess.run(
        [sys.executable, "-m", "analytics_assets.cli", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
