"""What the reliability suite drives and inspects: projects, CLI processes, tables, secrets.

A ``Project`` is one user's installation in a temporary folder: its own Dagster instance
(``DAGSTER_HOME``, where dlt's per-run working folders go), DuckDB file, temporary folder
(``TMPDIR``, which must stay free of Split data) and logs, pointed at one sandbox with the
suite's distinctive API key. It runs syncs the two ways users do: ``analytics-assets sync``
in a subprocess (its own session, so the whole process group can be killed), and Dagster
in-process (``run_sync`` / job execution), both on the same instance.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets.split_source import TABLES
from analytics_assets.warehouse import WarehouseSettings
from analytics_assets_tests.support import compare_with_truth

CLI = [sys.executable, "-m", "analytics_assets.cli"]
DATASET = "split"
OWN_PREFIXES = ("SPLIT_", "ANALYTICS_", "DAGSTER_", "DESTINATION__")

# Fast backoff keeps the suite short; every other setting is the production default.
TEST_DEFAULTS = {
    "SPLIT_BACKOFF_FACTOR": "0.05",
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "COLUMNS": "200",  # rich wraps at 80 columns when not on a terminal; keep lines whole
}

SUMMARY = re.compile(
    r"(?P<runs>\d+) Dagster runs, (?P<requests>\d+) API requests, (?P<retries>\d+) retries,"
    r" (?P<rate_limited>\d+) rate-limited \(429\), (?P<seconds>[\d.]+)s"
)


def clean_environment() -> dict[str, str]:
    """This process's environment without any project setting (they come from the test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(TEST_DEFAULTS)
    return env


# --- the CLI -------------------------------------------------------------------------------------


@dataclass
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float = 0.0

    @property
    def summary(self) -> dict[str, float]:
        """The sync summary line (runs, requests, retries, 429s, seconds), parsed."""
        match = SUMMARY.search(self.stdout)
        assert match, f"no summary in the output:\n{self.stdout}\n{self.stderr}"
        return {k: float(v) if k == "seconds" else int(v) for k, v in match.groupdict().items()}

    def __str__(self) -> str:
        return (
            f"analytics-assets {' '.join(self.args)} -> {self.returncode} in {self.seconds:.1f}s"
            f"\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


class RunningCli:
    """``analytics-assets`` in its own session; stderr lines are watched as they come."""

    def __init__(self, args: tuple[str, ...], cwd: Path, env: Mapping[str, str]) -> None:
        self.args = args
        self._children_cpu = _children_cpu_seconds()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [*CLI, *args],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: killpg reaches every child
        )
        self.pgid = self.process.pid
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[tuple[float, str]] = []
        self._listeners: list[Callable[[str], None]] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, False), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, True), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def on_stderr_line(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(line)`` for every stderr line from now on (progress, warnings)."""
        self._listeners.append(listener)

    def _read(self, stream: Any, is_stderr: bool) -> None:
        for line in stream:
            if is_stderr:
                self.stderr_lines.append((time.monotonic() - self.started, line))
                for listener in list(self._listeners):
                    listener(line)
            else:
                self.stdout_lines.append(line)

    def wait_for_stderr(self, fragment: str, timeout: float = 300) -> float:
        """Block until a stderr line contains ``fragment``; the seconds since the start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.stderr_lines):
                if fragment in line:
                    return at
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the readers drain
                for at, line in list(self.stderr_lines):
                    if fragment in line:
                        return at
                raise AssertionError(f"exited before printing {fragment!r}:\n{self.stderr}")
            time.sleep(0.01)
        raise AssertionError(f"no {fragment!r} on stderr within {timeout}s:\n{self.stderr}")

    @property
    def stderr(self) -> str:
        return "".join(line for _, line in self.stderr_lines)

    def kill_group(self) -> None:
        """SIGKILL the whole process group, then reap the leader."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.process.wait(timeout=60)

    def result(self, timeout: float = 900) -> CliResult:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise AssertionError(
                f"analytics-assets {' '.join(self.args)} hung:\n{self.stderr}"
            ) from None
        seconds = time.monotonic() - self.started
        for reader in self._readers:
            reader.join(timeout=30)
        return CliResult(
            self.args,
            self.process.returncode,
            "".join(self.stdout_lines),
            self.stderr,
            seconds,
            # CPU of the CLI (and anything else this process reaped meanwhile: nothing else
            # in these tests), which unlike wall time does not depend on the machine's load.
            _children_cpu_seconds() - self._children_cpu,
        )


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_factor() -> float:
    """How oversubscribed the machine is: 1-minute load per core, at least 1."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (Linux /proc), zombies excluded."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry.name))
    return members


