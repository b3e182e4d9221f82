"""Benchmarks: the three contenders side by side against the local sandbox.

    make bench                                   # the full run (about 10-15 minutes)
    make bench BENCH_ARGS=--quick                # smoke mode, under 2 minutes
    .venv/bin/python -m benchmarks.run --only b,c --scenarios saturation --saturation 10x100

Contenders, each in its own process, one after the other against the same sandbox:

- ``a``: the user's original rest_api configuration through plain dlt (benchmarks.original_config);
- ``b``: our dlt source through plain dlt (``pipeline.run(split_source(...))``);
- ``c``: ``analytics-assets sync`` (the whole asset graph through Dagster).

Scenarios (docs/benchmarks.md explains each and its target):

- ``efficiency``: requests made ÷ the sandbox's minimal request count (small size);
- ``saturation``: wall time ÷ (minimal requests ÷ R) under a rate limit R and latency L,
  with the limit known to the client and unknown (paced from headers only), for each
  ``--saturation`` case (default 20/s x 100 ms; 5/s x 400 ms, nearer Split's real limits,
  where a sync's fixed costs weigh less; and 20/s x 400 ms, which needs 8 requests in flight);
- ``throughput``: ``segments_keys`` only at the first big size, no limit: rows per second
  and CPU seconds per million rows;
- ``memory``: peak RSS of a full sync of ``b`` at each big size;
- ``overhead``: ``c`` ÷ ``b`` wall time at the small size and at the first big size (the
  one with many workspace and environment partitions).

Results go to ``benchmarks/results/latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets.split_source.pacing import InFlightLimit
from benchmarks.compare import TruthStore, compare_original, compare_ours
from benchmarks.machine import machine_details
from benchmarks.report import render_markdown
from benchmarks.ui_path import run_ui_path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK_RESULTS_DIR = RESULTS_DIR / "quick"
DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_START, DOCS_END = "<!-- results:start -->", "<!-- results:end -->"
API_KEY = "benchmark-key"
SCENARIOS = ("efficiency", "saturation", "throughput", "memory", "overhead", "ui")
CONTENDERS = ("a", "b", "c")
LABELS = {
    "a": "(a) original config, plain dlt",
    "b": "(b) our source, plain dlt",
    "c": "(c) analytics-assets sync (Dagster)",
}
TARGETS = {
    "request_efficiency": 1.02,
    "saturation_known": 1.15,
    "saturation_unknown": 1.30,
    "keys_cpu_advantage": 3.0,
    "peak_rss_mb": 400.0,
    "rss_flatness": 1.15,
    "dagster_overhead": 1.2,
    "ui_over_cli": 1.5,
}


@dataclass
class Options:
    only: tuple[str, ...]
    scenarios: tuple[str, ...]
    small: str
    big: tuple[str, ...]
    saturation_cases: tuple[tuple[int, int], ...]  # (R per second, L ms)
    quick: bool
    original_max_offset: int
    original_request_factor: float
    original_seconds: float
    original_throughput_seconds: float
    extract_workers: int | None
    profile: bool
    output: Path
    keep: bool
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- running one contender -------------------------------------------------------------------


def _high_water_rss_mb(pid: int) -> float | None:
    """The process's own peak RSS since it started its program (``VmHWM``), or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _wait_measured(process: subprocess.Popen[Any], timeout: float) -> dict[str, Any]:
    """Wait for ``process``; its CPU time (wait4's rusage) and peak RSS.

    The peak is the child's ``VmHWM``, read while it runs, not wait4's ``ru_maxrss``: Linux
    carries a parent's peak over into a child when it starts a program, so every child of
    this harness would report at least the harness's own peak (650 MB once it holds the
    `large` ground truth).
    """
    deadline = time.monotonic() + timeout
    peak: float | None = None
    while True:
        # Read before reaping: once wait4 has collected the child, its /proc entry is gone.
        current = _high_water_rss_mb(process.pid)
        if current is not None:
            peak = max(peak or 0.0, current)
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return {
                "returncode": process.returncode,
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                "peak_rss_mb": round(peak, 1) if peak is not None else None,
            }
        if time.monotonic() > deadline:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            return {"returncode": None, "timed_out": True}
        time.sleep(0.05)


