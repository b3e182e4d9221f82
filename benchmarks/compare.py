"""How far a contender's tables are from the sandbox's ground truth, by natural key.

The truth's key columns are streamed from the sandbox (``/_sandbox/ground-truth/<t>.ndjson``)
into a DuckDB file once per organisation; each contender's DuckDB file is then compared in
SQL as multisets over the key columns the contender has:

- ``missing``: truth rows with no loaded row of the same key;
- ``duplicates``: loaded rows beyond the first for a key the truth has once (a key the truth
  has n times may be loaded n times);
- ``unexpected``: loaded rows whose key the truth does not have.

The original configuration does not keep every context column (e.g. a flag's workspace),
so its keys are the projection of the natural key onto what it loaded (``key`` says which);
two tables it has no resource for count as entirely missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from analytics_assets.sandbox.process import SandboxProcess

BATCH_ROWS = 200_000


@dataclass
class TableDistance:
    table: str
    key: list[str]
    truth_rows: int
    loaded_rows: int
    missing: int
    duplicates: int
    unexpected: int

    @property
    def exact(self) -> bool:
        return not (self.missing or self.duplicates or self.unexpected)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exact": self.exact}


class TruthStore:
    """The truth's natural keys of one organisation, in a DuckDB file."""

    def __init__(self, sandbox: SandboxProcess, path: Path) -> None:
        self.sandbox = sandbox
        self.path = path
        summary = sandbox.ground_truth(rows=False)
        self.tables: dict[str, dict[str, Any]] = summary["tables"]
        self._loaded: set[str] = set()

    def ensure(self, tables: Iterable[str]) -> None:
        wanted = [t for t in tables if t not in self._loaded]
        if not wanted:
            return
        with duckdb.connect(str(self.path)) as connection:
            for table in wanted:
                key = self.tables[table]["key"]
                connection.execute(f'DROP TABLE IF EXISTS "{table}"')
                columns = ", ".join(f'"{c}" VARCHAR' for c in key)
                connection.execute(f'CREATE TABLE "{table}" ({columns})')
                for batch in _batches(self.sandbox.ground_truth_rows(table), key):
                    connection.register("batch", batch)
                    connection.execute(f'INSERT INTO "{table}" SELECT * FROM batch')
                    connection.unregister("batch")
                self._loaded.add(table)


def _batches(rows: Iterator[dict[str, Any]], key: list[str]) -> Iterator[pa.Table]:
    columns: list[list[str | None]] = [[] for _ in key]
    for row in rows:
        for values, name in zip(columns, key, strict=True):
            value = row.get(name)
            values.append(None if value is None else str(value))
        if len(columns[0]) >= BATCH_ROWS:
            yield pa.table({name: values for name, values in zip(key, columns, strict=True)})
            columns = [[] for _ in key]
    if columns[0]:
        yield pa.table({name: values for name, values in zip(key, columns, strict=True)})


# --- what each contender loaded, as SQL over its own DuckDB file ------------------------------


def ours_query(table: str, key: list[str], dataset: str, history: bool) -> str:
    """Our tables carry every natural-key column under its own name."""
    where = " WHERE _dlt_valid_to IS NULL" if history else ""
    columns = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in key)
    return f'SELECT {columns} FROM "{dataset}"."{table}"{where}'


# The original configuration's tables: which key columns exist, and under which name.
ORIGINAL_SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "workspaces": ("workspaces", {"id": "id"}),
    "environments": ("environments", {"workspace_id": "_workspaces_id", "id": "id"}),
    "traffic_types": ("traffic_types", {"id": "id"}),
    "rollout_statuses": ("rollout_statuses", {"id": "id"}),
    "flag_sets": ("flag_sets", {"id": "id"}),
    "feature_flags": ("feature_flags", {"id": "id"}),
    "segments": ("segments", {"workspace_id": "_workspaces_id", "name": "name"}),
    "users": ("users", {"id": "id"}),
    "groups": ("groups", {"id": "id"}),
    "change_requests": ("change_requests", {"id": "id"}),
}


