"""The UI path, timed: what a user's "Materialize all" in ``dagster dev`` costs.

The documented UI flow (docs/ui.md): "Materialize all" on the organisation group; the
partition sensors then add the workspace and environment partitions and launch their refresh
runs. Here the organisation job is launched over the webserver's GraphQL API (the call the
button makes) and the clock stops when every partition of every partitioned Split asset is
materialized and no run is left queued or running. The dbt models are not part of that flow,
so the CLI it is compared with runs ``sync --skip-models``.

``dagster dev`` is started in a session of its own and stopped by process group (SIGINT, then
SIGTERM, then SIGKILL), with the browser tests' own helpers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from analytics_assets_tests.browser.processes import (
    INSTANCE_TEMPLATE,
    free_port,
    start_in_own_group,
    stop_process_group,
)

ROOT = Path(__file__).resolve().parent.parent
ORGANISATION_JOB = "split_organisation_refresh"


def _graphql(base_url: str, query: str, variables: Mapping[str, Any] | None = None) -> Any:
    response = requests.post(
        f"{base_url}/graphql", json={"query": query, "variables": dict(variables or {})}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name locationOrLoadError { __typename } } } } }"""

LAUNCH = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }"""


def _wait_until_loaded(base_url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}")
        try:
            entries = _graphql(base_url, LOCATIONS)["workspaceOrError"]["locationEntries"]
            kinds = {e["name"]: (e["locationOrLoadError"] or {}).get("__typename") for e in entries}
            if kinds.get("analytics_assets") == "RepositoryLocation":
                return
            if kinds.get("analytics_assets") == "PythonError":
                raise RuntimeError("the code location failed to load")
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"dagster dev did not load the code location within {timeout:.0f} s")


def _launch(base_url: str) -> str:
    params = {
        "selector": {
            "repositoryLocationName": "analytics_assets",
            "repositoryName": "__repository__",
            "jobName": ORGANISATION_JOB,
        },
        "mode": "default",
        "executionMetadata": {"tags": []},
    }
    result = _graphql(base_url, LAUNCH, {"params": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launching {ORGANISATION_JOB} failed: {result}")
    return str(result["run"]["runId"])


def _everything_loaded(instance: Any) -> tuple[bool, str | None]:
    """(done, failure): every partition of every partitioned asset materialized, no run
    left unfinished; failure names a failed run."""
    from dagster import AssetKey, DagsterRunStatus
    from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES, RunsFilter

    from analytics_assets.dagster_layer.partitions import (
        environment_partitions,
        workspace_partitions,
    )
    from analytics_assets.dagster_layer.translator import ENVIRONMENT_TABLES, WORKSPACE_TABLES

    failed = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]), limit=1)
    if failed:
        return False, f"run {failed[0].run_id} ({failed[0].job_name}) failed"
    if instance.get_runs(RunsFilter(statuses=list(NOT_FINISHED_STATUSES)), limit=1):
        return False, None
    for partitions_def, tables in (
        (workspace_partitions, WORKSPACE_TABLES),
        (environment_partitions, ENVIRONMENT_TABLES),
    ):
        keys = set(instance.get_dynamic_partitions(partitions_def.name))
        if not keys:
            return False, None
        for table in tables:
            if not keys <= set(instance.get_materialized_partitions(AssetKey(["split", table]))):
                return False, None
    return True, None


def _timeline(instance: Any, since: float) -> list[dict[str, Any]]:
    """Each run's job, and when it started and ended, in seconds after the launch."""
    from dagster._core.storage.dagster_run import RunsFilter

    rows = []
    for record in reversed(instance.get_run_records(RunsFilter())):
        run = record.dagster_run
        rows.append(
            {
                "job": run.job_name,
                "launched_by": run.tags.get("dagster/sensor_name") or "the UI",
                "created": round(record.create_timestamp.timestamp() - since, 1),
                "started": round(record.start_time - since, 1) if record.start_time else None,
                "ended": round(record.end_time - since, 1) if record.end_time else None,
                "status": run.status.value,
            }
        )
    return rows


def run_ui_path(directory: Path, env: Mapping[str, str], timeout: float = 1200) -> dict[str, Any]:
    """Start ``dagster dev`` on a fresh instance in ``directory``, press "Materialize all" on
    the organisation group, and time it until every partition is loaded."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home = directory / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_TEMPLATE.read_text())
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    child_env = {**env, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    result: dict[str, Any] = {"duckdb_path": env.get("ANALYTICS_DUCKDB_PATH")}
    with open(directory / "dagster-dev.log", "wb") as log:
        process = start_in_own_group(command, cwd=ROOT, env=child_env, log=log)
        try:
            loading = time.monotonic()
            _wait_until_loaded(base_url, process, timeout=180)
            result["ui_start_seconds"] = round(time.monotonic() - loading, 1)
            instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
            started = time.monotonic()
            launched_at = time.time()
            _launch(base_url)
            deadline = started + timeout
            while True:
                done, failure = _everything_loaded(instance)
                if done or failure:
                    break
                if time.monotonic() > deadline:
                    failure = f"not everything was loaded within {timeout:.0f} s"
                    break
                time.sleep(0.5)
            result["seconds"] = round(time.monotonic() - started, 2)
            result["error"] = failure
            result["runs"] = _timeline(instance, launched_at)
        except Exception as exc:  # a benchmark reports what went wrong and goes on
            result["error"] = str(exc)
        finally:
            stop_process_group(process)
    return result