def _environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPLIT_", "ANALYTICS_"))}
    env.update(
        {
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "RUNTIME__LOG_LEVEL": "ERROR",
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    env.update(extra or {})
    return env


def run_worker(
    options: Options, name: str, spec: dict[str, Any], timeout: float = 1800
) -> dict[str, Any]:
    """Run contender a or b in ``python -m benchmarks.worker``; its measurements."""
    directory = options.workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    spec = {
        "api_key": API_KEY,
        "duckdb_path": str(directory / "warehouse.duckdb"),
        "pipelines_dir": str(directory / "pipelines"),
        "extract_workers": options.extract_workers,
        **spec,
    }
    spec_path, out_path = directory / "spec.json", directory / "result.json"
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(out_path)]
    if options.profile and spec.get("profile"):
        command = _py_spy(directory, command)
    with open(directory / "stderr.log", "wb") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(
            command, cwd=ROOT, env=_environment(), stdout=stderr, stderr=stderr
        )
        measured = _wait_measured(process, timeout)
        measured["process_wall_seconds"] = round(time.monotonic() - started, 3)
    result = json.loads(out_path.read_text()) if out_path.exists() else {}
    if measured.get("returncode") != 0 and not result.get("error"):
        result["error"] = f"worker exited with {measured.get('returncode')}: " + _tail(
            directory / "stderr.log"
        )
    result.update(measured)
    if command[0] != sys.executable:
        # Under py-spy, wait4 reports the profiler's own memory, not the worker's.
        result.pop("peak_rss_mb", None)
        result["profiled"] = True
    result["duckdb_path"] = spec["duckdb_path"]
    return result


def _py_spy(directory: Path, command: list[str]) -> list[str]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not spy:
        log("py-spy not installed (pip install py-spy); running without a profile")
        return command
    profile = str(directory / "profile.txt")
    return [spy, "record", "--nonblocking", "-f", "raw", "-r", "50", "-o", profile, "--", *command]


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])[-1500:]
    except OSError:
        return ""


SYNC_SUMMARY = re.compile(
    r"(\d+) Dagster runs, (\d+) API requests, (\d+) retries, (\d+) rate-limited \(429\), ([\d.]+)s"
)