# --- a project -----------------------------------------------------------------------------------


@dataclass
class Project:
    """One installation: instance, warehouse, temp folder, pointed at one sandbox."""

    root: Path
    sandbox: SandboxProcess | None
    api_key: str
    ledger: Any = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for folder in (self.home, self.tmp, self.root / "work"):
            folder.mkdir(parents=True, exist_ok=True)
        if self.ledger is not None:
            self.ledger.add_path(self.root)

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def duckdb_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def dlt_working(self) -> Path:
        """Where the project's runs keep their dlt working folders (under the instance)."""
        return self.home / "dlt-working"

    @property
    def warehouse(self) -> WarehouseSettings:
        return WarehouseSettings(duckdb_path=str(self.duckdb_path))

    def env(self, **overrides: str | None) -> dict[str, str]:
        """The environment a user of this project runs with (``None`` removes a variable)."""
        env = clean_environment()
        env.update(
            {
                "DAGSTER_HOME": str(self.home),
                "ANALYTICS_DUCKDB_PATH": str(self.duckdb_path),
                "SPLIT_API_KEY": self.api_key,
                "TMPDIR": str(self.tmp),
            }
        )
        if self.sandbox is not None:
            env["SPLIT_API_BASE_URL"] = self.sandbox.base_url
        env.update(self.extra_env)
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    # the CLI

    def start_cli(self, *args: str, **env: str | None) -> RunningCli:
        if args and args[0] == "sync":
            # The suite judges the loads; the dbt models have their own tests
            # (dagster_layer/test_models.py, postgres/test_models_postgres.py).
            args = (*args, "--skip-models")
        return RunningCli(args, self.root / "work", self.env(**env))

    def cli(self, *args: str, timeout: float = 900, **env: str | None) -> CliResult:
        result = self.start_cli(*args, **env).result(timeout=timeout)
        if self.ledger is not None:
            self.ledger.add_text(f"cli {' '.join(args)}", result.stdout + result.stderr)
        return result

    def record(self, running: RunningCli, result: CliResult | None = None) -> None:
        """Hand a started CLI's output to the secret ledger."""
        if self.ledger is not None:
            text = (result.stdout + result.stderr) if result else running.stderr
            self.ledger.add_text(f"cli {' '.join(running.args)}", text)

    # Dagster in this process

    @contextlib.contextmanager
    def environment(self, **overrides: str | None) -> Iterator[None]:
        """This process's environment and temp folder as the project's, restored afterwards."""
        saved = dict(os.environ)
        saved_tempdir = tempfile.tempdir
        wanted = self.env(**overrides)
        try:
            for name in [n for n in os.environ if n.startswith(OWN_PREFIXES)]:
                if name not in wanted:
                    del os.environ[name]
            os.environ.update({k: v for k, v in wanted.items() if k.startswith(OWN_PREFIXES)})
            os.environ["RUNTIME__LOG_LEVEL"] = "ERROR"
            tempfile.tempdir = str(self.tmp)
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)
            tempfile.tempdir = saved_tempdir

    def sync_in_process(
        self,
        options: Any = None,
        progress: Callable[[str], None] | None = None,
        **env: str | None,
    ) -> Any:
        """``run_sync`` (the CLI's code path, without the subprocess); returns its report."""
        from analytics_assets.dagster_layer.sync import SyncOptions, run_sync
        from analytics_assets.definitions import build_definitions

        with self.environment(**env):
            return run_sync(
                build_definitions(),
                options or SyncOptions(build_models=False),  # the loads, as start_cli
                progress=progress or (lambda _: None),
            )

    @contextlib.contextmanager
    def instance(self) -> Iterator[Any]:
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(self.home)) as instance:
            yield instance

    # the warehouse

    def snapshot(self) -> dict[str, Counter]:
        return snapshot_tables(self.duckdb_path)

    def diffs(self, truth: Mapping[str, Any], tables: Iterable[str] = TABLES) -> list[Any]:
        return [d for d in compare_with_truth(self.warehouse, truth, tables) if not d.ok]


# --- tables --------------------------------------------------------------------------------------

KEEP_DLT_COLUMNS = ("_dlt_valid_from", "_dlt_valid_to")


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _scope_column(table: str) -> str | None:
    """The column naming the scope (workspace, environment) a table's rows are loaded by."""
    from analytics_assets.split_source import ENDPOINTS_BY_TABLE

    endpoint = ENDPOINTS_BY_TABLE.get(parent_table(table))
    if endpoint is None or endpoint.scope not in ("workspace", "environment"):
        return None
    return f"{endpoint.scope}_id"


