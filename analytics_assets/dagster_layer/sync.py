"""``analytics-assets sync``: materialize the whole graph through Dagster, every partition.

Runs go into the persistent instance (so they show in the UI) and use the same jobs the
sensors and schedules launch:

1. the organisation assets (workspaces and environments are always refreshed: they define
   the partitions);
2. the partitions are brought in step with those listings (the sensors' own bookkeeping);
3. the workspace partitions, then the environment partitions, one run per contiguous range
   (single-run backfill policy); each partition inside is its own load and materialization.

A scope that fails does not stop the others: the sync goes on and fails at the end naming
every failed scope. The next sync resumes it: every run of a sync carries its id
(``split/sync``), and until a sync completes (its last run is tagged ``split/sync_outcome``)
the next one continues it, skipping every scope its runs already materialized (Dagster's
own records) and fetching only what failed or was never loaded. The organisation listings
are always fetched again: they map what exists now.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, Definitions, RunsFilter
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES

from analytics_assets.dagster_layer import models
from analytics_assets.dagster_layer.instance import get_instance
from analytics_assets.dagster_layer.partitions import (
    ENVIRONMENTS_KEY,
    WORKSPACES_KEY,
    contiguous_ranges,
    diff_listing,
    entry_partition,
    environment_partitions,
    latest_listing,
    workspace_partitions,
)
from analytics_assets.dagster_layer.runs import execute_job_run
from analytics_assets.dagster_layer.scoped_load import (
    FAILED_SCOPES_METADATA_KEY,
    NOT_ATTEMPTED,
    RUN_SUMMARY_METADATA_KEY,
    STOPPED_METADATA_KEY,
)
from analytics_assets.dagster_layer.sensors import PARTITION_RANGE_END, PARTITION_RANGE_START
from analytics_assets.dagster_layer.stopping import raise_if_stopping
from analytics_assets.dagster_layer.translator import (
    ENVIRONMENT_TABLES,
    ORGANISATION_TABLES,
    WORKSPACE_TABLES,
    asset_key,
)
from analytics_assets.dagster_layer.working_dirs import remove_dead_working_dirs, working_root
from analytics_assets.split_source import TABLES, SplitConfigurationError

# The CLI prints each failure once, as the user should read it; Dagster's console logger would
# repeat it with a stack trace (the run's event log in the UI keeps the full detail).
QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
LAUNCHED_BY_TAG = "split/launched_by"
LAUNCHED_BY = "analytics-assets sync"
SYNC_INSTANCE_TAG = "split/sync_instance"
"""Which host and instance home a sync ran from: the scope of its exclusive lock."""
SYNC_ID_TAG = "split/sync"
"""The sync a run belongs to; a resumed sync keeps the id of the sync it continues."""
SYNC_OUTCOME_TAG = "split/sync_outcome"
SYNC_COMPLETE = "complete"
ALWAYS_REFRESHED = ("workspaces", "environments")
"""A resumed sync fetches these again: they say which workspaces and environments exist."""


class SyncFailed(Exception):
    """A run failed; the message is the failure as the user should read it."""

    def __init__(self, message: str, report: SyncReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class FailedScope:
    label: str
    table_group: str
    partition: str | None
    error: str


@dataclass
class _RunOutcome:
    message: str | None = None
    stopped_early: bool = False
    materialized: set[tuple[str, str | None]] = field(default_factory=set)


@dataclass
class TableSummary:
    table: str
    rows_loaded: int = 0
    requests: int = 0
    partitions: int = 0


@dataclass
class SyncReport:
    runs: list[str] = field(default_factory=list)
    tables: dict[str, TableSummary] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    rate_limit_wait_seconds: float = 0.0
    seconds: float = 0.0
    failed_scopes: list[FailedScope] = field(default_factory=list)
    resumed_sync: str | None = None
    skipped_scopes: int = 0
    removed_working_dirs: int = 0

    def table(self, name: str) -> TableSummary:
        return self.tables.setdefault(name, TableSummary(name))


@dataclass(frozen=True)
class SyncOptions:
    tables: tuple[str, ...] | None = None
    workspaces: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None
    build_models: bool = True
    """Build the dbt models after complete loads (``--skip-models``: loads only)."""


@contextmanager
def exclusive_sync(home: Path) -> Iterator[None]:
    """One sync per instance at a time; a second one refuses with a clear message."""
    lock_path = home / "analytics-assets-sync.lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SplitConfigurationError(
                f"Another analytics-assets sync is running on this instance ({home}, pid"
                f" {holder}). Wait for it to finish; runs from the UI wait for each other too."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sync_tags(home: Path) -> dict[str, str]:
    return {LAUNCHED_BY_TAG: LAUNCHED_BY, SYNC_INSTANCE_TAG: _sync_instance_id(home)}


def _sync_instance_id(home: Path) -> str:
    return f"{socket.gethostname()}:{home}"


def unfinished_sync_runs(home: Path) -> RunsFilter:
    """The runs launched by a sync of this instance home on this host, not yet finished."""
    return RunsFilter(
        tags={LAUNCHED_BY_TAG: LAUNCHED_BY, SYNC_INSTANCE_TAG: _sync_instance_id(home)},
        statuses=NOT_FINISHED_STATUSES,
    )


def recover_interrupted_runs(instance: DagsterInstance, home: Path) -> list[str]:
    """Close the runs of an earlier sync whose process died (SIGKILL, OOM, power loss).

    Such a run stays STARTED forever and keeps its slot of the ``split_duckdb_writer`` pool,
    so every later load (CLI or UI) would wait for it forever. Called under the exclusive
    sync lock: no other sync of this instance home on this host is alive, so each unfinished
    run it launched is an orphan. It is marked failed and its concurrency slots are freed.
    """
    records = instance.get_run_records(unfinished_sync_runs(home))
    recovered = []
    for record in records:
        run = record.dagster_run
        instance.report_run_failed(
            run,
            "The analytics-assets sync that ran this run ended without finishing it (killed or"
            " crashed); marked failed by the next sync. Its tables keep their last complete"
            " load.",
        )
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(run.run_id)
    return recovered


def check_configuration() -> None:
    """Fail in seconds on bad configuration, before any Dagster run is created.

    The API settings (key, base URL, auth scheme, numbers), the destination's name and, for
    a server destination, its credentials: the same checks each run makes, done once up
    front. The folders a sync writes (the instance home, the DuckDB file's folder) must be
    folders and writable; the DuckDB file itself is left to the runs, which open it under the
    writer lock.
    """
    from analytics_assets.dagster_layer.instance import instance_home_path
    from analytics_assets.dagster_layer.resources import split_settings_from_environment
    from analytics_assets.storage_errors import check_writable_folder
    from analytics_assets.warehouse import WarehouseSettings, check_destination

    split_settings_from_environment()
    warehouse = WarehouseSettings.from_environment()
    check_writable_folder(instance_home_path(), "the Dagster instance folder", "DAGSTER_HOME")
    if warehouse.single_writer:
        database = Path(warehouse.duckdb_path).expanduser()
        if database.is_dir():
            raise SplitConfigurationError(
                f"ANALYTICS_DUCKDB_PATH={warehouse.duckdb_path!r} is a folder; it names the DuckDB"
                " file (for example data/analytics.duckdb)."
            )
        check_writable_folder(database.parent, "the DuckDB file's folder", "ANALYTICS_DUCKDB_PATH")
    else:
        check_destination(warehouse)


class UnknownName(SplitConfigurationError):
    """A workspace or environment given by name is unknown or ambiguous in a listing."""


def _resolve_workspaces(names: Sequence[str], listing: Sequence[dict[str, Any]]) -> list[str]:
    """Map workspace ids, exact names or partition keys to ids, failing on unknown or
    ambiguous ones."""
    resolved = []
    for name in names:
        matches = [w for w in listing if name in (w["id"], w.get("name"), entry_partition(w))]
        if len(matches) != 1:
            known = ", ".join(f"{w.get('name')} ({w['id']})" for w in listing) or "none"
            problem = "is ambiguous" if matches else "does not exist"
            raise UnknownName(
                f"Workspace {name!r} {problem}. Give its id or exact name; known workspaces:"
                f" {known}."
            )
        resolved.append(matches[0]["id"])
    return resolved


def _resolve_environments(
    names: Sequence[str],
    environments: Sequence[dict[str, Any]],
    workspaces: Sequence[dict[str, Any]],
) -> list[str]:
    """Map environment ids, exact names, ``Workspace/Environment`` or partition keys (which
    are ``Workspace/Environment (id)``) to ids, failing on unknown or ambiguous ones."""
    workspace_name = {w["id"]: str(w.get("name")) for w in workspaces}

    def label(e: dict[str, Any]) -> str:
        return f"{workspace_name.get(e['workspace_id'], e['workspace_id'])}/{e.get('name')}"

    resolved = []
    for name in names:
        matches = [e for e in environments if name in (e["id"], e.get("name"), entry_partition(e))]
        if not matches and "/" in name:
            # Workspace names may hold a slash too: try every split point.
            for cut in [i for i, c in enumerate(name) if c == "/"]:
                workspace, environment = name[:cut].strip(), name[cut + 1 :].strip()
                matches += [
                    e
                    for e in environments
                    if e.get("name") == environment
                    and workspace in (e["workspace_id"], workspace_name.get(e["workspace_id"]))
                ]
        if len(matches) == 1:
            resolved.append(matches[0]["id"])
            continue
        if matches:
            candidates = ", ".join(f"{label(e)} ({e['id']})" for e in matches)
            raise UnknownName(
                f"Environment {name!r} is ambiguous: it is in several workspaces ({candidates})."
                f" Write it as Workspace/Environment, e.g. {label(matches[0])!r}, or give its id."
            )
        known = ", ".join(f"{label(e)} ({e['id']})" for e in environments) or "none"
        raise UnknownName(
            f"Environment {name!r} does not exist. Give its id, its exact name or"
            f" Workspace/Environment; known environments: {known}."
        )
    return resolved


def resolve_selection(
    options: SyncOptions,
    workspaces: Sequence[dict[str, Any]],
    environments: Sequence[dict[str, Any]],
) -> tuple[list[str] | None, list[str] | None]:
    """The ids of the workspaces and environments a sync was asked for (None: all)."""
    return (
        _resolve_workspaces(options.workspaces, workspaces) if options.workspaces else None,
        _resolve_environments(options.environments, environments, workspaces)
        if options.environments
        else None,
    )


def check_selection(options: SyncOptions, instance: DagsterInstance) -> None:
    """Fail in seconds on a workspace or environment name that does not exist, before any run
    (and before the definitions are built, which may parse the dbt project).

    Names are checked against the last stored listing first; only when one is not found there
    is the API's listing read (workspaces and their environments, nothing else). The sync
    resolves them again against the listing its organisation run loads.
    """
    if not (options.workspaces or options.environments):
        return
    try:
        resolve_selection(
            options,
            latest_listing(instance, WORKSPACES_KEY) or [],
            latest_listing(instance, ENVIRONMENTS_KEY) or [],
        )
    except UnknownName:
        from analytics_assets.dagster_layer.resources import split_settings_from_environment
        from analytics_assets.split_source import read_listing

        resolve_selection(options, *read_listing(split_settings_from_environment()))


def _update_partitions(
    instance: DagsterInstance, listing: Sequence[dict[str, Any]], partitions_def: Any
) -> tuple[list[str], list[str]]:
    """The partitions after the listing's changes, and the deleted ones."""
    existing = list(instance.get_dynamic_partitions(partitions_def.name))
    changes = diff_listing(existing, listing, None)
    for key in changes.deleted:
        instance.delete_dynamic_partition(partitions_def.name, key)
    if changes.added:
        instance.add_dynamic_partitions(partitions_def.name, list(changes.added))
    return list(instance.get_dynamic_partitions(partitions_def.name)), list(changes.deleted)


def _previous_unfinished_sync(instance: DagsterInstance, home: Path) -> str | None:
    """The id of the last sync from this instance home if it did not complete, else None."""
    latest = instance.get_runs(
        RunsFilter(tags={LAUNCHED_BY_TAG: LAUNCHED_BY, SYNC_INSTANCE_TAG: _sync_instance_id(home)}),
        limit=1,
    )
    if not latest or SYNC_ID_TAG not in latest[0].tags:
        return None
    sync_id = latest[0].tags[SYNC_ID_TAG]
    runs = instance.get_runs(RunsFilter(tags={SYNC_ID_TAG: sync_id}))
    if any(run.tags.get(SYNC_OUTCOME_TAG) == SYNC_COMPLETE for run in runs):
        return None
    return sync_id


def _materialized_by_sync(instance: DagsterInstance, sync_id: str) -> set[tuple[str, str | None]]:
    """(table, partition) of every materialization the runs of a sync recorded."""
    done: set[tuple[str, str | None]] = set()
    for run in instance.get_runs(RunsFilter(tags={SYNC_ID_TAG: sync_id})):
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.asset_materialization
            if materialization is not None:
                done.add((materialization.asset_key.path[-1], materialization.partition))
    return done


def run_sync(
    defs: Definitions,
    options: SyncOptions = SyncOptions(),
    progress: Callable[[str], None] = print,
    instance: DagsterInstance | None = None,
) -> SyncReport:
    """Materialize the selected part of the graph; raises SyncFailed on a failed run.

    ``instance``: the one the caller opened (the CLI's), else the instance of DAGSTER_HOME."""
    instance = instance or get_instance()
    home = Path(instance.root_directory)
    selected = set(options.tables or TABLES)
    unknown = selected - set(TABLES)
    if unknown:
        raise SplitConfigurationError(
            f"Unknown table(s) {', '.join(sorted(unknown))}. Tables: {', '.join(TABLES)}."
        )
    report = SyncReport()
    started = time.monotonic()
    with exclusive_sync(home):
        recovered = recover_interrupted_runs(instance, home)
        if recovered:
            progress(
                f"Marked {len(recovered)} run(s) of an interrupted sync as failed and freed"
                " their concurrency slots."
            )
        from analytics_assets.warehouse import WarehouseSettings

        removed = remove_dead_working_dirs(
            working_root(WarehouseSettings.from_environment().working_dir, home)
        )
        report.removed_working_dirs = len(removed)
        if removed:
            progress(f"Removed {len(removed)} dlt working folder(s) of runs that were killed.")
        resumed = _previous_unfinished_sync(instance, home)
        done = _materialized_by_sync(instance, resumed) if resumed else set()
        report.resumed_sync = resumed
        sync_id = resumed or uuid.uuid4().hex
        if resumed:
            progress(
                f"Resuming the unfinished sync {resumed[:8]}: what it loaded is kept, only"
                " what failed or was not loaded is fetched."
            )

        def todo(tables: Sequence[str], partition: str | None) -> list[str]:
            return [t for t in tables if (t, partition) not in done]

        org_selected = [t for t in ORGANISATION_TABLES if t in selected]
        org_tables = list(dict.fromkeys([*ALWAYS_REFRESHED, *todo(org_selected, None)]))
        report.skipped_scopes += len([t for t in org_selected if t not in org_tables])
        failures: list[str] = []

        outcome = _run(
            defs,
            instance,
            "split_organisation_refresh",
            org_tables,
            None,
            report,
            progress,
            sync_id=sync_id,
        )
        listings = {(t, None) for t in ALWAYS_REFRESHED}
        if outcome.message and (outcome.stopped_early or not listings <= outcome.materialized):
            # Without fresh listings the partitions cannot be trusted: stop here.
            report.seconds = time.monotonic() - started
            raise SyncFailed(_sync_failure([outcome.message], report), report)
        if outcome.message:
            failures.append(outcome.message)

        workspace_listing = latest_listing(instance, WORKSPACES_KEY) or []
        environment_listing = latest_listing(instance, ENVIRONMENTS_KEY) or []
        workspace_keys, deleted_workspaces = _update_partitions(
            instance, workspace_listing, workspace_partitions
        )
        environment_keys, deleted_environments = _update_partitions(
            instance, environment_listing, environment_partitions
        )

        chosen_workspaces, chosen_environments = resolve_selection(
            options, workspace_listing, environment_listing
        )
        wanted_workspaces = workspace_keys
        wanted_environments = environment_keys
        if chosen_workspaces is not None:
            wanted_workspaces = [
                entry_partition(w) for w in workspace_listing if w["id"] in chosen_workspaces
            ]
            wanted_environments = [
                entry_partition(e)
                for e in environment_listing
                if e["workspace_id"] in chosen_workspaces
            ]
        if chosen_environments is not None:
            wanted_environments = [
                entry_partition(e) for e in environment_listing if e["id"] in chosen_environments
            ]

        for job_name, tables, keys, wanted, deleted in (
            (
                "split_workspace_refresh",
                WORKSPACE_TABLES,
                workspace_keys,
                wanted_workspaces,
                deleted_workspaces,
            ),
            (
                "split_environment_refresh",
                ENVIRONMENT_TABLES,
                environment_keys,
                wanted_environments,
                deleted_environments,
            ),
        ):
            job_tables = [t for t in tables if t in selected]
            if options.environments and job_name == "split_workspace_refresh":
                continue  # an environment selection refreshes environment tables only
            if not job_tables:
                continue
            # A partition the unfinished sync loaded in full is not fetched again.
            remaining = [key for key in wanted if todo(job_tables, key)]
            if deleted and wanted and not remaining:
                # Rows of a deleted partition go with the next load of any partition (its
                # scope covers every id no longer listed): load one again to remove them.
                remaining = list(wanted[:1])
            report.skipped_scopes += len(wanted) - len(remaining)
            for start, end in contiguous_ranges(keys, remaining):
                count = keys.index(end) - keys.index(start) + 1
                outcome = _run(
                    defs,
                    instance,
                    job_name,
                    job_tables,
                    (start, end),
                    report,
                    progress,
                    count,
                    sync_id=sync_id,
                )
                if outcome.message:
                    failures.append(outcome.message)
                    if outcome.stopped_early:
                        break
            if failures and outcome.stopped_early:
                break
        report.seconds = time.monotonic() - started
        if failures:
            raise SyncFailed(_sync_failure(failures, report), report)
        if report.runs:
            instance.add_run_tags(report.runs[-1], {SYNC_OUTCOME_TAG: SYNC_COMPLETE})
        # The models build on complete loads only; after a failure the next (resuming)
        # sync builds them.
        if options.build_models:
            models.run_models_after_sync(defs, instance, _sync_tags(home), progress)
    return report


def _sync_failure(messages: Sequence[str], report: SyncReport) -> str:
    text = "; ".join(messages)
    failed = [f.label for f in report.failed_scopes if f.error != NOT_ATTEMPTED]
    if failed:
        text += (
            f" Failed scopes: {', '.join(dict.fromkeys(failed))}. The next sync fetches only"
            " what failed or was not loaded; what was loaded is kept."
        )
    return text


def _run(
    defs: Definitions,
    instance: DagsterInstance,
    job_name: str,
    tables: Sequence[str],
    partition_range: tuple[str, str] | None,
    report: SyncReport,
    progress: Callable[[str], None],
    partition_count: int = 0,
    *,
    sync_id: str,
) -> _RunOutcome:
    raise_if_stopping()  # after SIGTERM/SIGINT no new run starts
    tags = {
        LAUNCHED_BY_TAG: LAUNCHED_BY,
        SYNC_INSTANCE_TAG: _sync_instance_id(Path(instance.root_directory)),
        SYNC_ID_TAG: sync_id,
    }
    label = job_name
    if partition_range:
        tags[PARTITION_RANGE_START], tags[PARTITION_RANGE_END] = partition_range
        label += f" ({partition_count} partition{'s' if partition_count != 1 else ''})"
    progress(f"Running {label}: {', '.join(tables)}")
    result = execute_job_run(
        defs,
        instance,
        job_name,
        asset_selection=[asset_key(t) for t in tables],
        tags=tags,
        run_config=QUIET_LOGGERS,
    )
    report.runs.append(result.run_id)
    outcome = _RunOutcome()
    counted_scopes: set[str] = set()
    for event in result.all_events:
        if event.event_type != DagsterEventType.ASSET_MATERIALIZATION:
            continue
        materialization = event.step_materialization_data.materialization
        metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        table = materialization.asset_key.path[-1]
        if metadata.get(RUN_SUMMARY_METADATA_KEY):
            continue  # repeats what the partitions' own materializations said
        outcome.materialized.add((table, materialization.partition))
        summary = report.table(table)
        summary.partitions += 1 if materialization.partition else 0
        summary.rows_loaded += int(metadata.get("rows_loaded", 0) or 0)
        summary.requests += int(metadata.get("split/requests", 0))
        scope = str(metadata.get("split/load_id", ""))
        if result.success and scope not in counted_scopes:  # a failed run reports its totals
            counted_scopes.add(scope)
            report.requests += int(metadata.get("split/scope_requests", 0))
            report.retries += int(metadata.get("split/scope_retries", 0))
            report.rate_limited += int(metadata.get("split/scope_rate_limited", 0))
            report.rate_limit_wait_seconds += float(
                metadata.get("split/scope_rate_limit_wait_seconds", 0.0)
            )
    if not result.success:
        outcome.message = _failure_message(result, label)
        failure = _failure_metadata(result)
        report.requests += int(failure.get("split/requests", 0))
        report.retries += int(failure.get("split/retries", 0))
        report.rate_limited += int(failure.get("split/rate_limited", 0))
        report.rate_limit_wait_seconds += float(failure.get("split/rate_limit_wait_seconds", 0.0))
        outcome.stopped_early = bool(failure.get(STOPPED_METADATA_KEY, False)) or not failure
        for scope in failure.get(FAILED_SCOPES_METADATA_KEY) or []:
            report.failed_scopes.append(
                FailedScope(scope["label"], job_name, scope.get("partition"), scope["error"])
            )
        progress(f"Failed {label} ({result.run_id[:8]})")
    else:
        progress(f"Finished {label} ({result.run_id[:8]})")
    return outcome


def _failure_metadata(result: Any) -> dict[str, Any]:
    """The metadata of the run's expected failure (``Failure``); empty for a bug."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data.user_failure_data
            if data is not None:
                return {k: getattr(v, "value", v) for k, v in data.metadata.items()}
    return {}


def _failure_message(result: Any, label: str) -> str:
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            user_message = (
                event.step_failure_data.user_failure_data.description
                if event.step_failure_data.user_failure_data
                else None
            )
            if user_message:  # an expected failure (Failure): its message says it all
                return f"{label} failed: {user_message}"
            # Anything else is a bug: keep its stack trace, which the quiet console hides.
            detail = error.to_string().strip() if error else "unknown error"
            return f"{label} failed: {detail}"
    return f"{label} failed (run {result.run_id}); see the run in the UI for details."


def current_row_counts(tables: Sequence[str]) -> dict[str, int | None]:
    """Rows now in each table (current versions for history tables), for the summary."""
    from analytics_assets.split_source import ENDPOINTS_BY_TABLE
    from analytics_assets.warehouse import WarehouseSettings, warehouse_reader, writer_lock

    warehouse = WarehouseSettings.from_environment()
    counts: dict[str, int | None] = {}
    with writer_lock(warehouse), warehouse_reader(warehouse, read_only=True) as client:
        for table in tables:
            where = "WHERE _dlt_valid_to IS NULL" if ENDPOINTS_BY_TABLE[table].history else ""
            try:
                name = client.make_qualified_table_name(table)
                counts[table] = client.execute_sql(f"SELECT count(*) FROM {name} {where}")[0][0]
            except Exception:
                counts[table] = None
    return counts