def run_dagster(
    options: Options,
    name: str,
    base_url: str,
    rate: int | None = None,
    select: Sequence[str] | None = None,
    timeout: float = 1800,
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Contender (c): ``analytics-assets sync`` in a fresh project directory and instance."""
    directory = options.workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        "SPLIT_API_KEY": API_KEY,
        "SPLIT_API_BASE_URL": base_url,
        "ANALYTICS_DUCKDB_PATH": str(directory / "warehouse.duckdb"),
        "DAGSTER_HOME": str(directory / "dagster_home"),
    }
    if rate:
        env["SPLIT_MAX_REQUESTS_PER_SECOND"] = str(rate)
    if options.extract_workers:
        env["EXTRACT__WORKERS"] = str(options.extract_workers)
    command = [str(Path(sys.executable).parent / "analytics-assets"), "sync"]
    if select:
        command += ["--select", ",".join(select)]
    command += list(extra_args)
    with (
        open(directory / "stdout.log", "wb") as stdout,
        open(directory / "stderr.log", "wb") as stderr,
    ):
        started = time.monotonic()
        process = subprocess.Popen(
            command, cwd=directory, env=_environment(env), stdout=stdout, stderr=stderr
        )
        measured = _wait_measured(process, timeout)
        measured["process_wall_seconds"] = round(time.monotonic() - started, 3)
    output = (directory / "stdout.log").read_text(errors="replace")
    result: dict[str, Any] = {**measured, "duckdb_path": env["ANALYTICS_DUCKDB_PATH"]}
    match = SYNC_SUMMARY.search(output.replace("\n", " "))
    if match:
        runs, requests, retries, limited, seconds = match.groups()
        result.update(
            dagster_runs=int(runs),
            client={
                "requests": int(requests),
                "retries": int(retries),
                "rate_limited": int(limited),
            },
            run_seconds=float(seconds),
        )
    result["terminated"] = measured.get("returncode") == 0
    result["error"] = None if measured.get("returncode") == 0 else _tail(directory / "stderr.log")
    return result


def with_sandbox_counters(
    sandbox: SandboxProcess,
    minimal: int,
    run: Callable[..., dict[str, Any]],
    *args: Any,
    **kwargs: Any,
) -> dict[str, Any]:
    """Reset the sandbox's counters, run a contender, attach what the sandbox saw."""
    time.sleep(1.1)  # let the rate limiter's one-second window empty between contenders
    sandbox.reset_stats()
    result = run(*args, **kwargs)
    stats = sandbox.stats()
    result["requests"] = stats["requests_total"]
    result["rate_limited_429"] = stats["rate_limited"]
    result["in_flight_max"] = stats["in_flight_max"]
    result["requests_by_endpoint"] = {
        endpoint: info["by_status"] for endpoint, info in stats["by_endpoint"].items()
    }
    result["request_efficiency"] = round(stats["requests_total"] / minimal, 4) if minimal else None
    return result


def _table_summary(distances: list[Any]) -> dict[str, Any]:
    tables = [d.as_dict() for d in distances]
    return {
        "tables": tables,
        "tables_exact": sum(1 for d in distances if d.exact),
        "tables_total": len(distances),
        "rows_missing": sum(d.missing for d in distances),
        "rows_duplicated": sum(d.duplicates for d in distances),
        "rows_unexpected": sum(d.unexpected for d in distances),
    }


# --- scenarios -------------------------------------------------------------------------------


def _truth_counts(sandbox: SandboxProcess) -> tuple[int, dict[str, Any], dict[str, int]]:
    summary = sandbox.ground_truth(rows=False)
    minimal = summary["minimal_requests"]
    return (
        minimal["total"],
        minimal["by_endpoint"],
        {t: v["count"] for t, v in summary["tables"].items()},
    )


def _original_spec(options: Options, base_url: str, minimal: int, seconds: float) -> dict:
    return {
        "contender": "a",
        "base_url": base_url,
        "maximum_offset": options.original_max_offset,
        "max_requests": int(max(minimal, 1) * options.original_request_factor),
        "max_seconds": seconds,
    }


def scenario_efficiency(options: Options) -> dict[str, Any]:
    size = options.small
    log(f"efficiency: size {size}, no rate limit, no added latency")
    with SandboxProcess(size=size, api_key=API_KEY) as sandbox:
        minimal, by_endpoint, counts = _truth_counts(sandbox)
        truth = TruthStore(sandbox, options.workdir / f"truth-{size}.duckdb")
        tables = list(counts)
        contenders: dict[str, Any] = {}
        for contender in options.only:
            log(f"  {LABELS[contender]}")
            name = f"efficiency-{contender}"
            if contender == "a":
                spec = _original_spec(options, sandbox.base_url, minimal, options.original_seconds)
                result = with_sandbox_counters(sandbox, minimal, run_worker, options, name, spec)
            elif contender == "b":
                spec = {"contender": "b", "base_url": sandbox.base_url}
                result = with_sandbox_counters(sandbox, minimal, run_worker, options, name, spec)
            else:
                result = with_sandbox_counters(
                    sandbox, minimal, run_dagster, options, name, sandbox.base_url
                )
            result["label"] = LABELS[contender]
            if Path(result["duckdb_path"]).exists():
                compare = compare_original if contender == "a" else compare_ours
                result["truth"] = _table_summary(
                    compare(Path(result["duckdb_path"]), truth, tables)
                )
            contenders[contender] = result
            log(f"    {_short(result)}")
    return {
        "size": size,
        "minimal_requests": minimal,
        "minimal_requests_by_endpoint": by_endpoint,
        "truth_rows": counts,
        "contenders": contenders,
    }


def scenario_ui(options: Options) -> dict[str, Any]:
    """The UI path ("Materialize all" on the organisation group, then the partition sensors'
    runs) against ``sync --skip-models``, the same loads from the CLI; see ``ui_path``."""
    size = options.small
    log(f"ui: size {size}, no rate limit; dagster dev against sync --skip-models")
    with SandboxProcess(size=size, api_key=API_KEY) as sandbox:
        minimal, _, counts = _truth_counts(sandbox)
        truth = TruthStore(sandbox, options.workdir / f"truth-ui-{size}.duckdb")
        log("  analytics-assets sync --skip-models")
        cli = with_sandbox_counters(
            sandbox,
            minimal,
            run_dagster,
            options,
            "ui-cli",
            sandbox.base_url,
            extra_args=["--skip-models"],
        )
        log(f"    {_short(cli)}")
        directory = options.workdir / "ui-dagster-dev"
        directory.mkdir(parents=True, exist_ok=True)
        env = _environment(
            {
                "SPLIT_API_KEY": API_KEY,
                "SPLIT_API_BASE_URL": sandbox.base_url,
                "ANALYTICS_DUCKDB_PATH": str(directory / "warehouse.duckdb"),
            }
        )
        log("  dagster dev: Materialize all on split_organisation, then the sensors' runs")
        ui = with_sandbox_counters(sandbox, minimal, run_ui_path, directory, env)
        log(f"    {ui.get('seconds')} s, {len(ui.get('runs') or [])} runs, error {ui.get('error')}")
        for result in (cli, ui):
            if result.get("duckdb_path") and Path(result["duckdb_path"]).exists():
                result["truth"] = _table_summary(
                    compare_ours(Path(result["duckdb_path"]), truth, list(counts))
                )
    cli_seconds = cli.get("process_wall_seconds")
    ratio = (
        round(ui["seconds"] / cli_seconds, 3)
        if ui.get("seconds") and cli_seconds and not ui.get("error") and not cli.get("error")
        else None
    )
    return {"size": size, "cli": cli, "ui": ui, "ui_over_cli": ratio}


def scenario_saturation(options: Options) -> dict[str, Any]:
    return {
        "cases": [
            _saturation_case(options, rate, latency, first=index == 0)
            for index, (rate, latency) in enumerate(options.saturation_cases)
        ]
    }


def _saturation_case(options: Options, rate: int, latency: int, first: bool) -> dict[str, Any]:
    size = options.small
    log(f"saturation: size {size}, rate limit {rate}/s, latency {latency} ms")
    runs: dict[str, Any] = {}
    with SandboxProcess(size=size, api_key=API_KEY, rate_limit=rate, latency_ms=latency) as sandbox:
        minimal, _, _ = _truth_counts(sandbox)
        ideal = minimal / rate
        plan: list[tuple[str, str, bool]] = []
        if "b" in options.only:
            plan += [("b", "known", True), ("b", "unknown", False)]
        # Quick mode keeps only (b): (c) adds a fixed start-up cost, (a) cannot finish anyway
        # (one case shows that; its time budget would only be spent again).
        if "c" in options.only and not options.quick:
            plan += [("c", "known", True)]
        if "a" in options.only and not options.quick and first:
            plan += [("a", "unknown", False)]
        for contender, case, known in plan:
            key = f"{contender}_{case}"
            log(f"  {LABELS[contender]}, limit {case}")
            name = f"saturation-{rate}x{latency}-{key}"
            if contender == "b":
                spec = {
                    "contender": "b",
                    "base_url": sandbox.base_url,
                    "max_requests_per_second": rate if known else None,
                }
                result = with_sandbox_counters(sandbox, minimal, run_worker, options, name, spec)
            elif contender == "c":
                result = with_sandbox_counters(
                    sandbox,
                    minimal,
                    run_dagster,
                    options,
                    name,
                    sandbox.base_url,
                    rate if known else None,
                )
            else:
                spec = _original_spec(options, sandbox.base_url, minimal, 45.0)
                result = with_sandbox_counters(sandbox, minimal, run_worker, options, name, spec)
            result["label"] = LABELS[contender]
            result["limit_known"] = known
            wall = result.get("process_wall_seconds")
            run_seconds = result.get("run_seconds")
            result["saturation"] = round(wall / ideal, 3) if wall else None
            result["saturation_run_only"] = round(run_seconds / ideal, 3) if run_seconds else None
            timeline = result.get("timeline") or {}
            if timeline.get("last_request_s") is not None:
                result["saturation_requests_only"] = round(timeline["last_request_s"] / ideal, 3)
            if contender == "a" and wall:
                # (a) cannot finish under the limit within any sensible budget: its rate here
                # and its request count from the efficiency scenario give its projected time.
                result["achieved_requests_per_second"] = round(
                    result["requests"] / max(run_seconds or wall, 1e-9), 2
                )
            runs[key] = result
            log(f"    {_short(result)}; saturation {result['saturation']}")
    return {
        "size": size,
        "rate_limit_per_second": rate,
        "latency_ms": latency,
        "minimal_requests": minimal,
        "ideal_seconds": round(ideal, 3),
        "rate_x_latency": round(rate * latency / 1000, 2),
        "runs": runs,
    }


def scenario_throughput(options: Options) -> dict[str, Any]:
    size = options.big[0]
    log(f"throughput: segments_keys only at size {size}, no rate limit")
    contenders: dict[str, Any] = {}
    with SandboxProcess(size=size, api_key=API_KEY) as sandbox:
        minimal, by_endpoint, counts = _truth_counts(sandbox)
        truth = TruthStore(sandbox, options.workdir / f"truth-{size}.duckdb")
        for contender in [c for c in ("b", "a") if c in options.only]:
            log(f"  {LABELS[contender]}")
            name = f"throughput-{contender}"
            if contender == "b":
                spec = {
                    "contender": "b",
                    "base_url": sandbox.base_url,
                    "resources": ["segments_keys"],
                    "profile": True,
                }
            else:
                spec = _original_spec(
                    options, sandbox.base_url, minimal, options.original_throughput_seconds
                )
                spec["resources"] = ["segments_keys"]
                spec["profile"] = True
            result = with_sandbox_counters(sandbox, minimal, run_worker, options, name, spec)
            result["label"] = LABELS[contender]
            if Path(result["duckdb_path"]).exists():
                compare = compare_original if contender == "a" else compare_ours
                (keys,) = compare(Path(result["duckdb_path"]), truth, ["segments_keys"])
                result["truth"] = _table_summary([keys])
                rows = keys.loaded_rows
                correct = rows - keys.duplicates - keys.unexpected
                cpu = result.get("run_cpu_seconds") or result.get("cpu_seconds")
                seconds = result.get("run_seconds") or result.get("process_wall_seconds")
                result["rows_loaded"] = rows
                result["rows_correct"] = correct
                result["rows_per_second"] = round(rows / seconds, 1) if seconds else None
                result["cpu_seconds_per_million_rows"] = (
                    round(cpu / rows * 1e6, 2) if rows else None
                )
                result["rows_per_cpu_second"] = round(rows / cpu, 1) if cpu else None
                result["correct_rows_per_cpu_second"] = round(correct / cpu, 1) if cpu else None
            profile = options.workdir / name / "profile.txt"
            if profile.exists():
                result["profile_top"] = top_functions(profile)
            contenders[contender] = result
            log(f"    {_short(result)}; {result.get('rows_per_cpu_second')} rows per CPU second")
    advantage = None
    a, b = contenders.get("a", {}), contenders.get("b", {})
    if a.get("rows_per_cpu_second") and b.get("rows_per_cpu_second"):
        advantage = round(b["rows_per_cpu_second"] / a["rows_per_cpu_second"], 2)
    correct_advantage = None
    if a.get("correct_rows_per_cpu_second") and b.get("correct_rows_per_cpu_second"):
        correct_advantage = round(
            b["correct_rows_per_cpu_second"] / a["correct_rows_per_cpu_second"], 2
        )
    return {
        "size": size,
        "truth_keys": counts["segments_keys"],
        "minimal_requests_segments_keys": by_endpoint["segments_keys"],
        "contenders": contenders,
        "b_over_a_rows_per_cpu_second": advantage,
        "b_over_a_correct_rows_per_cpu_second": correct_advantage,
    }


def scenario_memory(options: Options, overhead_runs: dict[str, Any]) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for index, size in enumerate(options.big):
        log(f"memory: full sync of (b) at size {size}")
        with SandboxProcess(size=size, api_key=API_KEY) as sandbox:
            minimal, _, counts = _truth_counts(sandbox)
            spec = {"contender": "b", "base_url": sandbox.base_url}
            result = with_sandbox_counters(
                sandbox, minimal, run_worker, options, f"memory-b-{size}", spec
            )
            result["label"] = LABELS["b"]
            result["truth_rows"] = counts
            result["loaded_rows"] = _row_counts(Path(result["duckdb_path"]), "split", counts)
            result["row_counts_match"] = result["loaded_rows"] == counts
            result["sandbox_peak_rss_mb"] = round(sandbox.peak_rss_bytes() / 2**20, 1)
            runs[size] = result
            log(f"    {_short(result)}; peak RSS {result.get('peak_rss_mb')} MB")
            wants_overhead = "c" in options.only and "overhead" in options.scenarios
            if index == 0 and wants_overhead and not options.quick:
                log(f"overhead: (c) full sync at size {size} (many partitions)")
                c_result = with_sandbox_counters(
                    sandbox,
                    minimal,
                    run_dagster,
                    options,
                    f"overhead-c-{size}",
                    sandbox.base_url,
                )
                c_result["label"] = LABELS["c"]
                c_result["loaded_rows"] = _row_counts(
                    Path(c_result["duckdb_path"]), "split", counts
                )
                c_result["row_counts_match"] = c_result["loaded_rows"] == counts
                overhead_runs[size] = {"b": result, "c": c_result}
                log(f"    {_short(c_result)}")
    sizes = list(runs)
    flatness = None
    if len(sizes) >= 2 and all(runs[s].get("peak_rss_mb") for s in sizes):
        flatness = round(runs[sizes[-1]]["peak_rss_mb"] / runs[sizes[0]]["peak_rss_mb"], 3)
    return {"runs": runs, "rss_growth_largest_over_smallest": flatness}


def _row_counts(path: Path, dataset: str, tables: dict[str, int]) -> dict[str, int | None]:
    import duckdb

    from analytics_assets.split_source import ENDPOINTS_BY_TABLE

    counts: dict[str, int | None] = {}
    if not path.exists():
        return counts
    with duckdb.connect(str(path), read_only=True) as connection:
        for table in tables:
            where = " WHERE _dlt_valid_to IS NULL" if ENDPOINTS_BY_TABLE[table].history else ""
            try:
                counts[table] = connection.execute(
                    f'SELECT count(*) FROM "{dataset}"."{table}"{where}'
                ).fetchone()[0]
            except duckdb.Error:
                counts[table] = None
    return counts


def overhead_summary(efficiency: dict[str, Any] | None, big: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    if efficiency:
        contenders = efficiency["contenders"]
        if "b" in contenders and "c" in contenders:
            rows[efficiency["size"]] = {"b": contenders["b"], "c": contenders["c"]}
    rows.update(big)
    summary = {}
    for size, pair in rows.items():
        b, c = pair["b"], pair["c"]
        entry: dict[str, Any] = {
            "b_process_wall_seconds": b.get("process_wall_seconds"),
            "c_process_wall_seconds": c.get("process_wall_seconds"),
            "b_run_seconds": b.get("run_seconds"),
            "c_run_seconds": c.get("run_seconds"),
            "c_dagster_runs": c.get("dagster_runs"),
            "b_cpu_seconds": b.get("cpu_seconds"),
            "c_cpu_seconds": c.get("cpu_seconds"),
            "b_requests": b.get("requests"),
            "c_requests": c.get("requests"),
        }
        if b.get("process_wall_seconds") and c.get("process_wall_seconds"):
            entry["ratio_process_wall"] = round(
                c["process_wall_seconds"] / b["process_wall_seconds"], 2
            )
        if b.get("run_seconds") and c.get("run_seconds"):
            entry["ratio_run_seconds"] = round(c["run_seconds"] / b["run_seconds"], 2)
        if b.get("cpu_seconds") and c.get("cpu_seconds"):
            entry["ratio_cpu"] = round(c["cpu_seconds"] / b["cpu_seconds"], 2)
        entry["c_peak_rss_mb"] = c.get("peak_rss_mb")
        entry["b_peak_rss_mb"] = b.get("peak_rss_mb")
        summary[size] = entry
    return summary


def top_functions(profile: Path, limit: int = 15) -> list[dict[str, Any]]:
    """py-spy raw output → the functions with the most samples on top of the stack (self)."""
    totals: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    samples = 0
    for line in profile.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [f.split(" (", 1) for f in stack.split(";")]
        names = [
            f"{f[0]} ({f[1].split(':')[0].rsplit('/', 1)[-1]})" if len(f) > 1 else f[0]
            for f in frames
        ]
        totals[names[-1]] = totals.get(names[-1], 0) + n
        for name in set(names):
            inclusive[name] = inclusive.get(name, 0) + n
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:limit]
    return [
        {
            "function": name,
            "self_share": round(n / samples, 3),
            "inclusive_share": round(inclusive[name] / samples, 3),
        }
        for name, n in ranked
    ]


def _short(result: dict[str, Any]) -> str:
    parts = [
        f"wall {result.get('process_wall_seconds')} s",
        f"requests {result.get('requests')}",
        f"efficiency {result.get('request_efficiency')}",
        f"429s {result.get('rate_limited_429')}",
        f"peak RSS {result.get('peak_rss_mb')} MB",
    ]
    if result.get("error"):
        parts.append(f"ERROR {result['error'][:200]}")
    return ", ".join(parts)


# --- targets ---------------------------------------------------------------------------------


def _saturation_targets(case: dict[str, Any], add: Callable[..., None]) -> None:
    rate, latency = case["rate_limit_per_second"], case["latency_ms"]
    for key, limit_name, limit in (
        ("b_known", "saturation_known", "limit known"),
        ("b_unknown", "saturation_unknown", "limit unknown"),
    ):
        run = case["runs"].get(key)
        if run is None:
            continue
        value = run.get("saturation")
        met = value is not None and value <= TARGETS[limit_name]
        target = f"≤ {TARGETS[limit_name]}"
        if limit == "limit known":
            met = met and run.get("rate_limited_429") == 0
            target += " and 0 × 429"
        add(
            f"rate-limit saturation (b), {limit}, R={rate}/s L={latency} ms",
            target,
            value,
            met,
            f"{run.get('rate_limited_429')} × 429; ideal {case['ideal_seconds']} s;"
            f" requests-only {run.get('saturation_requests_only')}",
        )


def evaluate_targets(scenarios: dict[str, Any], options: Options) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []

    def add(name: str, target: str, value: Any, met: bool | None, note: str = "") -> None:
        targets.append({"name": name, "target": target, "value": value, "met": met, "note": note})

    efficiency = scenarios.get("efficiency", {}).get("contenders", {})
    if "b" in efficiency:
        value = efficiency["b"].get("request_efficiency")
        add(
            f"request efficiency (b), {options.small}",
            f"≤ {TARGETS['request_efficiency']}",
            value,
            value is not None and value <= TARGETS["request_efficiency"],
            f"{efficiency['b'].get('requests')} requests, minimal"
            f" {scenarios['efficiency']['minimal_requests']}",
        )
    for saturation_case in scenarios.get("saturation", {}).get("cases", []):
        _saturation_targets(saturation_case, add)
    throughput = scenarios.get("throughput", {})
    if throughput.get("b_over_a_rows_per_cpu_second") is not None:
        value = throughput["b_over_a_rows_per_cpu_second"]
        add(
            f"segments_keys rows per CPU second, (b) ÷ (a), {throughput['size']}",
            f"≥ {TARGETS['keys_cpu_advantage']}",
            value,
            value >= TARGETS["keys_cpu_advantage"],
            f"correct rows only: {throughput.get('b_over_a_correct_rows_per_cpu_second')}",
        )
    memory = scenarios.get("memory", {}).get("runs", {})
    if memory:
        first = next(iter(memory))
        value = memory[first].get("peak_rss_mb")
        add(
            f"peak RSS (b), full sync, {first}",
            f"≤ {TARGETS['peak_rss_mb']:.0f} MB",
            value,
            value is not None and value <= TARGETS["peak_rss_mb"],
            f"{memory[first]['truth_rows'].get('segments_keys')} keys",
        )
        growth = scenarios["memory"].get("rss_growth_largest_over_smallest")
        if growth is not None:
            sizes = list(memory)
            add(
                f"peak RSS flat: {sizes[-1]} ÷ {sizes[0]}",
                f"≤ {TARGETS['rss_flatness']}",
                growth,
                growth <= TARGETS["rss_flatness"],
                f"keys {memory[sizes[0]]['truth_rows'].get('segments_keys')} →"
                f" {memory[sizes[-1]]['truth_rows'].get('segments_keys')}",
            )
    overhead = scenarios.get("overhead", {})
    for size, entry in overhead.items():
        value = entry.get("ratio_process_wall")
        if value is None:
            continue
        add(
            f"Dagster overhead (c) ÷ (b) wall, {size}",
            f"≤ {TARGETS['dagster_overhead']}",
            value,
            value <= TARGETS["dagster_overhead"],
            f"run time only (no interpreter start): {entry.get('ratio_run_seconds')}",
        )
    ui = scenarios.get("ui")
    if ui:
        value = ui.get("ui_over_cli")
        add(
            f"UI path ÷ CLI wall, {ui['size']}",
            f"≤ {TARGETS['ui_over_cli']}",
            value,
            value is not None and value <= TARGETS["ui_over_cli"],
            f"UI {ui['ui'].get('seconds')} s in {len(ui['ui'].get('runs') or [])} runs,"
            f" sync --skip-models {ui['cli'].get('process_wall_seconds')} s"
            + (f"; error: {ui['ui']['error']}" if ui["ui"].get("error") else ""),
        )
    return targets


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark the original config (a), our dlt source (b) and the Dagster"
        " sync (c) side by side against the local sandbox.",
    )
    parser.add_argument("--only", default="a,b,c", help="contenders to run (default a,b,c)")
    parser.add_argument(
        "--scenarios",
        default=None,
        help=f"scenarios to run (default all: {','.join(SCENARIOS)}; --quick leaves out ui,"
        " which starts dagster dev)",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="SMALL,BIG[,BIGGER...]: SMALL for efficiency, saturation and overhead; the BIG ones"
        " for throughput (the first) and memory (each). Default demo,large,xlarge"
        " (--quick: tiny,demo)",
    )
    parser.add_argument(
        "--saturation",
        default="20x100,5x400,20x400",
        help="saturation cases, RxL: rate limit R per second x latency L in ms added by the"
        " sandbox (default 20x100,5x400,20x400; --quick: the first only)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke mode (< 2 minutes): small sizes, short budgets for (a)",
    )
    parser.add_argument(
        "--original-max-offset",
        type=int,
        default=None,
        help="(a)'s maximum_offset per paginated scope (default 5000; --quick 1000)",
    )
    parser.add_argument(
        "--original-request-factor",
        type=float,
        default=30.0,
        help="(a)'s request budget as a multiple of the minimal request count (30)",
    )
    parser.add_argument(
        "--original-seconds",
        type=float,
        default=None,
        help="(a)'s time budget per run (default 240; --quick 20)",
    )
    parser.add_argument(
        "--extract-workers",
        type=int,
        default=None,
        help="dlt's extract worker pool (EXTRACT__WORKERS) for (b) and (c); default: the"
        f" source's, as many as requests may be in flight ({InFlightLimit.CEILING})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record py-spy profiles of the throughput runs (needs `pip install py-spy`)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="results directory (default benchmarks/results; --quick: benchmarks/results/quick)."
        " A full run into the default directory also refreshes docs/benchmarks.md",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    sizes = (args.sizes or ("tiny,demo" if args.quick else "demo,large,xlarge")).split(",")
    if len(sizes) < 2:
        parser.error("--sizes needs a small size and at least one big size, e.g. demo,large")
    try:
        cases = tuple(
            (int(rate), int(latency))
            for rate, latency in (case.split("x") for case in args.saturation.split(","))
        )
    except ValueError:
        parser.error("--saturation: use RxL cases such as 20x100,5x400")
    if not cases or any(rate < 1 or latency < 0 for rate, latency in cases):
        parser.error("--saturation: R must be at least 1 and L at least 0")
    only = tuple(c.strip() for c in args.only.split(",") if c.strip())
    default = [s for s in SCENARIOS if not (args.quick and s == "ui")]
    chosen = (args.scenarios or ",".join(default)).split(",")
    scenarios = tuple(s.strip() for s in chosen if s.strip())
    for name, values, allowed in (
        ("--only", only, CONTENDERS),
        ("--scenarios", scenarios, SCENARIOS),
    ):
        unknown = set(values) - set(allowed)
        if unknown:
            parser.error(f"{name}: unknown {', '.join(sorted(unknown))}; use {','.join(allowed)}")
    return Options(
        only=only,
        scenarios=scenarios,
        small=sizes[0],
        big=tuple(sizes[1:]),
        saturation_cases=cases[:1] if args.quick else cases,
        quick=args.quick,
        original_max_offset=args.original_max_offset or (1000 if args.quick else 5000),
        original_request_factor=args.original_request_factor,
        original_seconds=args.original_seconds or (20.0 if args.quick else 240.0),
        original_throughput_seconds=10.0 if args.quick else 60.0,
        extract_workers=args.extract_workers,
        profile=args.profile,
        output=Path(args.output or (QUICK_RESULTS_DIR if args.quick else RESULTS_DIR)),
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started_at = datetime.now(timezone.utc)
    started = time.monotonic()
    log(f"work directory {options.workdir}")
    results: dict[str, Any] = {
        "schema_version": 1,
        "command": "python -m benchmarks.run "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine_details(),
        "settings": {
            "quick": options.quick,
            "contenders": list(options.only),
            "scenarios": list(options.scenarios),
            "small_size": options.small,
            "big_sizes": list(options.big),
            "saturation_cases": [
                {"rate_limit_per_second": rate, "latency_ms": latency}
                for rate, latency in options.saturation_cases
            ],
            "original_maximum_offset": options.original_max_offset,
            "original_request_budget_factor": options.original_request_factor,
            "original_time_budget_seconds": options.original_seconds,
            "original_throughput_time_budget_seconds": options.original_throughput_seconds,
            "extract_workers": options.extract_workers
            or f"the source's default ({InFlightLimit.CEILING})",
            "labels": {c: LABELS[c] for c in options.only},
        },
        "scenarios": {},
    }
    scenarios = results["scenarios"]
    try:
        if "efficiency" in options.scenarios or "overhead" in options.scenarios:
            scenarios["efficiency"] = scenario_efficiency(options)
        if "saturation" in options.scenarios:
            scenarios["saturation"] = scenario_saturation(options)
        if "throughput" in options.scenarios and ("a" in options.only or "b" in options.only):
            scenarios["throughput"] = scenario_throughput(options)
        big_overhead: dict[str, Any] = {}
        if "memory" in options.scenarios and "b" in options.only:
            scenarios["memory"] = scenario_memory(options, big_overhead)
        if "overhead" in options.scenarios:
            scenarios["overhead"] = overhead_summary(scenarios.get("efficiency"), big_overhead)
        if "ui" in options.scenarios and "c" in options.only:
            scenarios["ui"] = scenario_ui(options)
    finally:
        results["targets"] = evaluate_targets(scenarios, options)
        results["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        results["duration_seconds"] = round(time.monotonic() - started, 1)
        write_results(results, options.output)
        if not options.quick and options.output.resolve() == RESULTS_DIR.resolve():
            update_docs(options.output / "latest.md")
        if not options.keep:
            shutil.rmtree(options.workdir, ignore_errors=True)
    log(f"done in {results['duration_seconds']} s; results in {options.output}")
    for target in results["targets"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[target["met"]]
        log(f"  {mark:6} {target['name']}: {target['value']} (target {target['target']})")
    return 0


def write_results(results: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    _strip_paths(results)
    (output / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (output / "latest.md").write_text(render_markdown(results))


def update_docs(results_md: Path) -> None:
    """Put the latest results into docs/benchmarks.md, between its two markers."""
    if not DOCS.exists():
        return
    text = DOCS.read_text()
    if DOCS_START not in text or DOCS_END not in text:
        return
    body = results_md.read_text().split("\n", 1)[1].strip()  # without the "# ..." title
    body = body.replace("\n## ", "\n### ")
    head, rest = text.split(DOCS_START, 1)
    _, tail = rest.split(DOCS_END, 1)
    DOCS.write_text(f"{head}{DOCS_START}\n\n{body}\n\n{DOCS_END}{tail}")


def _strip_paths(value: Any) -> None:
    """Temporary paths mean nothing in a committed results file."""
    if isinstance(value, dict):
        value.pop("duckdb_path", None)
        for item in value.values():
            _strip_paths(item)
    elif isinstance(value, list):
        for item in value:
            _strip_paths(item)


if __name__ == "__main__":
    sys.exit(main())
