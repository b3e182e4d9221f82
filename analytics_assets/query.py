"""``analytics-assets query``: read-only SQL on the warehouse dataset, in the format asked for.

Output for machines (csv, json, markdown, and the table when piped) is written with the
standard library, so nothing is wrapped or cut to a terminal width; the row count goes to
stderr, so stdout holds only the result. The statement runs read-only: DuckDB is opened in
read-only mode (under the writers' lock, so it neither blocks nor breaks a running sync's
load), Postgres runs it in read-only transactions, and other destinations accept only
statements that read.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from analytics_assets.split_source.errors import SplitConfigurationError
from analytics_assets.warehouse import WarehouseSettings, warehouse_reader, writer_lock

# Statement kinds that only read; the guard for destinations without a read-only mode.
READING_STATEMENTS = ("select", "with", "show", "describe", "explain", "values", "table", "from")


class QueryFailed(Exception):
    """The engine refused the statement; the message is the engine's, whole, on one line."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(sql: str, warehouse: WarehouseSettings) -> QueryResult:
    """Run ``sql`` read-only in the dataset (tables need no schema prefix)."""
    if warehouse.destination_type == "duckdb":
        database = Path(warehouse.duckdb_path).expanduser().resolve()
        if not database.exists():
            raise SplitConfigurationError(
                f"There is no warehouse at {database} yet. Run `analytics-assets"
                " sync` (or `analytics-assets demo`) first, or set ANALYTICS_DUCKDB_PATH."
            )
    elif warehouse.destination_type != "postgres" and not _only_reads(sql):
        raise QueryFailed(
            "query only reads: the statement is not a SELECT (or WITH, SHOW, DESCRIBE,"
            " EXPLAIN), and this destination has no read-only mode to enforce it."
        )
    try:
        # DuckDB: a reader of the file waits for a running load instead of breaking it.
        with writer_lock(warehouse), warehouse_reader(warehouse, read_only=True) as client:
            if warehouse.destination_type == "postgres":
                client.execute_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            with client.execute_query(sql) as cursor:
                columns = [d[0] for d in cursor.description or []]
                rows = [tuple(row) for row in cursor.fetchall()] if columns else []
    except SplitConfigurationError:
        raise
    except Exception as exc:  # the engine's message is what the user needs, not our stack
        raise QueryFailed(engine_message(exc)) from None
    return QueryResult(columns, rows)


def _only_reads(sql: str) -> bool:
    words = re.findall(r"[A-Za-z_]+", re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S))
    return bool(words) and words[0].lower() in READING_STATEMENTS


def engine_message(exc: BaseException) -> str:
    """The engine's whole message (hints included) as one line.

    A caret line (``^`` under the offending token) points at nothing once lines are joined,
    so it is dropped; the ``LINE 1: ...`` context before it stays.
    """
    cause: BaseException = exc
    # dlt wraps the driver's exception; its own text repeats the driver's.
    while cause.__cause__ is not None and str(cause.__cause__).strip():
        cause = cause.__cause__
    text = str(cause).strip() or type(cause).__name__
    lines = [line.strip() for line in text.splitlines()]
    return " ".join(line for line in lines if line and set(line) != {"^"})


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.time, uuid.UUID)):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def write_csv(result: QueryResult, stream: TextIO) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_text(v) for v in row] for row in result.rows)


def write_json(result: QueryResult, stream: TextIO) -> None:
    records = [
        {c: _json_value(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows
    ]
    json.dump(records, stream, indent=2, default=str, ensure_ascii=False)
    stream.write("\n")


def _markdown_cell(value: Any) -> str:
    return _text(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def write_markdown(result: QueryResult, stream: TextIO) -> None:
    stream.write("| " + " | ".join(_markdown_cell(c) for c in result.columns) + " |\n")
    stream.write("|" + "|".join("---" for _ in result.columns) + "|\n")
    for row in result.rows:
        stream.write("| " + " | ".join(_markdown_cell(v) for v in row) + " |\n")


def write_plain_table(result: QueryResult, stream: TextIO) -> None:
    """Columns aligned to their widest value, whatever the width: nothing is cut or wrapped."""
    cells = [[_text(v).replace("\n", "\\n") for v in row] for row in result.rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(result.columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    stream.write(line(result.columns) + "\n")
    stream.write(line(["-" * w for w in widths]) + "\n")
    for row in cells:
        stream.write(line(row) + "\n")


WRITERS = {"csv": write_csv, "json": write_json, "markdown": write_markdown}