def snapshot_tables(path: Path, dataset: str = DATASET) -> dict[str, Counter]:
    """Every data table (child tables too) as multisets of rows, one per unit the sync commits
    at once: ``table`` for an organisation table, ``table [scope id]`` for each workspace's or
    environment's rows of a partitioned one.

    dlt's bookkeeping columns (load id, row ids) are left out, so reloading identical data
    gives an identical snapshot; history validity columns are kept. A partial scope, a
    duplicate or a lost row changes the snapshot.
    """
    snapshot: dict[str, Counter] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                [dataset],
            ).fetchall()
            if not name.startswith("_dlt")
        ]
        for table in sorted(tables):
            columns = [
                name
                for (name,) in con.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    [dataset, table],
                ).fetchall()
                if not name.startswith("_dlt_") or name in KEEP_DLT_COLUMNS
            ]
            selected = ", ".join(f't."{c}"' for c in columns)
            scope = _scope_column(table)
            source = f'"{dataset}"."{table}" t'
            if scope is None:
                scope_expression = "NULL"
            elif table == parent_table(table):
                scope_expression = f't."{scope}"'
            else:  # a child table: its root row says the scope
                root = f'"{dataset}"."{parent_table(table)}"'
                source += f" JOIN {root} r ON r._dlt_id = t._dlt_root_id"
                scope_expression = f'r."{scope}"'
            rows = con.execute(f"SELECT {scope_expression}, {selected} FROM {source}").fetchall()
            for scope_value, *values in rows:
                unit = table if scope is None else f"{table} [{scope_value}]"
                snapshot.setdefault(unit, Counter())[tuple(_hashable(v) for v in values)] += 1
    return snapshot


def duplicate_keys(path: Path, dataset: str = DATASET) -> dict[str, int]:
    """Natural-key duplicates per table (current versions for history tables)."""
    from analytics_assets.split_source import ENDPOINTS_BY_TABLE

    found = {}
    with duckdb.connect(str(path), read_only=True) as con:
        existing = {
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                [dataset],
            ).fetchall()
        }
        for table, endpoint in ENDPOINTS_BY_TABLE.items():
            if table not in existing:
                continue
            key = ", ".join(endpoint.primary_key)
            where = "WHERE _dlt_valid_to IS NULL" if endpoint.history else ""
            (count,) = con.execute(
                f"SELECT count(*) FROM (SELECT {key} FROM {dataset}.{table} {where}"
                f" GROUP BY {key} HAVING count(*) > 1)"
            ).fetchone()
            if count:
                found[table] = count
    return found


def readable(path: Path, dataset: str = DATASET) -> dict[str, int]:
    """Open the DuckDB file read-only, as a BI tool would, and count every table's rows."""
    counts = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for (table,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [dataset]
        ).fetchall():
            (counts[table],) = con.execute(f'SELECT count(*) FROM {dataset}."{table}"').fetchone()
    return counts


def parent_table(table: str) -> str:
    return table.split("__", 1)[0]


def no_worse(
    before: Mapping[str, Counter],
    after: Mapping[str, Counter],
    complete: Mapping[str, Counter] | None = None,
) -> list[str]:
    """Units (see ``snapshot_tables``) that are neither as before nor a complete new load.

    ``complete``: a snapshot of the same warehouse after a sync that was verified exact; a
    unit may equal it instead of ``before`` (its load was committed before the interruption).
    Without it, every unit must be exactly as it was.
    """
    problems = []
    for unit in sorted(set(before) | set(after) | set(complete or {})):
        b, a = before.get(unit, Counter()), after.get(unit, Counter())
        if a == b or (complete is not None and a == complete.get(unit, Counter())):
            continue
        problems.append(
            f"{unit}: {sum(b.values())} rows before, {sum(a.values())} after"
            f" ({sum((a - b).values())} new, {sum((b - a).values())} gone)"
        )
    return problems


# --- dlt's working folders: which phase a run is in ------------------------------------------


def dlt_folders(root: Path) -> list[Path]:
    """dlt's per-run working folders under ``root`` (a project's ``dlt_working``), oldest
    first."""
    return sorted(root.glob("run-*"), key=_mtime)


