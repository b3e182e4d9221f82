"""One contender run in its own process: ``python -m benchmarks.worker SPEC_JSON OUT_JSON``.

Each run gets a fresh interpreter so that its CPU time and peak memory (read by the parent
with ``wait4``) are its own. The worker writes what only it can see to ``OUT_JSON``: the
pipeline's own time and phases, the client's counters, and when requests were made.

Contender ``b`` is our source through plain dlt; contender ``a`` is the original
configuration (see ``benchmarks.original_config``).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")


class RequestClock:
    """Start times of requests, relative to the run's start (thread-safe append)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, *_: Any) -> None:
        with self._lock:
            self.times.append(time.monotonic() - self.started)

    def summary(self) -> dict[str, Any]:
        if not self.times:
            return {}
        times = sorted(self.times)
        per_second = Counter(int(t) for t in times)
        seconds = range(int(times[0]) + 1, int(times[-1]))  # whole seconds only
        steady = [per_second[s] for s in seconds]
        return {
            "first_request_s": round(times[0], 3),
            "last_request_s": round(times[-1], 3),
            "median_requests_per_s": statistics.median(steady) if steady else None,
            "requests_per_second": [per_second[s] for s in range(int(times[-1]) + 1)],
        }


class RssSampler(threading.Thread):
    """Resident memory of this process every 20 ms, to attribute the peak to a phase."""

    INTERVAL = 0.02

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []  # (wall clock, MB)
        self._stop_event = threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 1e6

    def run(self) -> None:
        with open("/proc/self/statm") as statm:
            while not self._stop_event.wait(self.INTERVAL):
                statm.seek(0)
                self.samples.append((time.time(), int(statm.read().split()[1]) * self._page_mb))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peaks_by_phase(self, pipeline: Any) -> dict[str, float]:
        trace = pipeline.last_trace
        peaks: dict[str, float] = {}
        for step in trace.steps if trace else ():
            if step.step in ("extract", "normalize", "load") and step.finished_at:
                start, end = step.started_at.timestamp(), step.finished_at.timestamp()
                inside = [mb for t, mb in self.samples if start <= t <= end]
                if inside:
                    peaks[step.step] = round(max(inside), 1)
        return peaks


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _phases(pipeline: Any) -> dict[str, float]:
    trace = pipeline.last_trace
    phases: dict[str, float] = {}
    for step in trace.steps if trace else ():
        if step.step in ("extract", "normalize", "load") and step.finished_at:
            phases[step.step] = round((step.finished_at - step.started_at).total_seconds(), 3)
    return phases


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Contender (b): ``dlt.pipeline(...).run(split_source(SplitSettings(...), stats=...))``."""
    from analytics_assets.split_source import RequestStats, SplitSettings, split_source
    from analytics_assets.split_source.stats import add_request_listener
    from analytics_assets.warehouse import WarehouseSettings, make_pipeline

    settings = SplitSettings(
        api_key=spec["api_key"],
        base_url=spec["base_url"],
        max_requests_per_second=spec.get("max_requests_per_second"),
        max_concurrent_requests=spec.get("max_concurrent_requests"),  # None: the default
    )
    stats = RequestStats()
    # The project's own destination set-up and load options (warehouse.make_pipeline is
    # dlt.pipeline with the configured DuckDB file; run_options picks the load file format),
    # configured DuckDB file), so a change to it shows up here as it would for users.
    warehouse = WarehouseSettings(duckdb_path=spec["duckdb_path"], dataset="split")
    pipeline = make_pipeline(
        warehouse,
        pipeline_name="bench_ours",
        pipelines_dir=spec["pipelines_dir"],
    )
    source = split_source(settings, stats=stats)
    if spec.get("resources"):
        source = source.with_resources(*spec["resources"])
    clock = RequestClock()
    remove = add_request_listener(clock)
    sampler = RssSampler()
    sampler.start()
    cpu = _cpu_seconds()
    started = time.monotonic()
    clock.started = started
    try:
        pipeline.run(source, **warehouse.run_options())
    finally:
        remove()
        sampler.stop()
    return {
        "run_seconds": round(time.monotonic() - started, 3),
        "run_cpu_seconds": round(_cpu_seconds() - cpu, 3),
        "phases": _phases(pipeline),
        "phase_peak_rss_mb": sampler.peaks_by_phase(pipeline),
        "client": stats.as_dict(),
        "timeline": clock.summary(),
        "terminated": True,
    }


def run_original(spec: dict[str, Any]) -> dict[str, Any]:
    """Contender (a): the original configuration (adapted to run; see original_config)."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from benchmarks.original_config import (
        BudgetAdapter,
        CappedOffsetPaginator,
        PairCollector,
        adapted_config,
        budget_session,
        keys_config,
        original_config,
    )

    pipeline = dlt.pipeline(
        pipeline_name="bench_original",
        destination=dlt.destinations.duckdb(spec["duckdb_path"]),
        dataset_name="original",
        pipelines_dir=spec["pipelines_dir"],
    )
    result: dict[str, Any] = {}
    # As written, before any adaptation: what dlt says about the configuration.
    try:
        rest_api_source(original_config(spec["base_url"], spec["api_key"]))
        result["as_written"] = "accepted"
    except Exception as exc:  # the expected outcome: dlt validates the config first
        lines = str(exc).splitlines()
        reason = next((line for line in lines if "unexpected fields" in line), lines[0])
        result["as_written"] = f"{type(exc).__name__}: {reason.strip()[:300]}"

    adapter = BudgetAdapter(spec["max_requests"], spec["max_seconds"])
    session = budget_session(adapter)
    clock = RequestClock()
    original_send = adapter.send

    def timed_send(request: Any, *args: Any, **kwargs: Any) -> Any:
        clock()
        return original_send(request, *args, **kwargs)

    adapter.send = timed_send  # type: ignore[method-assign]
    pairs = PairCollector()
    only = tuple(spec["resources"]) if spec.get("resources") else None
    stage_one_only = None
    if only:
        stage_one_only = tuple(r for r in only if r != "segments_keys")
        if "segments_keys" in only:
            stage_one_only = tuple(
                dict.fromkeys((*stage_one_only, "workspaces", "environments", "segments"))
            )
    cpu = _cpu_seconds()
    started = time.monotonic()
    clock.started = started
    adapter.started = started
    error = None
    stage_seconds = {}
    try:
        config = adapted_config(
            spec["base_url"],
            spec["api_key"],
            session,
            spec["maximum_offset"],
            pairs,
            stage_one_only,
        )
        pipeline.run(rest_api_source(config))
        stage_seconds["stage1"] = round(time.monotonic() - started, 3)
        phases = {"stage1": _phases(pipeline)}
        if not only or "segments_keys" in only:
            config = keys_config(
                spec["base_url"], spec["api_key"], session, spec["maximum_offset"], pairs.pairs()
            )
            pipeline.run(rest_api_source(config))
            phases["stage2"] = _phases(pipeline)
            stage_seconds["stage2"] = round(time.monotonic() - started - stage_seconds["stage1"], 3)
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:600]}"
        phases = {}
    cap_hits = sorted(Counter(CappedOffsetPaginator.hits).items())
    result.update(
        {
            "run_seconds": round(time.monotonic() - started, 3),
            "run_cpu_seconds": round(_cpu_seconds() - cpu, 3),
            "stage_seconds": stage_seconds,
            "phases": phases,
            "client": {
                "requests": adapter.sent,
                "by_status": {str(k): v for k, v in sorted(adapter.status_counts.items())},
                "answered_locally_after_budget": adapter.short_circuited,
            },
            "pairs": len(pairs.pairs()),
            "maximum_offset_hits": dict(cap_hits),
            "budget_exhausted": adapter.short_circuited > 0,
            "terminated": not cap_hits and adapter.short_circuited == 0 and error is None,
            "error": error,
            "timeline": clock.summary(),
        }
    )
    return result


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path) as handle:
        spec = json.load(handle)
    if spec.get("extract_workers"):
        os.environ["EXTRACT__WORKERS"] = str(spec["extract_workers"])
    # Every contender's process gets the allocator a sync's process gets (warehouse module).
    from analytics_assets.warehouse import use_system_allocator_for_arrow

    use_system_allocator_for_arrow()
    try:
        result = run_ours(spec) if spec["contender"] == "b" else run_original(spec)
        result.setdefault("error", None)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {str(exc)[:1000]}", "terminated": False}
        traceback.print_exc()
    with open(out_path, "w") as handle:
        json.dump(result, handle)
    return 0 if not result.get("error") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
