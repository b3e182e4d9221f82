"""The dbt models (analytics_assets/dbt_project) as Dagster assets, downstream of the raw tables.

- dbt sources map onto the dlt assets' keys ``split/<table>`` (a child table such as
  ``feature_flags__owners`` belongs to its parent's asset), so lineage runs raw -> staging ->
  marts; models are ``split_analytics/<model>``; dbt tests become asset checks.
- A run takes the same warehouse writer lock and pool as the loads: DuckDB has one writer.
- The manifest is made offline by ``dbt parse`` when missing or older than the project's files
  (seconds, once per change), in the instance home's ``dbt/target`` (with dbt's logs), not in
  the package; nothing is fetched, the project uses no hub packages.
- Each run renders its dbt profile from the warehouse settings and the credentials dlt resolves,
  so any dlt credential form (connection string, fields, secrets.toml) works for dbt too.
"""

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    DagsterInstance,
    Definitions,
    define_asset_job,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from analytics_assets.dagster_layer.instance import ensure_instance_home
from analytics_assets.dagster_layer.policies import MODELS_AUTOMATION
from analytics_assets.dagster_layer.resources import WarehouseResource
from analytics_assets.dagster_layer.runs import execute_job_run
from analytics_assets.dagster_layer.translator import OWNERS, asset_key
from analytics_assets.split_source import TABLES
from analytics_assets.warehouse import WarehouseSettings, warehouse_reader, writer_lock

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
PROFILE = "analytics_assets"
MODELS_KEY_PREFIX = "split_analytics"
MODELS_JOB = "split_models_refresh"
# The dbt of this interpreter's environment, also when its bin folder is not on PATH.
DBT_EXECUTABLE = shutil.which("dbt") or str(Path(sys.executable).with_name("dbt"))
QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
TESTS_OF_SELECTED_MODELS_ONLY_TAG = "split/tests_of_selected_models_only"
"""A run tagged so runs only the tests whose models are all in it (dbt's cautious indirect
selection). Otherwise dbt also runs a test of an unselected model that refers to a selected
one, which fails when the unselected model was never built."""
SYNC_BUILD_LOG = "sync-build.log"
"""Where a sync's dbt build writes its output, in the instance home's dbt folder."""


