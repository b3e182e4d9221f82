"""One Dagster run, many scopes: each scope is its own dlt load package, committed on its own.

A run covers several scopes (the partitions of a range, or the organisation's tables). Each
scope is extracted and normalized into its own load package, with its own ``destination_scope``
(so a package replaces exactly its scope), and loaded soon after. As soon as a package is
loaded, its scope's materializations are recorded (per partition), so Dagster's own records
say what is done: a re-execution of the run ("Re-execute from failure") skips the scopes its
earlier attempts loaded.

Scopes are fetched several at once when the rate limit can use them (a scope reads its pages
mostly one after another, so at R requests a second and L seconds a request it keeps about one
of the R x L requests in flight): each scope worker is a thread with its own dlt pipeline, and
a worker's packages are loaded while the other workers go on fetching, so normalize and load
no longer stop the requests. Loads are one at a time across the run. A worker loads its
pending packages whenever its fetching since its last load took ``FETCH_PER_LOAD`` times as
long as that load did, or ``MAX_UNCOMMITTED_FETCH_SECONDS``, whichever comes first, so load
overhead stays a small share of the run while a kill loses at most the scopes in flight and a
second of fetching per worker.

A scope that fails persistently is recorded and the run goes on with the next one; at the end
the run fails naming exactly the failed scopes, and Dagster shows exactly their partitions
failed. Failures that no other scope can escape (a refused key, a stopped sync, an API that
keeps failing for consecutive scopes) start no further scope.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    DagsterEventType,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from dagster._core.definitions.metadata.metadata_set import TableMetadataSet
from dagster_dlt import DagsterDltResource
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from analytics_assets.dagster_layer.partitions import (
    ENVIRONMENTS_KEY,
    LISTING_METADATA_KEY,
    WORKSPACES_KEY,
    listing_entry,
    partition_id,
)
from analytics_assets.dagster_layer.resources import SplitApiResource, WarehouseResource
from analytics_assets.dagster_layer.stopping import cancel_if_stopping, cancel_on_interrupt
from analytics_assets.dagster_layer.translator import asset_key
from analytics_assets.dagster_layer.working_dirs import owned_working_dir, working_root
from analytics_assets.split_source import (
    ENDPOINTS_BY_TABLE,
    RequestStats,
    SplitAuthError,
    SplitConfigurationError,
    SplitSettings,
    SplitSourceError,
    SplitUnavailableError,
    SyncScope,
    split_source,
)
from analytics_assets.split_source.cancellation import Cancellation
from analytics_assets.split_source.errors import SyncCancelled, find_split_error
from analytics_assets.split_source.pacing import RateLimiter
from analytics_assets.storage_errors import storage_failure
from analytics_assets.warehouse import (
    WarehouseSettings,
    connected,
    drop_run_staging,
    make_pipeline,
    use_system_allocator_for_arrow,
    writer_lock,
)

FETCH_PER_LOAD = 4.0
"""Load pending packages once fetching since the last load took this many times that load's
duration: load overhead then stays under about 1/(1 + FETCH_PER_LOAD) of the run."""
MAX_UNCOMMITTED_FETCH_SECONDS = 1.0
"""...but never let more than this much fetching wait for a load: a kill (or a failing load)
then costs at most about this much fetching again, plus the scope in flight, however slow
loads get on a busy machine. At 3.0 a kill near the end of a sync at size tiny (8 requests a
second) cost up to 0.30 of the minimal requests again: several small scopes waiting plus a
large one in flight. Under a real rate limit a scope takes seconds to fetch, so this changes
nothing there; against a fast server it means more, smaller loads."""
DISPATCH_POLL_SECONDS = 0.1
"""How often a run with scopes still waiting asks again how many it should fetch at once."""
CONSECUTIVE_UNAVAILABLE_TO_STOP = 2
"""Scopes in a row that outlast every retry before the run stops: the API, not a scope."""
FAILED_SCOPES_METADATA_KEY = "split/failed_scopes"
STOPPED_METADATA_KEY = "split/stopped_early"
NOT_ATTEMPTED = "not attempted"
SCOPES_AT_ONCE_LOG = "Scopes fetched at once:"
"""Logged each time a run fetches more scopes at once than before (what a kill may cost)."""


@dataclass(frozen=True)
class LoadUnit:
    """One scope of a run: fetched, committed and materialized on its own."""

    label: str
    scope: SyncScope
    tables: tuple[str, ...]
    partition: str | None = None


@dataclass
class _Extracted:
    unit: LoadUnit
    source: Any
    stats: RequestStats
    load_id: str
    row_counts: dict[str, int]
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per table, what its materialization records: set once the package is loaded."""