def dlt_phase(folder: Path) -> str:
    """The phase of the dlt run working in ``folder`` (or killed there).

    A run's pipeline lives in ``<folder>/split``; its load package moves from
    ``normalize/<extract id>/<load id>`` (extract) through ``normalize/extracted`` and
    ``load/new`` (normalize) to ``load/normalized`` (load) and ``load/loaded`` (loaded: dlt is
    done, Dagster records the materializations).
    """
    pipeline = folder / "split"
    if _has_package(pipeline / "load" / "loaded"):
        return "loaded"
    if _has_package(pipeline / "load" / "normalized"):
        return "load"
    if _has_package(pipeline / "load" / "new") or _has_package(
        pipeline / "normalize" / "extracted"
    ):
        return "normalize"
    return "extract"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _has_package(folder: Path) -> bool:
    try:
        return any(not p.name.startswith(".") for p in folder.iterdir())
    except OSError:
        return False


# --- secrets -------------------------------------------------------------------------------------


@dataclass
class SecretScan:
    """Where a secret was found, and how much was searched."""

    secret: str
    hits: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    texts: int = 0
    sqlite_values: int = 0
    duckdb_values: int = 0
    runs: int = 0

    def _check(self, data: bytes | str, where: str) -> None:
        needle: bytes | str = self.secret.encode() if isinstance(data, bytes) else self.secret
        if needle in data:  # type: ignore[operator]
            self.hits.append(where)

    def text(self, label: str, text: str) -> None:
        self.texts += 1
        self._check(text, f"output of {label}")

    def path(self, root: Path) -> None:
        """Every file under ``root``: raw bytes, gzip/zlib content, SQLite and DuckDB values."""
        if not root.exists():
            return
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue  # removed meanwhile (another run's temp folder)
            self.files += 1
            self.bytes += len(data)
            self._check(data, str(path))
            self._check_compressed(data, path)
            if data.startswith(b"SQLite format 3"):
                self._sqlite(path)
            elif path.suffix == ".duckdb":
                self._duckdb(path)

    def _check_compressed(self, data: bytes, path: Path) -> None:
        unpacked = None
        with contextlib.suppress(Exception):
            if data[:2] == b"\x1f\x8b":
                unpacked = gzip.decompress(data)
            elif data[:1] == b"\x78":
                unpacked = zlib.decompress(data)
        if unpacked:
            self._check(unpacked, f"{path} (decompressed)")

    def _sqlite(self, path: Path) -> None:
        """Dagster's storage: every value, zlib-compressed snapshots unpacked."""
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error:
            return
        try:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
            tables = [row[0] for row in con.execute(query)]
            for table in tables:
                for row in con.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        if isinstance(value, (bytes, str)):
                            self.sqlite_values += 1
                            self._check(value, f"{path} table {table}")
                            if isinstance(value, bytes):
                                self._check_compressed(value, Path(f"{path}:{table}"))
        except sqlite3.Error:
            pass
        finally:
            con.close()

    def _duckdb(self, path: Path) -> None:
        """Every string column of every table, and dlt's compressed pipeline state."""
        from dlt.common.versioned_state import decompress_state

        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as error:
            self.hits.append(f"{path} could not be opened to scan it: {error}")
            return
        try:
            columns = con.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns"
                " WHERE data_type IN ('VARCHAR', 'JSON', 'BLOB')"
            ).fetchall()
            for schema, table, column in columns:
                values = con.execute(
                    f'SELECT "{column}" FROM "{schema}"."{table}" WHERE "{column}" IS NOT NULL'
                ).fetchall()
                for (value,) in values:
                    self.duckdb_values += 1
                    self._check(value if isinstance(value, (bytes, str)) else str(value), f"{path}")
                    if table == "_dlt_pipeline_state" and column == "state":
                        state = json.dumps(decompress_state(value), default=str)
                        self._check(state, f"{path} dlt pipeline state")
        finally:
            con.close()

    def instance_runs(self, home: Path) -> None:
        """What the UI shows for each run: run config, tags, job and plan snapshots."""
        from dagster import DagsterInstance
        from dagster._serdes import serialize_value

        if not (home / "dagster.yaml").exists():
            return
        with DagsterInstance.from_config(str(home)) as instance:
            for run in instance.get_runs():
                self.runs += 1
                shown = {"run_config": run.run_config, "tags": dict(run.tags)}
                self._check(json.dumps(shown, default=str), f"run {run.run_id} config/tags")
                if run.job_snapshot_id:
                    snapshot = instance.get_job_snapshot(run.job_snapshot_id)
                    self._check(serialize_value(snapshot), f"run {run.run_id} job snapshot")
                if run.execution_plan_snapshot_id:
                    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
                    self._check(serialize_value(plan), f"run {run.run_id} plan snapshot")
                for record in instance.all_logs(run.run_id):
                    self._check(serialize_value(record), f"run {run.run_id} event log")