class SplitDbtTranslator(DagsterDbtTranslator):
    """Sources are the raw dlt assets; models are grouped by layer (staging, history, marts)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return asset_key(dbt_resource_props["name"].split("__")[0])
        return AssetKey([MODELS_KEY_PREFIX, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "snapshot":
            return "split_history"
        fqn = dbt_resource_props["fqn"]
        return f"split_{fqn[1]}" if len(fqn) > 2 else "split_models"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return list(OWNERS)

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> AutomationCondition | None:
        return MODELS_AUTOMATION


def _project_is_newer_than(manifest: Path) -> bool:
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(
        path.stat().st_mtime > built
        for path in PROJECT_DIR.rglob("*")
        if path.suffix in (".sql", ".yml", ".yaml")
    )


def dbt_project() -> DbtProject:
    """The project, with a manifest parsed offline when the files changed since the last one.

    dbt's target and log folders live in the Dagster instance home (``<home>/dbt/target``), never
    inside the package: an installed package may be read-only, and is shared by instances.
    """
    target_path = ensure_instance_home() / "dbt" / "target"
    project = DbtProject(
        project_dir=PROJECT_DIR, target_path=target_path, profiles_dir=PROJECT_DIR, profile=PROFILE
    )
    if _project_is_newer_than(project.manifest_path):
        # `dbt parse` with the shipped profile's default (DuckDB) target: it reads no data.
        _parse_manifest(project)
    return project


def _parse_manifest(project: DbtProject) -> None:
    """``dbt parse``, its output kept: on failure the error is raised as a sentence (a full
    disk as the OSError it is), never dbt's traceback on the user's terminal.

    dbt writes into a folder of this process's own, and the manifest is then renamed into
    place: two processes that start on a new instance at once (two syncs, or a sync and
    ``dagster dev``) each parse, and neither ever reads the other's half-written file."""
    target = Path(project.target_path)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix="parse-") as private:
        result = subprocess.run(
            [
                DBT_EXECUTABLE, "parse", "--quiet", "--log-level-file", "none",
                "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
                "--profile", PROFILE, "--target-path", private,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
            check=False,
        )  # fmt: skip
        if result.returncode == 0:
            os.replace(Path(private) / "manifest.json", project.manifest_path)
            return
    output = result.stdout + result.stderr
    if "No space left on device" in output:
        raise OSError(errno.ENOSPC, "No space left on device", str(project.target_path))
    lines = [line for line in output.splitlines() if line.strip() and "Traceback" not in line]
    reason = next((line for line in lines if "rror" in line), lines[-1] if lines else "")
    raise RuntimeError(f"dbt could not parse the models' project: {reason.strip()}")


def dbt_profile(warehouse: WarehouseSettings) -> dict[str, Any]:
    """The dbt profile for ``warehouse``: its file or server, and the models' schema."""
    schema = warehouse.analytics_dataset
    if warehouse.destination_type == "duckdb":
        output: dict[str, Any] = {
            "type": "duckdb",
            "path": str(Path(warehouse.duckdb_path).expanduser().resolve()),
            "schema": schema,
            "threads": 1,
            "settings": {"memory_limit": warehouse.duckdb_memory_limit},
            # A reader (a query, a BI tool) with the file open makes the connect fail; wait
            # for it (dbt-duckdb retries with 1, 2, 4 ... s pauses: about 17 minutes in all).
            "retries": {"connect_attempts": 11, "retryable_exceptions": ["IOException"]},
        }
    elif warehouse.destination_type == "postgres":
        with warehouse_reader(warehouse) as client:
            credentials = client.credentials
        output = {
            "type": "postgres",
            # Parts a libpq DSN may leave out are empty here, and libpq fills them (PGHOST or
            # the socket, PGUSER, PGPASSWORD or .pgpass), as it does for the loads.
            "host": credentials.host or (credentials.query or {}).get("host", ""),
            "port": int(credentials.port or 5432),
            "user": credentials.username or "",
            "password": str(credentials.password or ""),
            "dbname": credentials.database or "",
            "schema": schema,
            "threads": 4,
        }
    else:
        raise ValueError(
            f"The dbt models run on duckdb and postgres; {warehouse.destination} needs its dbt"
            " adapter and a target in analytics_assets/dbt_project/profiles.yml."
        )
    return {PROFILE: {"target": "run", "outputs": {"run": output}}}


def build_model_assets(pool: str | None) -> AssetsDefinition:
    project = dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        name="split_models",
        dagster_dbt_translator=SplitDbtTranslator(),
        pool=pool,
    )
    def split_models(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
        settings = warehouse.settings()
        with writer_lock(settings), tempfile.TemporaryDirectory() as profiles_dir:
            profile_path = Path(profiles_dir) / "profiles.yml"
            # The profile may hold a database password: readable by this user only.
            profile_path.touch(mode=0o600)
            profile_path.write_text(yaml.safe_dump(dbt_profile(settings)))
            dbt = DbtCliResource(
                project_dir=project,
                profiles_dir=profiles_dir,
                profile=PROFILE,
                dbt_executable=DBT_EXECUTABLE,
            )
            dbt_vars = {"raw_dataset": settings.dataset}
            if os.environ.get("ANALYTICS_AS_OF"):
                dbt_vars["as_of"] = os.environ["ANALYTICS_AS_OF"]
            # One target (and log) folder per run, beside the manifest in the instance home.
            run_target = project.target_path / f"run-{context.run.run_id}"
            args = ["build", "--vars", json.dumps(dbt_vars)]
            if context.run.tags.get(TESTS_OF_SELECTED_MODELS_ONLY_TAG) == "true":
                args += ["--indirect-selection", "cautious"]
            _reuse_parse_state(Path(project.target_path), run_target)
            try:
                yield from dbt.cli(args, context=context, target_path=run_target).stream()
            finally:
                _keep_parse_state(Path(project.target_path), run_target)
                _remove_old_build_folders(Path(project.target_path))

    return split_models


BUILD_PARSE_STATE = "build-partial_parse.msgpack"
"""The last build's parse state (dbt's ``partial_parse.msgpack``), in the instance home's dbt
target folder. Each run builds in a target folder of its own, where dbt found no parse state
and parsed the whole project again; started from the last build's, it parses only what
changed. dbt checks the state against the project's files, the vars, the profile and its own
version, and parses everything when any of them differs, so a stale copy costs nothing."""
PARSE_STATE = "partial_parse.msgpack"


def _reuse_parse_state(target_path: Path, run_target: Path) -> None:
    saved = target_path / BUILD_PARSE_STATE
    with contextlib.suppress(OSError):  # none yet, or unreadable: dbt parses in full
        run_target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(saved, run_target / PARSE_STATE)


def _keep_parse_state(target_path: Path, run_target: Path) -> None:
    produced = run_target / PARSE_STATE
    # Copied, then renamed into place: a build that starts meanwhile reads a whole file.
    partial = target_path / f".{BUILD_PARSE_STATE}.{os.getpid()}"
    try:
        shutil.copyfile(produced, partial)
        partial.replace(target_path / BUILD_PARSE_STATE)
    except OSError:  # a cache: a full disk or no parse state here only costs the next parse
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


BUILD_FOLDERS_KEPT = 5
"""Models runs whose target folders (compiled SQL, run results, dbt's log) are kept, the
newest: about 9 MB each at the demo size, so an hourly build kept them all at some 80 GB a
year."""


def _remove_old_build_folders(target_path: Path) -> None:
    folders = []
    for folder in target_path.glob("run-*"):
        with contextlib.suppress(OSError):  # removed meanwhile by another run
            folders.append((folder.stat().st_mtime, folder))
    folders.sort(reverse=True)
    for _, folder in folders[BUILD_FOLDERS_KEPT:]:
        shutil.rmtree(folder, ignore_errors=True)


def models_job(models: AssetsDefinition) -> Any:
    return define_asset_job(
        MODELS_JOB,
        selection=[models],
        description="The dbt models (staging, history, marts) and their tests, after a load.",
    )


def run_models_after_sync(
    defs: Definitions,
    instance: DagsterInstance,
    tags: Mapping[str, str],
    progress: Callable[[str], None],
) -> None:
    """Build the models and run their tests after a sync's loads (the sync's last run).

    Only the models whose raw tables have all been loaded: after ``sync --select`` on a new
    warehouse the others would fail on a missing table. They are named, and built by the
    first sync that loads their tables (automation's ``eager`` waits for them the same way).
    """
    from analytics_assets.dagster_layer.sync import SyncFailed, _failure_message

    buildable, not_loaded, checks = _models_by_loaded_tables(defs, instance)
    if not_loaded:
        tables = sorted({table for missing in not_loaded.values() for table in missing})
        progress(
            f"Skipping {len(not_loaded)} of {len(buildable) + len(not_loaded)} models: they read"
            f" tables this warehouse has not loaded yet ({', '.join(tables)}). A sync of those"
            " tables (or of everything) builds them."
        )
        if not buildable:
            return
    progress(f"Running {MODELS_JOB}: dbt build")
    # dagster-dbt echoes every dbt event on stdout (a run's captured output in the UI): some
    # 400 lines a build, which would bury the sync's own summary. They go to a file instead.
    log_path = Path(instance.root_directory) / "dbt" / SYNC_BUILD_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        result = execute_job_run(
            defs,
            instance,
            MODELS_JOB,
            asset_selection=buildable if not_loaded else None,
            asset_check_selection=checks if not_loaded else None,
            tags={**tags, TESTS_OF_SELECTED_MODELS_ONLY_TAG: "true"} if not_loaded else tags,
            run_config=QUIET_LOGGERS,
        )
    if not result.success:
        raise SyncFailed(f"{_failure_message(result, MODELS_JOB)} dbt's output: {log_path}.")
    progress(f"Finished {MODELS_JOB} ({result.run_id[:8]}); dbt's output: {log_path}")


def _models_by_loaded_tables(
    defs: Definitions, instance: DagsterInstance
) -> tuple[list[AssetKey], dict[AssetKey, list[str]], set[AssetCheckKey]]:
    """The models whose raw tables have all been materialized, the others with the raw tables
    they still wait for, and the tests to run: those of the buildable models that read only
    buildable models (a relationships test also reads the model it refers to)."""
    graph = defs.resolve_asset_graph()
    models = sorted(defs.resolve_job_def(MODELS_JOB).asset_layer.selected_asset_keys)
    raw = {asset_key(table) for table in TABLES}
    upstream = {model: graph.get_ancestor_asset_keys(model) & raw for model in models}
    wanted = sorted(set().union(*upstream.values()))
    latest = instance.get_latest_materialization_events(wanted)
    loaded = {key for key, event in latest.items() if event is not None}
    buildable: list[AssetKey] = []
    not_loaded: dict[AssetKey, list[str]] = {}
    for model in models:
        missing = sorted(key.path[-1] for key in upstream[model] - loaded)
        if missing:
            not_loaded[model] = missing
        else:
            buildable.append(model)
    built = set(buildable) | loaded
    checks = {
        key
        for key in graph.asset_check_keys
        if key.asset_key in buildable
        and all(dep.asset_key in built for dep in graph.get_check_spec(key).additional_deps)
    }
    return buildable, not_loaded, checks