@dataclass
class _RunTotals:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    rate_limit_wait_seconds: float = 0.0
    loads: int = 0
    failures: list[tuple[LoadUnit, SplitSourceError]] = field(default_factory=list)

    def add(self, stats: RequestStats) -> None:
        self.requests += stats.requests
        self.retries += stats.retries
        self.rate_limited += stats.rate_limited
        self.waited_seconds += stats.waited_seconds
        self.rate_limit_wait_seconds += stats.rate_limit_wait_seconds


RUN_SUMMARY_METADATA_KEY = "split/run_summary"
"""Marks a partitioned run's closing result, which repeats what its partitions recorded."""


def run_scoped_loads(
    context: AssetExecutionContext,
    dlt: DagsterDltResource,
    split_api: SplitApiResource,
    warehouse: WarehouseResource,
    units: Sequence[LoadUnit],
) -> Iterator[MaterializeResult | AssetMaterialization]:
    """Load ``units`` one scope at a time; fail at the end naming the scopes that failed."""
    try:
        settings = split_api.settings()
        warehouse_settings = warehouse.settings()
    except SplitSourceError as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    selected = {key.path[-1] for key in context.selected_asset_keys}
    units = [
        LoadUnit(u.label, u.scope, tables, u.partition)
        for u in units
        if (tables := tuple(t for t in u.tables if t in selected))
    ]
    done = _loaded_by_earlier_attempts(context)
    if done:
        # A re-execution ("Re-execute from failure" in the UI) of a run that loaded some scopes:
        # fetch only the others.
        skipped = [u for u in units if all((t, u.partition) in done for t in u.tables)]
        units = [u for u in units if u not in skipped]
        context.log.info(f"Re-execution: {len(skipped)} scope(s) the earlier attempt loaded kept")
    use_system_allocator_for_arrow()
    target = "the local sandbox" if split_api.uses_sandbox else settings.normalized_base_url
    context.log.info(
        f"Loading {len(units)} scope(s) ({', '.join(sorted(selected))}) from {target} into"
        f" {warehouse_settings.describe()}"
    )
    cancellation = Cancellation()
    cancel_if_stopping(cancellation)  # a stop that came before this run started
    # Every scope of the run paces against one learned limit and one rate-limit wait budget.
    limiter = RateLimiter.for_settings(settings, sleep=cancellation.wait)
    totals = _RunTotals()
    root = working_root(warehouse_settings.working_dir, context.instance.root_directory)
    stopped_early = False
    not_attempted: list[LoadUnit] = []
    try:
        with (
            # A Terminate (or SIGTERM) cancels this run's requests before Dagster's own
            # interrupt reaches dlt's thread pool, which would otherwise wait on them.
            cancel_on_interrupt(cancellation),
            owned_working_dir(root, f"run-{context.run.run_id}") as folder,
            writer_lock(warehouse_settings),
            connected(warehouse_settings),
        ):
            scopes = _ScopeWorkers(
                _WorkerSetup(
                    folder, settings, warehouse_settings, context.run.run_id, cancellation, limiter
                ),
                dlt,
                on_more_at_once=lambda n: context.log.info(f"{SCOPES_AT_ONCE_LOG} {n}"),
            )
            in_order = _OutputsInOrder(units)
            try:
                for event in scopes.run(units):
                    if isinstance(event, _Failed):
                        totals.add(event.stats)
                        totals.failures.append((event.unit, event.cause))
                        context.log.warning(f"{event.unit.label} failed: {event.cause}")
                        if not stopped_early and scopes.note_failure(event.cause):
                            stopped_early = True
                        released = in_order.without(event.unit)
                    else:
                        totals.loads += 1
                        released = []
                        for extracted in event.scopes:
                            totals.add(extracted.stats)
                            released += in_order.loaded(extracted)
                    for extracted in released:
                        yield from _materializations(extracted)
                not_attempted = scopes.not_dispatched
                for unit in not_attempted:
                    for extracted in in_order.without(unit):
                        yield from _materializations(extracted)
                partitioned = [u for u in units if u.partition is not None]
                if partitioned and not totals.failures:
                    # in the endpoint table's order, parents first (a multi-asset's outputs
                    # must be)
                    order = [t for t in ENDPOINTS_BY_TABLE if t in selected]
                    yield from scopes.call(
                        lambda pipeline: list(
                            _run_summaries(dlt, pipeline, partitioned, order, totals)
                        )
                    )
            finally:
                scopes.close(warehouse_settings)
    except Failure:
        raise
    except Exception as exc:
        # A full disk or an unwritable folder is a sentence, not a traceback.
        description = storage_failure(exc, "during the load")
        if description is None:
            raise
        raise Failure(description=description, allow_retries=False) from None
    context.log.info(
        f"Split API: {totals.requests} requests, {totals.retries} retries,"
        f" {totals.rate_limited} rate-limited, {totals.waited_seconds:.1f}s waiting;"
        f" {len(units) - len(totals.failures) - len(not_attempted)} of {len(units)} scope(s)"
        f" loaded in {totals.loads} load(s)"
    )
    if totals.failures:
        raise _run_failure(units, totals, stopped_early, not_attempted)