def global_dlt_locations() -> list[Path]:
    """Where dlt keeps pipelines outside the projects: the default pipelines folder, ~/.dlt,
    and this machine's temporary folder (definition pipeline, per-run folders left behind)."""
    from dlt.common.pipeline import get_dlt_pipelines_dir

    system_tmp = Path(os.environ.get("TMPDIR") or "/tmp")
    locations = [Path(get_dlt_pipelines_dir()), Path.home() / ".dlt", Path("/var/dlt")]
    locations += sorted(system_tmp.glob("analytics-assets-*"))
    return list(dict.fromkeys(locations))


# --- the figures the document reports ----------------------------------------------------------


@dataclass
class Figure:
    group: str
    case: str
    entry: str
    outcome: str
    numbers: dict[str, Any] = field(default_factory=dict)


class Figures:
    """Measured figures per case, printed at the end and written as JSON."""

    def __init__(self) -> None:
        self.items: list[Figure] = []

    def add(self, group: str, case: str, entry: str, outcome: str, **numbers: Any) -> None:
        self.items.append(Figure(group, case, entry, outcome, numbers))

    def as_json(self) -> list[dict[str, Any]]:
        return [f.__dict__ for f in self.items]


FIGURES = Figures()
"""The reliability suite's figures, printed at the end of the session (the top-level
conftest, which the controller of a pytest-xdist run loads too)."""


def server_faults(sandbox: SandboxProcess) -> dict[str, int]:
    stats = sandbox.stats()
    faults = dict(stats.get("faults", {}))
    if stats.get("rate_limited"):
        faults["429 (rate limiter)"] = stats["rate_limited"]
    return {k: v for k, v in faults.items() if v}


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


# --- per-scope atomicity ------------------------------------------------------------------------


def last_load_id(path: Path) -> float:
    """The newest dlt load committed to the warehouse (0 if none)."""
    with duckdb.connect(str(path), read_only=True) as con:
        (value,) = con.execute(f"SELECT max(load_id) FROM {DATASET}._dlt_loads").fetchone()
    return float(value or 0)


def scope_mix(
    path: Path, previous: Mapping[str, Any], current: Mapping[str, Any], since_load_id: float
) -> dict:
    """The truth the warehouse should equal if every scope is whole: per table and scope (the
    organisation for organisation tables, else the workspace or environment), the current
    truth's rows where a load after ``since_load_id`` wrote the scope, else the previous
    truth's; no rows for a scope that has none.

    ``diffs(scope_mix(...)) == []`` then says each scope is exactly one generation: a load
    commits a scope whole or not at all, never part of one.
    """
    from analytics_assets.dagster_layer.translator import ORGANISATION_TABLES, WORKSPACE_TABLES
    from analytics_assets.split_source import ENDPOINTS_BY_TABLE

    mixed: dict[str, Any] = {**current, "tables": dict(current["tables"])}
    with duckdb.connect(str(path), read_only=True) as con:
        for table in TABLES:
            column = (
                None
                if table in ORGANISATION_TABLES
                else "workspace_id"
                if table in WORKSPACE_TABLES
                else "environment_id"
            )
            where = "WHERE _dlt_valid_to IS NULL" if ENDPOINTS_BY_TABLE[table].history else ""
            query = (
                f"SELECT {column or 'NULL'}, max(CAST(_dlt_load_id AS DOUBLE))"
                f" FROM {DATASET}.{table} {where} GROUP BY 1"
            )
            newest = dict(con.execute(query).fetchall())
            rewritten = {scope for scope, load_id in newest.items() if load_id > since_load_id}
            kept = set(newest) - rewritten
            if column is None:
                chosen = current if rewritten else previous
                mixed["tables"][table] = chosen["tables"][table]
                continue
            rows = [r for r in current["tables"][table]["rows"] if r[column] in rewritten]
            rows += [r for r in previous["tables"][table]["rows"] if r[column] in kept]
            # A scope with no rows is right only if one generation has none for it (emptied,
            # deleted, or not loaded yet); else its rows were lost, and diffs must say so.
            old_scopes = {r[column] for r in previous["tables"][table]["rows"]}
            rows += [
                r
                for r in current["tables"][table]["rows"]
                if r[column] not in newest and r[column] in old_scopes
            ]
            mixed["tables"][table] = {**current["tables"][table], "rows": rows}
    return mixed