def original_query(table: str, dataset: str) -> tuple[str, list[str]] | None:
    """SQL for the original configuration's rows of ``table`` and the key columns it has."""
    if table == "segments_keys":
        key = ["environment_id", "segment_name", "key"]
        sql = (
            "SELECT CAST(p._environment_segment_pairs_environment_id AS VARCHAR) AS environment_id,"
            " CAST(p._environment_segment_pairs_segment_name AS VARCHAR) AS segment_name,"
            " CAST(k.key AS VARCHAR) AS key"
            f' FROM "{dataset}".segments_keys__keys k'
            f' JOIN "{dataset}".segments_keys p ON k._dlt_parent_id = p._dlt_id'
        )
        return sql, key
    if table not in ORIGINAL_SOURCES:
        return None
    source, mapping = ORIGINAL_SOURCES[table]
    columns = ", ".join(f'CAST("{v}" AS VARCHAR) AS "{k}"' for k, v in mapping.items())
    return f'SELECT {columns} FROM "{dataset}"."{source}"', list(mapping)


def distance(
    contender_db: Path, truth: TruthStore, table: str, sql: str | None, key: list[str]
) -> TableDistance:
    """Multiset distance between ``sql``'s rows and the truth's, over ``key`` columns."""
    truth_rows = int(truth.tables[table]["count"])
    if sql is None:
        return TableDistance(table, key, truth_rows, 0, truth_rows, 0, 0)
    on = " AND ".join(f'c."{k}" IS NOT DISTINCT FROM t."{k}"' for k in key)
    group = ", ".join(f'"{k}"' for k in key)
    query = f"""
        WITH c AS (SELECT {group}, count(*) AS n FROM ({sql}) GROUP BY ALL),
             t AS (SELECT {group}, count(*) AS n FROM truth."{table}" GROUP BY ALL)
        SELECT
            coalesce(sum(c.n), 0),
            coalesce(sum(CASE WHEN t.n IS NULL THEN 0
                              ELSE greatest(t.n - coalesce(c.n, 0), 0) END), 0),
            coalesce(sum(CASE WHEN t.n IS NOT NULL AND c.n IS NOT NULL
                              THEN greatest(c.n - t.n, 0) ELSE 0 END), 0),
            coalesce(sum(CASE WHEN t.n IS NULL THEN c.n ELSE 0 END), 0)
        FROM c FULL OUTER JOIN t ON {on}
    """
    with duckdb.connect(str(contender_db), read_only=True) as connection:
        connection.execute(f"ATTACH '{truth.path}' AS truth (READ_ONLY)")
        try:
            loaded, missing, duplicates, unexpected = connection.execute(query).fetchone()
        except duckdb.CatalogException:
            return TableDistance(table, key, truth_rows, 0, truth_rows, 0, 0)
    return TableDistance(
        table, key, truth_rows, int(loaded), int(missing), int(duplicates), int(unexpected)
    )


def compare_ours(
    contender_db: Path, truth: TruthStore, tables: Iterable[str], dataset: str = "split"
) -> list[TableDistance]:
    from analytics_assets.split_source import ENDPOINTS_BY_TABLE

    tables = list(tables)
    truth.ensure(tables)
    result = []
    for table in tables:
        key = truth.tables[table]["key"]
        sql = ours_query(table, key, dataset, ENDPOINTS_BY_TABLE[table].history)
        result.append(distance(contender_db, truth, table, sql, key))
    return result


def compare_original(
    contender_db: Path, truth: TruthStore, tables: Iterable[str], dataset: str = "original"
) -> list[TableDistance]:
    tables = list(tables)
    truth.ensure(tables)
    result = []
    for table in tables:
        found = original_query(table, dataset)
        if found is None:
            result.append(distance(contender_db, truth, table, None, truth.tables[table]["key"]))
            continue
        sql, key = found
        result.append(_projected_distance(contender_db, truth, table, sql, key))
    return result


def _projected_distance(
    contender_db: Path, truth: TruthStore, table: str, sql: str, key: list[str]
) -> TableDistance:
    """Like ``distance``, but over a subset of the truth's key columns."""
    full_key = truth.tables[table]["key"]
    if key == full_key:
        return distance(contender_db, truth, table, sql, key)
    view = f"{table}__by_{'_'.join(key)}"
    with duckdb.connect(str(truth.path)) as connection:
        columns = ", ".join(f'"{k}"' for k in key)
        connection.execute(f'CREATE OR REPLACE TABLE "{view}" AS SELECT {columns} FROM "{table}"')
    truth.tables.setdefault(view, {"count": truth.tables[table]["count"], "key": key})
    result = distance(contender_db, truth, view, sql, key)
    result.table = table
    return result