@dataclass(frozen=True)
class _WorkerSetup:
    folder: Path
    settings: SplitSettings
    warehouse_settings: WarehouseSettings
    run_id: str
    cancellation: Cancellation
    limiter: RateLimiter


@dataclass
class _Failed:
    worker: _ScopeWorker
    unit: LoadUnit
    cause: SplitSourceError
    stats: RequestStats


@dataclass
class _Loaded:
    worker: _ScopeWorker
    scopes: list[_Extracted]


@dataclass
class _Ready:
    """The worker finished its scope (fetched or failed, maybe loaded) and takes the next."""

    worker: _ScopeWorker
    fetched: bool


@dataclass
class _Called:
    worker: _ScopeWorker
    result: Any


@dataclass
class _Crashed:
    worker: _ScopeWorker
    error: BaseException


_STOP = object()


class _ScopeWorker:
    """A thread with its own dlt pipeline: it fetches and normalizes the scopes it is given,
    each into its own load package, and loads its pending packages (one load at a time across
    the run: ``load_lock``) when they are due.

    dlt runs pipelines in parallel when each has its own thread (its injection containers are
    thread-affine) and its own working folder, so each worker makes its pipeline in its
    thread and only that thread touches it.
    """

    def __init__(
        self,
        index: int,
        setup: _WorkerSetup,
        dlt: DagsterDltResource,
        load_lock: threading.Lock,
        events: queue.Queue[Any],
    ) -> None:
        self._setup = setup
        self._dlt = dlt
        self._load_lock = load_lock
        self._events = events
        self._pending: list[_Extracted] = []
        self._fetch_since_load = 0.0
        self._last_load_seconds = 0.0
        self.pipeline: Any = None
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.index = index
        self.thread = threading.Thread(target=self._main, name=f"split-scopes-{index}", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        setup = self._setup
        try:
            self.pipeline = make_pipeline(
                setup.warehouse_settings,
                # The first worker keeps a run's layout, ``<run folder>/split``: a run that
                # fetches one scope at a time looks as it always did to whoever inspects it.
                pipelines_dir=str(
                    setup.folder if self.index == 0 else setup.folder / f"pipeline-{self.index}"
                ),
                run_id=setup.run_id,
            )
            with self._load_lock:  # reads the destination's schema and state
                self.pipeline.sync_destination()
            while (message := self.inbox.get()) is not _STOP:
                if isinstance(message, LoadUnit):
                    self._events.put(_Ready(self, self._fetch(message)))
                else:  # a call on this worker's pipeline, its pending packages loaded first
                    self._load()
                    self._events.put(_Called(self, message(self.pipeline)))
        except BaseException as error:  # reported to the run's thread, which raises it
            self._events.put(_Crashed(self, error))

    def _fetch(self, unit: LoadUnit) -> bool:
        setup = self._setup
        started = time.monotonic()
        try:
            extracted = _extract(
                self.pipeline,
                setup.settings,
                setup.warehouse_settings,
                unit,
                setup.cancellation,
                setup.limiter,
            )
        except _ScopeFailed as failed:
            self._events.put(_Failed(self, unit, failed.cause, failed.stats))
            return False
        self._pending.append(extracted)
        self._fetch_since_load += time.monotonic() - started
        due = min(FETCH_PER_LOAD * self._last_load_seconds, MAX_UNCOMMITTED_FETCH_SECONDS)
        if self._fetch_since_load >= due:
            self._load()
        return True

    def _load(self) -> None:
        """Load the pending packages (each commits its own scope) and describe them."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        with self._load_lock:
            started = time.monotonic()
            load_info = self.pipeline.load()
            load_info.raise_on_failed_jobs()
            for extracted in pending:
                extracted.metadata = _scope_metadata(self._dlt, self.pipeline, extracted)
            self._last_load_seconds = time.monotonic() - started
        self._fetch_since_load = 0.0
        self._events.put(_Loaded(self, pending))


class _ScopeWorkers:
    """The run's scope workers: as many scopes fetched at once as the rate limit can use
    (``RateLimiter.scopes_at_once``), loads one at a time, events back on the run's thread."""

    def __init__(
        self,
        setup: _WorkerSetup,
        dlt: DagsterDltResource,
        on_more_at_once: Callable[[int], None],
    ) -> None:
        self._setup = setup
        self._on_more_at_once = on_more_at_once
        self._dlt = dlt
        self._events: queue.Queue[Any] = queue.Queue()
        self._load_lock = threading.Lock()
        self._idle: list[_ScopeWorker] = []
        self._stopping = False
        self._consecutive_unavailable = 0
        self.workers: list[_ScopeWorker] = []
        self.not_dispatched: list[LoadUnit] = []
        self.most_at_once = 0

    def note_failure(self, cause: SplitSourceError) -> bool:
        """Count a failed scope; True when no later scope can succeed either: no more start."""
        self._consecutive_unavailable = (
            self._consecutive_unavailable + 1 if isinstance(cause, SplitUnavailableError) else 0
        )
        if _stops_the_run(cause, self._consecutive_unavailable):
            self._stopping = True
        return self._stopping

    def run(self, units: Sequence[LoadUnit]) -> Iterator[_Failed | _Loaded]:
        """Fetch and load ``units``; yields each failure and each load as it happens."""
        waiting = list(units)
        busy = 0
        while True:
            if self._stopping and waiting:
                self.not_dispatched, waiting = [*self.not_dispatched, *waiting], []
            while waiting and busy < self._setup.limiter.scopes_at_once():
                self._take_idle().inbox.put(waiting.pop(0))
                busy += 1
                if busy > self.most_at_once:
                    self.most_at_once = busy
                    self._on_more_at_once(busy)
            if not busy:
                break
            # With scopes still waiting, look again soon even if no worker reports: how many
            # scopes are worth fetching at once is known only once the first answers came
            # back, and waiting for a whole scope to end first left a run on one scope for
            # its first 1.5 s (measured at 20/s and 100 ms).
            event = self._next_event(poll=DISPATCH_POLL_SECONDS if waiting else None)
            if event is None:
                continue
            if isinstance(event, _Ready):
                busy -= 1
                self._idle.append(event.worker)
                if event.fetched:
                    self._consecutive_unavailable = 0
            elif isinstance(event, (_Failed, _Loaded)):
                yield event
        # What is still pending, loaded now.
        for worker in self.workers:
            yield from self._wait_for_call(worker, lambda pipeline: None)

    def call(self, function: Any) -> Any:
        """``function(pipeline)`` on a worker's thread, once its pending packages are loaded."""
        worker = self.workers[0]
        result: Any = None
        for event in self._wait_for_call(worker, function, keep_result=True):
            result = event
        return result

    def _wait_for_call(
        self, worker: _ScopeWorker, function: Any, keep_result: bool = False
    ) -> Iterator[Any]:
        worker.inbox.put(function)
        while True:
            event = self._next_event()
            if isinstance(event, _Called) and event.worker is worker:
                if keep_result:
                    yield event.result
                return
            if isinstance(event, _Loaded) and not keep_result:
                yield event

    def _take_idle(self) -> _ScopeWorker:
        if self._idle:
            return self._idle.pop()
        worker = _ScopeWorker(
            len(self.workers), self._setup, self._dlt, self._load_lock, self._events
        )
        self.workers.append(worker)
        return worker

    def _next_event(self, poll: float | None = None) -> Any:
        """The next worker event; None once ``poll`` seconds pass without one."""
        deadline = None if poll is None else time.monotonic() + poll
        while True:
            timeout = 0.25 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                event = self._events.get(timeout=min(0.25, timeout))
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue  # lets the run's thread take a signal while it waits
            if isinstance(event, _Crashed):
                raise event.error
            return event

    def close(self, warehouse_settings: WarehouseSettings) -> None:
        """Stop every worker (cancelling what is in flight if the run did not finish)."""
        if len(self._idle) < len(self.workers):  # a worker still has a scope: the run failed
            self._setup.cancellation.cancel("the run ended")
        for worker in self.workers:
            worker.inbox.put(_STOP)
        for worker in self.workers:
            worker.thread.join(timeout=30)
        for worker in self.workers[:1]:
            if worker.pipeline is not None:
                drop_run_staging(worker.pipeline, warehouse_settings)


class _OutputsInOrder:
    """A multi-asset's outputs must come parents first, whatever order their scopes finish
    in: an unpartitioned scope's results (the organisation run's) are held until every such
    scope before it has been loaded or has failed. Partition materializations go at once."""

    def __init__(self, units: Sequence[LoadUnit]) -> None:
        self._order = [u for u in units if u.partition is None]
        self._held: dict[LoadUnit, _Extracted] = {}

    def loaded(self, extracted: _Extracted) -> list[_Extracted]:
        if extracted.unit.partition is not None:
            return [extracted]
        self._held[extracted.unit] = extracted
        return self._release()

    def without(self, unit: LoadUnit) -> list[_Extracted]:
        if unit in self._order:
            self._order.remove(unit)
        return self._release()

    def _release(self) -> list[_Extracted]:
        released = []
        while self._order and self._order[0] in self._held:
            released.append(self._held.pop(self._order.pop(0)))
        return released


def _materializations(extracted: _Extracted) -> Iterator[MaterializeResult | AssetMaterialization]:
    """A loaded scope's materializations, one per table (per partition when it has one)."""
    unit = extracted.unit
    for table in unit.tables:
        key = asset_key(table)
        metadata = extracted.metadata[table]
        if unit.partition is None:
            yield MaterializeResult(asset_key=key, metadata=metadata)
        else:
            yield AssetMaterialization(asset_key=key, partition=unit.partition, metadata=metadata)


def _loaded_by_earlier_attempts(context: AssetExecutionContext) -> set[tuple[str, str | None]]:
    """(table, partition) materialized by the earlier runs this run re-executes, if any."""
    if not context.run.parent_run_id:
        return set()
    instance = context.instance
    group = instance.get_run_group(context.run.run_id)
    done: set[tuple[str, str | None]] = set()
    for run in group[1] if group else []:
        if run.run_id == context.run.run_id:
            continue
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.asset_materialization
            if materialization is not None:
                done.add((materialization.asset_key.path[-1], materialization.partition))
    return done


class _ScopeFailed(Exception):
    def __init__(self, cause: SplitSourceError, stats: RequestStats) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.stats = stats


def _extract(
    pipeline: Any,
    settings: SplitSettings,
    warehouse_settings: WarehouseSettings,
    unit: LoadUnit,
    cancellation: Cancellation,
    limiter: RateLimiter,
) -> _Extracted:
    """Extract and normalize one scope into its own load package."""
    stats = RequestStats()
    try:
        source = split_source(
            settings, unit.scope, stats, cancellation=cancellation, limiter=limiter
        ).with_resources(*unit.tables)
        # As many extract threads as requests may be in flight (dlt's default is 5).
        extract_info = pipeline.extract(
            source, workers=limiter.in_flight.workers, **warehouse_settings.run_options()
        )
    except Exception as exc:
        cause = find_split_error(exc)
        if cause is None:
            raise
        # A failed extract leaves an uncommitted package, which normalize never picks up.
        raise _ScopeFailed(cause, stats) from None
    (load_id,) = extract_info.loads_ids
    normalize_info = pipeline.normalize()
    return _Extracted(unit, source, stats, load_id, dict(normalize_info.row_counts))


def _scope_metadata(
    dlt: DagsterDltResource, pipeline: Any, extracted: _Extracted
) -> dict[str, dict[str, Any]]:
    """Per table of a loaded scope, its materialization's metadata (read right after the load).

    One schema copy and one connection for the whole scope: each ``sql_client()`` resolves
    dlt's destination configuration again, which cost more CPU than the queries themselves."""
    unit = extracted.unit
    schema = _schema_copy(pipeline)
    by_table = {}
    with pipeline.sql_client() as client:
        counts = _row_counts(client, unit.tables, unit.partition)
        for table in unit.tables:
            metadata = _table_metadata(dlt, pipeline, schema, table)
            metadata.update(
                {
                    # The package's own figures, not the whole load's (scopes share a load).
                    "rows_loaded": MetadataValue.int(extracted.row_counts.get(table, 0)),
                    "split/load_id": extracted.load_id,
                    "split/scope": unit.label,
                    "split/requests": extracted.stats.by_endpoint.get(table, 0),
                    "split/scope_requests": extracted.stats.requests,
                    "split/scope_retries": extracted.stats.retries,
                    "split/scope_rate_limited": extracted.stats.rate_limited,
                    "split/scope_rate_limit_wait_seconds": round(
                        extracted.stats.rate_limit_wait_seconds, 3
                    ),
                }
            )
            if unit.partition is not None:
                metadata["dagster/partition_row_count"] = MetadataValue.int(counts[table])
            else:
                metadata["dagster/row_count"] = MetadataValue.int(counts[table])
            if asset_key(table) in (WORKSPACES_KEY, ENVIRONMENTS_KEY):
                metadata[LISTING_METADATA_KEY] = MetadataValue.json(_listing(client, table, schema))
            by_table[table] = metadata
    return by_table


def _schema_copy(pipeline: Any) -> Any:
    # A copy: dagster-dlt's helper pops each column's data type from the schema it is given,
    # and the run's later packages are extracted onto the live one.
    return pipeline.default_schema.clone()


def _table_metadata(
    dlt: DagsterDltResource, pipeline: Any, schema: Any, table: str
) -> dict[str, Any]:
    """What dagster-dlt records for a table: its columns (child tables too) and location."""
    name = schema.naming.normalize_table_identifier(table)
    destination = pipeline.destination.destination_name
    children = {
        child: dlt._extract_table_schema_metadata(child, schema)
        for child in schema.data_table_names()
        if child.startswith(f"{name}__")
    }
    return {
        **children,
        "destination_name": destination,
        "dataset_name": pipeline.dataset_name,
        **TableMetadataSet(
            column_schema=dlt._extract_table_schema_metadata(name, schema),
            table_name=f"{destination}.{pipeline.dataset_name}.{name}",
            storage_kind=destination,
        ),
    }


def _row_counts(client: Any, tables: Sequence[str], partition: str | None) -> dict[str, int]:
    """Rows each table holds now (current versions of a history table), in one partition."""
    return {table: _row_count(client, table, partition) for table in tables}


def _row_count(client: Any, table: str, partition: str | None) -> int:
    endpoint = ENDPOINTS_BY_TABLE[table]
    conditions = ["_dlt_valid_to IS NULL"] if endpoint.history else []
    if partition is not None:
        column = "environment_id" if endpoint.scope == "environment" else "workspace_id"
        scope_id = partition_id(partition)
        conditions.append(f"{column} = '" + scope_id.replace("'", "''") + "'")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    name = client.make_qualified_table_name(table)
    try:
        return int(client.execute_sql(f"SELECT count(*) FROM {name}{where}")[0][0])
    except DatabaseUndefinedRelation:
        return 0  # no load has created the table yet (nothing to load so far)


def _run_summaries(
    dlt: DagsterDltResource,
    pipeline: Any,
    units: Sequence[LoadUnit],
    tables: Sequence[str],
    totals: _RunTotals,
) -> Iterator[MaterializeResult]:
    """One result per table for a partitioned run whose every partition loaded.

    Each partition was recorded as it was committed (its own materialization). This result
    is the run's output, which the run's quality checks need in order to run after the load
    (a step whose outputs are missing skips its checks); Dagster records it for every
    partition of the run, with the run's totals.
    """
    partitions = [u.partition for u in units if u.partition is not None]
    schema = _schema_copy(pipeline)
    with pipeline.sql_client() as client:
        counts = _row_counts(client, tables, None)
    for table in tables:
        yield MaterializeResult(
            asset_key=asset_key(table),
            metadata={
                **_table_metadata(dlt, pipeline, schema, table),  # columns, location
                RUN_SUMMARY_METADATA_KEY: True,
                "split/run_partitions": len(partitions),
                "dagster/row_count": MetadataValue.int(counts[table]),
                "split/run_requests": totals.requests,
                "split/run_retries": totals.retries,
                "split/run_rate_limited": totals.rate_limited,
                "split/run_rate_limit_wait_seconds": round(totals.rate_limit_wait_seconds, 3),
            },
        )


def _listing(client: Any, table: str, schema: Any) -> list[dict[str, Any]]:
    if table == "environments" and "workspaces" in schema.tables:
        # The workspace's name is part of an environment's partition key; the two tables
        # load in the same scope, so the names are those of the same listing. (Without the
        # table, a first run that loaded environments alone, the key holds the workspace id.)
        environments = client.make_qualified_table_name("environments")
        workspaces = client.make_qualified_table_name("workspaces")
        query = (
            "SELECT e.id, e.name, e.workspace_id, e.production, w.name AS workspace_name"
            f" FROM {environments} AS e LEFT JOIN {workspaces} AS w ON w.id = e.workspace_id"
            " ORDER BY e.id"
        )
    else:
        columns = "id, name, workspace_id, production" if table == "environments" else "id, name"
        query = f"SELECT {columns} FROM {client.make_qualified_table_name(table)} ORDER BY id"
    with client.execute_query(query) as cursor:
        # lower-case: Snowflake returns upper-case identifiers
        names = [d[0].lower() for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return [listing_entry(row) for row in rows]


def _stops_the_run(cause: SplitSourceError, consecutive_unavailable: int) -> bool:
    """Whether no later scope of the run can succeed either."""
    if isinstance(cause, (SplitAuthError, SyncCancelled, SplitConfigurationError)):
        return True
    return consecutive_unavailable >= CONSECUTIVE_UNAVAILABLE_TO_STOP


def _run_failure(
    units: Sequence[LoadUnit],
    totals: _RunTotals,
    stopped_early: bool,
    not_attempted: Sequence[LoadUnit],
) -> Failure:
    failed = [unit for unit, _ in totals.failures]
    first_cause = totals.failures[0][1]
    loaded = len(units) - len(failed) - len(not_attempted)
    description = str(first_cause)
    if len(units) > 1:
        # The first error leads: it says what to do; the scope count follows.
        description += (
            f" ({len(failed)} of {len(units)} scopes failed: {', '.join(u.label for u in failed)};"
            f" {loaded} loaded"
            + (f"; {len(not_attempted)} not attempted after that error" if not_attempted else "")
            + ")"
        )
    scopes = [
        {"label": unit.label, "partition": unit.partition, "error": str(cause)}
        for unit, cause in totals.failures
    ] + [
        {"label": unit.label, "partition": unit.partition, "error": NOT_ATTEMPTED}
        for unit in not_attempted
    ]
    return Failure(
        description=description,
        metadata={
            FAILED_SCOPES_METADATA_KEY: MetadataValue.json(scopes),
            STOPPED_METADATA_KEY: stopped_early,
            "split/requests": totals.requests,
            "split/retries": totals.retries,
            "split/rate_limited": totals.rate_limited,
            "split/rate_limit_wait_seconds": round(totals.rate_limit_wait_seconds, 3),
        },
        allow_retries=False,
    )
