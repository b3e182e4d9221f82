"""Where the data lands: the dlt destination, dataset and pipeline (no Dagster imports).

- ``ANALYTICS_DESTINATION``: any dlt destination name (duckdb, postgres, bigquery, snowflake,
  motherduck, ...); default ``duckdb``. Credentials come from standard dlt configuration
  (``.dlt/secrets.toml`` or ``DESTINATION__...`` variables).
- ``ANALYTICS_DUCKDB_PATH``: the DuckDB file; default ``data/analytics.duckdb`` (relative to
  the working directory).
- ``ANALYTICS_DATASET``: the dataset (schema) name; default ``split``.
- ``ANALYTICS_MODELS_DATASET``: the dbt models' schema; default ``<ANALYTICS_DATASET>_analytics``.
- ``ANALYTICS_DUCKDB_MEMORY_LIMIT``: DuckDB's memory cap while loading (it spills to disk
  beyond it); default ``128MB``.
- ``ANALYTICS_WORKING_DIR``: where dlt keeps each run's working files (extracted Split data
  until it is loaded); default ``<DAGSTER_HOME>/dlt-working``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from analytics_assets.duckdb_file import waiting_duckdb
from analytics_assets.libpq_postgres import DESTINATION_NAME as LIBPQ_DESTINATION_NAME
from analytics_assets.libpq_postgres import libpq_postgres
from analytics_assets.split_source.errors import SplitConfigurationError

logger = logging.getLogger("analytics_assets.warehouse")

PIPELINE_NAME = "split"
DEFAULT_DESTINATION = "duckdb"
DEFAULT_DUCKDB_PATH = "data/analytics.duckdb"
DEFAULT_DATASET = "split"
DEFAULT_DUCKDB_MEMORY_LIMIT = "128MB"
# Destinations that allow one writer process at a time: Dagster serializes their writers.
SINGLE_WRITER_DESTINATIONS = frozenset({"duckdb"})


@dataclass(frozen=True)
class WarehouseSettings:
    """The destination and dataset, resolved from ANALYTICS_* variables."""

    destination: str = DEFAULT_DESTINATION
    duckdb_path: str = DEFAULT_DUCKDB_PATH
    dataset: str = DEFAULT_DATASET
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    models_dataset: str = ""
    """The dbt models' schema; empty: ``<dataset>_analytics``."""
    working_dir: str | None = None

    @property
    def analytics_dataset(self) -> str:
        return self.models_dataset or f"{self.dataset}_analytics"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> WarehouseSettings:
        env = os.environ if environ is None else environ
        settings = cls(
            destination=(env.get("ANALYTICS_DESTINATION") or DEFAULT_DESTINATION).strip(),
            duckdb_path=env.get("ANALYTICS_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH,
            dataset=env.get("ANALYTICS_DATASET") or DEFAULT_DATASET,
            duckdb_memory_limit=env.get("ANALYTICS_DUCKDB_MEMORY_LIMIT")
            or DEFAULT_DUCKDB_MEMORY_LIMIT,
            models_dataset=env.get("ANALYTICS_MODELS_DATASET") or "",
            working_dir=env.get("ANALYTICS_WORKING_DIR") or None,
        )
        settings.validate()
        return settings

    @property
    def destination_type(self) -> str:
        return self.destination.rsplit(".", 1)[-1]

    @property
    def single_writer(self) -> bool:
        return self.destination_type in SINGLE_WRITER_DESTINATIONS

    def validate(self) -> None:
        """Fail at once, with the choices, on a destination dlt does not know."""
        if self.destination_type == "duckdb" and Path(self.duckdb_path).stem == self.dataset:
            # DuckDB names the catalog after the file; a schema of the same name is ambiguous.
            raise SplitConfigurationError(
                f"ANALYTICS_DUCKDB_PATH={self.duckdb_path!r} and ANALYTICS_DATASET={self.dataset!r}"
                " share a name, which DuckDB cannot tell apart; rename the file or the dataset."
            )
        try:
            Destination.from_reference(self.destination)
        except Exception:
            known = ", ".join(sorted(_known_destinations()))
            raise SplitConfigurationError(
                f"ANALYTICS_DESTINATION={self.destination!r} is not a dlt destination. Use one"
                f" of: {known}."
            ) from None

    def dlt_destination(self, staging_suffix: str | None = None, read_only: bool = False) -> Any:
        """The dlt destination. ``staging_suffix`` gives a run its own staging dataset;
        ``read_only`` opens a DuckDB file read-only (other destinations ignore it)."""
        if self.destination_type == "duckdb":
            path = Path(self.duckdb_path).expanduser()
            # A folder that cannot be made is reported, as a sentence, by the CLI's preflight
            # (or, in a run, by the open that follows); describing the assets must not fail.
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
            credentials = DuckDbCredentials(str(path.resolve()), read_only=read_only)
            # DuckDB takes up to 80% of RAM by default; the merge of a million segment keys
            # would. A cap makes it spill to disk instead, keeping a sync's memory flat.
            credentials.global_config = {
                "memory_limit": self.duckdb_memory_limit,
                "preserve_insertion_order": False,
            }
            return waiting_duckdb(credentials)  # waits for other processes instead of failing
        options: dict[str, Any] = {}
        if staging_suffix:
            # dlt empties the shared `<dataset>_staging` tables at the start of every load, so
            # two concurrent runs merging the same table would merge each other's rows.
            options["staging_dataset_name_layout"] = f"%s_staging_{staging_suffix}"
        if self.destination in ("postgres", "dlt.destinations.postgres"):
            return libpq_postgres(
                destination_name=LIBPQ_DESTINATION_NAME, **options
            )  # a DSN without a password, as libpq takes it
        return Destination.from_reference(self.destination, **options)

    def run_options(self) -> dict[str, Any]:
        """Options for ``pipeline.run``. DuckDB loads Parquet files with far less memory than
        the SQL insert files dlt writes by default (measured: 905 -> 537 MB peak at 1.25M
        segment keys)."""
        return {"loader_file_format": "parquet"} if self.destination_type == "duckdb" else {}

    def describe(self) -> str:
        if self.destination_type == "duckdb":
            return f"duckdb file {Path(self.duckdb_path).expanduser().resolve()}"
        return f"{self.destination} (dataset {self.dataset})"


def _known_destinations() -> list[str]:
    import dlt.destinations as destinations

    return [
        name
        for name in dir(destinations)
        if not name.startswith("_") and name.islower() and callable(getattr(destinations, name))
    ]


def use_system_allocator_for_arrow() -> None:
    """Let Arrow allocate from the system allocator in this process (a sync's process).

    pyarrow's default allocator (mimalloc) keeps freed memory for reuse, so the load step
    started on top of what the extract step's segment-key tables had used. Measured on a full
    sync: peak RSS 390 -> 368 MB at 1.25M keys and 456 -> 405 MB at 3.5M keys. An explicit
    ``ARROW_DEFAULT_MEMORY_POOL`` setting is left alone.
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())


def make_pipeline(
    warehouse: WarehouseSettings,
    *,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: str | None = None,
    run_id: str | None = None,
    read_only: bool = False,
) -> dlt.Pipeline:
    """A dlt pipeline into the configured warehouse.

    Concurrent runs (Dagster partitions on a multi-writer destination) pass their own
    ``pipelines_dir`` and ``run_id``: dlt keeps per-run working files in the first (two runs
    sharing one would race, dlt-hub/dlt#1102), and a multi-writer destination then gets a
    staging dataset per run (drop it with ``drop_run_staging`` afterwards).
    """
    staging_suffix = None
    if run_id and not warehouse.single_writer:
        staging_suffix = "".join(c for c in run_id if c.isalnum())[:12].lower()
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=warehouse.dlt_destination(staging_suffix, read_only=read_only),
        dataset_name=warehouse.dataset,
        pipelines_dir=pipelines_dir,
    )


@contextmanager
def warehouse_reader(warehouse: WarehouseSettings, *, read_only: bool = False) -> Iterator[Any]:
    """A SQL client on the dataset, for readers (queries, checks, row counts, preflight).

    ``read_only`` opens a DuckDB file read-only, so a statement that writes is refused, and
    the reader waits while a load writes the file instead of failing it.

    dlt's client needs a pipeline; a throwaway working folder keeps readers from touching the
    default one, which other projects and a running sync's state may share.
    """
    pipelines_dir = tempfile.mkdtemp(prefix="analytics-assets-read-")
    try:
        pipeline = make_pipeline(warehouse, pipelines_dir=pipelines_dir, read_only=read_only)
        with pipeline.sql_client() as client:
            yield client
    finally:
        shutil.rmtree(pipelines_dir, ignore_errors=True)


def drop_run_staging(pipeline: dlt.Pipeline, warehouse: WarehouseSettings) -> None:
    """Drop a run's own staging dataset (see ``make_pipeline``); the shared one is kept."""
    if warehouse.single_writer:
        return
    try:
        with pipeline.sql_client() as client, client.with_staging_dataset():
            if client.has_dataset():
                client.drop_dataset()
    except Exception as exc:  # a leftover staging schema is untidy, not a failed load
        logger.warning("Could not drop the run's staging dataset: %s", exc)


def check_destination(warehouse: WarehouseSettings) -> None:
    """Connect once before fetching anything: bad credentials fail in seconds, not after the
    whole extraction."""
    with connected(warehouse):
        pass


@contextmanager
def connected(warehouse: WarehouseSettings) -> Iterator[None]:
    """Connect to the destination, failing in seconds (as a sentence) on bad credentials; a
    DuckDB file then stays open until the block ends.

    DuckDB shares an open database among the connections of a process, and closes it (with
    a checkpoint) when the last one closes. dlt opens a connection for each load job and
    each query, so a run that held none opened and checkpointed the file hundreds of times:
    93 ms an open on an idle demo file, against 1.2 ms while the database is held open
    (measured), and about a quarter of a demo sync's time. Only a writer may hold it: while
    it is open, a read-only connection in the same process is refused."""
    with contextlib.ExitStack() as held:
        try:
            client = held.enter_context(warehouse_reader(warehouse))
            client.execute_sql("SELECT 1")
        except Exception as exc:
            # The database's own reason, whole (it names the file, host or role it refused).
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise SplitConfigurationError(
                f"Cannot connect to the {warehouse.destination} destination ({reason}). Check"
                f" its credentials (DESTINATION__{warehouse.destination_type.upper()}__CREDENTIALS"
                " or .dlt/secrets.toml) and that the server is reachable."
            ) from None
        if not warehouse.single_writer:
            held.close()  # a server keeps no state for its clients: no idle connection held
        yield


@contextmanager
def writer_lock(warehouse: WarehouseSettings, *, wait_seconds: float = 3600.0) -> Iterator[None]:
    """Serialize writers of a single-writer destination across processes.

    Dagster's concurrency pool serializes runs it launches; this lock also covers a CLI sync
    and a UI run started at the same time. A second writer waits (logging why) instead of
    failing on DuckDB's file lock. Multi-writer destinations are not serialized.
    """
    if not warehouse.single_writer:
        yield
        return
    database = Path(warehouse.duckdb_path).expanduser().resolve()
    lock_path = database.with_suffix(".writer.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    logger.warning(
                        "Another process is writing to %s; waiting for it to finish.",
                        database,
                    )
                    announced = True
                if time.monotonic() > deadline:
                    raise SplitConfigurationError(
                        f"Gave up after {wait_seconds:.0f}s waiting for another writer of"
                        f" {database}. Is a sync stuck? Check running syncs."
                    ) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
