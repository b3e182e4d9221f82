"""``analytics-assets``: the project's command line.

analytics-assets demo              start the sandbox and sync it into DuckDB through Dagster
analytics-assets sync              materialize every Split asset and partition
analytics-assets dev               dagster dev on this code location (+ sandbox without a key)
analytics-assets check-freshness   run the freshness checks (for CI); non-zero when stale
analytics-assets query SQL         run a read-only query on the warehouse dataset
analytics-assets sandbox           serve the local fake of the Split Admin API
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

# dlt reports anonymous usage by default; a data pipeline should not phone home unasked.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
# dlt warns about every column that is null in one load, and logs each retried load job with
# its stack trace; the summary, or the one failure sentence, says what matters.
os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")

from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from analytics_assets.split_source import SplitSourceError  # noqa: E402

if TYPE_CHECKING:  # imported when used: the CLI starts fast and fails fast
    from dagster import DagsterInstance

    from analytics_assets.dagster_layer.sync import SyncOptions

console = Console(stderr=True)
out = Console()

QUERY_FORMATS = ("table", "csv", "json", "markdown")
DEMO_SIZE = "demo"
SANDBOX_PORT = 8765
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-models",
        action="store_true",
        help="load the raw tables only; do not build the dbt models afterwards",
    )
    parser.add_argument(
        "--select",
        default=None,
        help="comma-separated tables to sync (default: all). Workspaces and environments are"
        " always refreshed, since they define the partitions.",
    )
    parser.add_argument(
        "--workspace",
        action="append",
        default=None,
        help="only this workspace (id, exact name or partition key); repeatable",
    )
    parser.add_argument(
        "--environment",
        action="append",
        default=None,
        help="only this environment (id, exact name, Workspace/Environment or partition key);"
        " repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    from analytics_assets.sandbox.cli import add_sandbox_arguments
    from analytics_assets.sandbox.sizes import SIZES

    parser = argparse.ArgumentParser(
        prog="analytics-assets",
        description="Split (Harness FME) Admin API -> warehouse, with dlt and Dagster.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command")
    sync = commands.add_parser("sync", help="materialize every Split asset and partition")
    _add_sync_arguments(sync)
    demo = commands.add_parser("demo", help="start the sandbox and sync it into DuckDB")
    demo.add_argument(
        "--size", choices=sorted(SIZES), default=DEMO_SIZE, help="sandbox size (default demo)"
    )
    demo.add_argument("--port", type=int, default=SANDBOX_PORT, help="sandbox port (8765)")
    dev = commands.add_parser("dev", help="dagster dev on this code location")
    dev.add_argument("--port", type=int, default=3000, help="UI port (default 3000)")
    dev.add_argument("--host", default="127.0.0.1", help="UI host (default 127.0.0.1)")
    dev.add_argument(
        "--sandbox-size",
        choices=sorted(SIZES),
        default=DEMO_SIZE,
        help="sandbox size without a key",
    )
    commands.add_parser("check-freshness", help="run the freshness checks; exit 1 if stale")
    query = commands.add_parser("query", help="run read-only SQL on the warehouse dataset")
    query.add_argument("sql", help='e.g. "SELECT name, killed FROM feature_flag_definitions"')
    query.add_argument(
        "--format",
        choices=QUERY_FORMATS,
        default="table",
        help="table (default; aligned plain text when piped), csv, json or markdown",
    )
    sandbox = commands.add_parser("sandbox", help="serve the local fake Split Admin API")
    add_sandbox_arguments(sandbox)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("analytics-assets")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _quiet_library_warnings() -> None:
    """Dagster's preview/supersession notices are for developers of this project, not users."""
    import dagster

    for category in (dagster.PreviewWarning, dagster.BetaWarning, dagster.SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # no command: say what there is, as `--help` does
        parser.print_help()
        return 0
    _quiet_library_warnings()
    try:
        if args.command == "sandbox":
            from analytics_assets.sandbox.cli import run_sandbox

            return run_sandbox(args)
        if args.command == "sync":
            return command_sync(args)
        if args.command == "demo":
            return command_demo(args)
        if args.command == "dev":
            return command_dev(args)
        if args.command == "check-freshness":
            return command_check_freshness()
        if args.command == "query":
            return command_query(args.sql, args.format)
    except SplitSourceError as exc:
        _error_line("error:", str(exc))
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    except Exception as exc:
        from analytics_assets.storage_errors import storage_failure

        sentence = storage_failure(exc, "to the Dagster instance (DAGSTER_HOME)")
        if sentence is None:
            raise  # a bug: its stack trace is what a report needs
        console.print(f"[bold red]error:[/] {sentence}", highlight=False)
        return 1
    return 2


def _split_list(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


class _LiveRequests:
    """A live view of the API requests made by this process.

    On a terminal, one updating line. Elsewhere (a log file, CI, a pipe) a spinner prints
    nothing, so a line with the request count is printed every ``LINE_EVERY_SECONDS``.
    """

    LINE_EVERY_SECONDS = 15.0

    def __init__(self) -> None:
        self.count = 0
        self.last_table = ""
        self._status = console.status("starting", spinner="dots")
        self._interactive = console.is_terminal
        self._next_line = time.monotonic() + self.LINE_EVERY_SECONDS

    def __call__(self, table: str) -> None:
        self.count += 1
        self.last_table = table
        if self._interactive:
            if self.count % 10 == 0 or self.count < 10:
                self._status.update(f"{self.count} API requests (now: {table})")
        elif time.monotonic() >= self._next_line:
            self._next_line = time.monotonic() + self.LINE_EVERY_SECONDS
            _plain_line(f"  ... {self.count} API requests so far (now: {table})", sys.stderr)

    def __enter__(self) -> _LiveRequests:
        from analytics_assets.split_source.stats import add_request_listener

        self._remove = add_request_listener(self)
        if self._interactive:
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._interactive:
            self._status.__exit__(None, None, None)
        self._remove()


def _error_line(label: str, message: str) -> None:
    """An error on stderr: red on a terminal, one unwrapped line elsewhere (logs, CI)."""
    if console.is_terminal:
        console.print(f"[bold red]{label}[/]", escape(message), highlight=False)
    else:
        _plain_line(f"{label} {message}", sys.stderr)


def _plain_line(text: str, stream: TextIO | None = None) -> None:
    """A line as is: rich wraps at 80 columns when the output is not a terminal."""
    stream = stream or sys.stdout
    stream.write(text + "\n")
    stream.flush()


def command_sync(args: argparse.Namespace) -> int:
    from analytics_assets.dagster_layer.sync import (
        SyncOptions,
        check_configuration,
        check_selection,
    )

    options = SyncOptions(
        tables=_split_list(args.select),
        workspaces=tuple(args.workspace) if args.workspace else None,
        environments=tuple(args.environment) if args.environment else None,
        build_models=not getattr(args, "skip_models", False),
    )
    # Bad settings and unknown names fail here, in seconds, before any run starts.
    check_configuration()
    from analytics_assets.dagster_layer.instance import get_instance

    # One instance for the whole sync (the stop handler opens its own: it runs on the main
    # thread while the sync's thread may be using this one).
    instance = get_instance()
    try:
        check_selection(options, instance)
        return _sync_and_report(options, instance)
    finally:
        instance.dispose()


def _sync_and_report(options: SyncOptions, instance: DagsterInstance) -> int:
    from analytics_assets.dagster_layer.instance import get_instance
    from analytics_assets.dagster_layer.scoped_load import NOT_ATTEMPTED
    from analytics_assets.dagster_layer.stopping import (
        StoppableSync,
        SyncStopped,
        run_exit_handlers,
    )
    from analytics_assets.dagster_layer.sync import (
        SyncFailed,
        current_row_counts,
        run_sync,
        unfinished_sync_runs,
    )
    from analytics_assets.definitions import build_definitions
    from analytics_assets.split_source import TABLES

    home = Path(instance.root_directory)
    stoppable = StoppableSync(
        get_instance, lambda: unfinished_sync_runs(home), exit_on_further_signal=True
    )

    def progress(message: str) -> None:
        # One line each, never wrapped: a path or a run id stays whole for copying, piped too.
        console.print(f"  {message}", markup=False, highlight=False, soft_wrap=True)

    try:
        with _LiveRequests():
            report = stoppable.run(
                lambda: run_sync(build_definitions(), options, progress, instance)
            )
    except SyncFailed as exc:
        # soft_wrap: the message stays one line for the terminal to wrap (and to copy whole)
        console.print(f"[bold red]sync failed:[/] {exc}", highlight=False, soft_wrap=True)
        for scope in exc.report.failed_scopes if exc.report else []:
            state = "not attempted" if scope.error == NOT_ATTEMPTED else "failed"
            console.print(f"  {state}: {scope.label}", highlight=False)
        return 1
    except SyncStopped as stopped:
        console.print(f"[bold yellow]stopped:[/] {stopped}", highlight=False)
        if stopped.ended_by_itself:
            return stopped.exit_code  # nothing is left running: exit as usual (demo's cleanup)
        # Something the stop could not interrupt still holds a thread, and a normal exit
        # would wait for it: exit at once, after the exit handlers (bounded).
        run_exit_handlers()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(stopped.exit_code)
    counts = current_row_counts([t for t in TABLES if t in report.tables])
    table = Table(title="analytics-assets sync", show_lines=False)
    for column in ("table", "rows now", "loaded", "partitions", "requests"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name in TABLES:
        if name not in report.tables:
            continue
        summary = report.tables[name]
        table.add_row(
            name,
            str(counts.get(name, "?")),
            str(summary.rows_loaded),
            str(summary.partitions or "-"),
            str(summary.requests),
        )
    out.print(table)
    _plain_line(
        f"{len(report.runs)} Dagster runs, {report.requests} API requests, {report.retries}"
        f" retries, {report.rate_limited} rate-limited (429), {report.seconds:.1f}s"
        f" ({report.rate_limit_wait_seconds:.1f}s of it waiting for rate limits)"
    )
    return 0


def _sandbox_health(port: int) -> bool:
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).ok
    except requests.RequestException:
        return False


def _sandbox_base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/internal/api"


def _start_sandbox(size: str, port: int):  # type: ignore[no-untyped-def]
    """A sandbox on the port the Dagster resource expects without a key (reused if up)."""
    from analytics_assets.sandbox.process import SandboxProcess

    if _sandbox_health(port):
        console.print(f"Using the sandbox already serving on port {port}.")
        return None
    sandbox = SandboxProcess(size=size, port=port)
    sandbox.start()
    console.print(f"Sandbox Split Admin API ({size}) at {sandbox.base_url}")
    return sandbox


def command_demo(args: argparse.Namespace) -> int:
    if os.environ.get("SPLIT_API_KEY"):
        console.print(
            "[yellow]SPLIT_API_KEY is set; the demo ignores it and uses the local sandbox.[/]"
        )
        os.environ.pop("SPLIT_API_KEY")
    os.environ["SPLIT_API_BASE_URL"] = _sandbox_base_url(args.port)
    sandbox = _start_sandbox(args.size, args.port)
    try:
        code = command_sync(argparse.Namespace(select=None, workspace=None, environment=None))
    finally:
        if sandbox is not None:
            sandbox.stop()
    if code == 0:
        from analytics_assets.warehouse import WarehouseSettings

        _plain_line(
            f"\nLoaded into {WarehouseSettings.from_environment().describe()}.\n"
            "Open the Dagster UI on this result:  .venv/bin/analytics-assets dev   (then browse"
            " http://127.0.0.1:3000)\n"
            "Query it:  .venv/bin/analytics-assets query"
            ' "SELECT name, killed FROM feature_flag_definitions LIMIT 5"'
        )
    return code


def command_dev(args: argparse.Namespace) -> int:
    from analytics_assets.dagster_layer.instance import get_instance

    # Create the instance storage before the webserver and daemon processes open it.
    get_instance().dispose()
    home = Path(os.environ["DAGSTER_HOME"])
    sandbox = None
    if not os.environ.get("SPLIT_API_KEY"):
        sandbox = _start_sandbox(args.sandbox_size, SANDBOX_PORT)
        os.environ.setdefault("SPLIT_API_BASE_URL", _sandbox_base_url(SANDBOX_PORT))
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    console.print(f"Dagster UI: http://{args.host}:{args.port}  (instance: {home})")
    process = subprocess.Popen(command, cwd=PROJECT_ROOT)
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        process.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        while process.poll() is None:
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        if sandbox is not None:
            sandbox.stop()
    return 0 if stopping.is_set() else process.returncode


def command_query(sql: str, output_format: str = "table") -> int:
    """Run read-only SQL in the warehouse dataset and print it in ``output_format``."""
    from analytics_assets.query import WRITERS, QueryFailed, run_query, write_plain_table
    from analytics_assets.warehouse import WarehouseSettings

    try:
        result = run_query(sql, WarehouseSettings.from_environment())
    except QueryFailed as exc:
        _error_line("query failed:", str(exc))
        return 1
    if output_format in WRITERS:
        WRITERS[output_format](result, sys.stdout)
    elif out.is_terminal:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table, highlight=False)
    else:
        write_plain_table(result, sys.stdout)
    sys.stdout.flush()
    count = len(result.rows)
    _plain_line(f"{count} row{'s' if count != 1 else ''}", sys.stderr)
    return 0


def command_check_freshness() -> int:
    from dagster import AssetCheckEvaluation, DagsterEventType

    from analytics_assets.dagster_layer.instance import get_instance
    from analytics_assets.dagster_layer.jobs import freshness_job
    from analytics_assets.dagster_layer.runs import execute_job_run
    from analytics_assets.definitions import build_definitions

    instance = get_instance()
    result = execute_job_run(
        build_definitions(),
        instance,
        freshness_job.name,
        tags={},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    table = Table(title="freshness checks")
    table.add_column("asset")
    table.add_column("check")
    table.add_column("result")
    failed = 0
    for event in result.all_events:
        if event.event_type != DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation: AssetCheckEvaluation = event.event_specific_data  # type: ignore[assignment]
        if not evaluation.passed:
            failed += 1
        table.add_row(
            evaluation.asset_key.to_user_string(),
            evaluation.check_name,
            "[green]pass[/]" if evaluation.passed else "[red]STALE[/]",
        )
    out.print(table)
    if not result.success or failed:
        console.print(f"[red]{failed} asset(s) are stale.[/] Run `analytics-assets sync`.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
