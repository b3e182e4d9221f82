"""The results file as Markdown (benchmarks/results/latest.md, quoted in docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    settings = results["settings"]
    scenarios = results["scenarios"]
    lines = [
        "# Benchmark results",
        "",
        f"`{results['command'].strip()}` — {results['started_at']}, {results['duration_seconds']} s"
        f" in total{' (quick mode)' if settings['quick'] else ''}.",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpu_cores']} cores, {machine['ram_gib']} GiB"
        f" RAM, {machine['os']}, Python {machine['python']}; load average at start"
        f" {machine['load_average_at_start']}. Commit {machine['git_commit']}"
        f"{' (with local changes)' if machine['git_dirty'] else ''}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v) + ".",
        "",
        "Absolute times on a shared 2-core machine are noise; the ratios are measured side by"
        " side in the same run.",
        "",
        "## Targets",
        "",
    ]
    lines += _table(
        ["measure", "target", "value", "met", "note"],
        [
            [
                t["name"],
                t["target"],
                t["value"],
                {True: "**met**", False: "**missed**"}.get(t["met"], "–"),
                t["note"],
            ]
            for t in results["targets"]
        ],
    )
    if "efficiency" in scenarios:
        lines += _efficiency(scenarios["efficiency"])
    for case in scenarios.get("saturation", {}).get("cases", []):
        lines += _saturation(case)
    if "throughput" in scenarios:
        lines += _throughput(scenarios["throughput"])
    if "memory" in scenarios:
        lines += _memory(scenarios["memory"])
    if scenarios.get("overhead"):
        lines += _overhead(scenarios["overhead"])
    if scenarios.get("ui"):
        lines += _ui(scenarios["ui"])
    return "\n".join(lines).rstrip() + "\n"


def _ui(scenario: dict[str, Any]) -> list[str]:
    cli, ui = scenario["cli"], scenario["ui"]
    lines = [
        f"## The UI path — `{scenario['size']}`, no limit",
        "",
        '"Materialize all" on `split_organisation` in `dagster dev` (launched over its GraphQL'
        " API), then the partition sensors' runs, until every partition is loaded; against"
        " `analytics-assets sync --skip-models` (the same loads) on a fresh instance."
        f" UI ÷ CLI: **{_fmt(scenario.get('ui_over_cli'))}**"
        f" (the UI itself took {_fmt(ui.get('ui_start_seconds'))} s to load, not counted).",
        "",
    ]
    lines += _table(
        ["path", "wall s", "requests", "tables exact", "error"],
        [
            [
                name,
                run.get("seconds") or run.get("process_wall_seconds"),
                run.get("requests"),
                f"{run.get('truth', {}).get('tables_exact', '–')}/"
                f"{run.get('truth', {}).get('tables_total', '–')}",
                run.get("error") or "",
            ]
            for name, run in (("sync --skip-models", cli), ("UI", ui))
        ],
    )
    lines += ["The UI path's runs (seconds after the launch):", ""]
    lines += _table(
        ["job", "launched by", "created", "started", "ended", "status"],
        [
            [r["job"], r["launched_by"], r["created"], r["started"], r["ended"], r["status"]]
            for r in ui.get("runs") or []
        ],
    )
    return lines


def _efficiency(scenario: dict[str, Any]) -> list[str]:
    contenders = scenario["contenders"]
    lines = [
        f"## Request efficiency — `{scenario['size']}`, no limit, no added latency",
        "",
        f"Minimal requests (sandbox ground truth): {scenario['minimal_requests']:,}.",
        "",
    ]
    rows = []
    for run in contenders.values():
        truth = run.get("truth", {})
        rows.append(
            [
                run["label"],
                run.get("requests"),
                run.get("request_efficiency"),
                run.get("terminated"),
                run.get("process_wall_seconds"),
                run.get("cpu_seconds"),
                run.get("peak_rss_mb"),
                f"{truth.get('tables_exact', '–')}/{truth.get('tables_total', '–')}",
                truth.get("rows_missing"),
                truth.get("rows_duplicated"),
                truth.get("rows_unexpected"),
            ]
        )
    lines += _table(
        [
            "contender",
            "requests",
            "÷ minimal",
            "terminated on its own",
            "wall s",
            "CPU s",
            "peak RSS MB",
            "tables exact",
            "rows missing",
            "duplicates",
            "unexpected",
        ],
        rows,
    )
    original = contenders.get("a")
    if original:
        lines += [
            f"(a) as written: dlt refuses the configuration — {original.get('as_written')}.",
            "",
            f"(a) adapted: {original.get('pairs')} environment × segment pairs; maximum_offset"
            f" stopped {sum((original.get('maximum_offset_hits') or {}).values())} paginated"
            f" scopes ({', '.join(sorted(original.get('maximum_offset_hits') or {})) or 'none'});"
            f" budget exhausted: {_fmt(original.get('budget_exhausted'))}; HTTP statuses"
            f" {original.get('client', {}).get('by_status')}.",
            "",
        ]
        if original.get("truth"):
            lines += ["Distance of (a)'s tables from the truth (by the natural key it keeps):", ""]
            lines += _table(
                [
                    "table",
                    "key compared",
                    "truth rows",
                    "loaded rows",
                    "missing",
                    "duplicates",
                    "unexpected",
                ],
                [
                    [
                        t["table"],
                        ", ".join(t["key"]),
                        t["truth_rows"],
                        t["loaded_rows"],
                        t["missing"],
                        t["duplicates"],
                        t["unexpected"],
                    ]
                    for t in original["truth"]["tables"]
                ],
            )
    return lines


def _saturation(scenario: dict[str, Any]) -> list[str]:
    lines = [
        f"## Rate-limit saturation — `{scenario['size']}`,"
        f" R = {scenario['rate_limit_per_second']}/s,"
        f" L = {scenario['latency_ms']} ms (R×L = {scenario['rate_x_latency']})",
        "",
        f"Ideal time = minimal requests ÷ R = {scenario['minimal_requests']:,} ÷"
        f" {scenario['rate_limit_per_second']} = {scenario['ideal_seconds']} s. Saturation ="
        " process wall time ÷ ideal; 'requests only' = last request's start ÷ ideal (no"
        " interpreter start, no normalize/load).",
        "",
    ]
    rows = []
    for run in scenario["runs"].values():
        timeline = run.get("timeline") or {}
        rows.append(
            [
                run["label"],
                _limit_case(run),
                run.get("requests"),
                run.get("rate_limited_429"),
                run.get("process_wall_seconds"),
                run.get("saturation"),
                run.get("saturation_requests_only"),
                timeline.get("median_requests_per_s"),
                run.get("in_flight_max"),
                run.get("terminated"),
            ]
        )
    lines += _table(
        [
            "contender",
            "limit",
            "requests",
            "429s",
            "wall s",
            "saturation",
            "requests only",
            "median req/s",
            "max in flight",
            "finished",
        ],
        rows,
    )
    original = scenario["runs"].get("a_unknown")
    if original:
        lines += [
            f"(a) runs one request at a time, so at L = {scenario['latency_ms']} ms it reaches"
            f" {original.get('achieved_requests_per_second')} requests/s before its time budget"
            " ends; it cannot finish (see the efficiency table for how many requests it needs).",
            "",
        ]
    return lines


def _limit_case(run: dict[str, Any]) -> str:
    if run["label"].startswith("(a)"):
        return "not paced (dlt retries 429)"
    return "known" if run.get("limit_known") else "unknown (headers)"


def _throughput(scenario: dict[str, Any]) -> list[str]:
    lines = [
        f"## Throughput — `segments_keys` only, `{scenario['size']}` ({scenario['truth_keys']:,}"
        " keys), no limit",
        "",
    ]
    rows = []
    for run in scenario["contenders"].values():
        truth = (run.get("truth") or {}).get("tables", [{}])[0]
        rows.append(
            [
                run["label"],
                run.get("requests"),
                run.get("run_seconds"),
                run.get("run_cpu_seconds"),
                run.get("rows_loaded"),
                run.get("rows_correct"),
                truth.get("missing"),
                run.get("rows_per_second"),
                run.get("cpu_seconds_per_million_rows"),
                run.get("rows_per_cpu_second"),
                run.get("terminated"),
            ]
        )
    lines += _table(
        [
            "contender",
            "requests",
            "run s",
            "CPU s",
            "rows loaded",
            "correct rows",
            "keys missing",
            "rows/s",
            "CPU s per 1M rows",
            "rows per CPU s",
            "finished",
        ],
        rows,
    )
    lines += [
        f"(b) ÷ (a), rows per CPU second: {_fmt(scenario.get('b_over_a_rows_per_cpu_second'))};"
        " counting only correct rows:"
        f" {_fmt(scenario.get('b_over_a_correct_rows_per_cpu_second'))}.",
        "",
    ]
    for run in scenario["contenders"].values():
        if run.get("profile_top"):
            lines += [f"py-spy profile of {run['label']} (self time, top functions):", ""]
            lines += _table(
                ["function", "self", "inclusive"],
                [
                    [p["function"], f"{p['self_share']:.1%}", f"{p['inclusive_share']:.1%}"]
                    for p in run["profile_top"][:10]
                ],
            )
    return lines


def _memory(scenario: dict[str, Any]) -> list[str]:
    lines = ["## Memory — full sync of (b), no limit", ""]
    rows = []
    for size, run in scenario["runs"].items():
        phases = run.get("phases") or {}
        phase_peaks = run.get("phase_peak_rss_mb") or {}
        rows.append(
            [
                size,
                run["truth_rows"].get("segments_keys"),
                run.get("requests"),
                run.get("request_efficiency"),
                run.get("peak_rss_mb"),
                " / ".join(_fmt(phase_peaks.get(p)) for p in ("extract", "normalize", "load")),
                run.get("process_wall_seconds"),
                " / ".join(_fmt(phases.get(p)) for p in ("extract", "normalize", "load")),
                run.get("row_counts_match"),
                run.get("sandbox_peak_rss_mb"),
            ]
        )
    lines += _table(
        [
            "size",
            "keys",
            "requests",
            "÷ minimal",
            "peak RSS MB",
            "peak MB in extract / normalize / load",
            "wall s",
            "extract / normalize / load s",
            "row counts = truth",
            "sandbox RSS MB",
        ],
        rows,
    )
    lines += [
        "Peak RSS growth, largest ÷ smallest size:"
        f" {_fmt(scenario.get('rss_growth_largest_over_smallest'))}.",
        "",
    ]
    return lines


def _overhead(scenario: dict[str, Any]) -> list[str]:
    lines = ["## Orchestration overhead — (c) ÷ (b), no limit", ""]
    rows = []
    for size, entry in scenario.items():
        rows.append(
            [
                size,
                entry.get("c_dagster_runs"),
                entry.get("b_process_wall_seconds"),
                entry.get("c_process_wall_seconds"),
                entry.get("ratio_process_wall"),
                entry.get("b_run_seconds"),
                entry.get("c_run_seconds"),
                entry.get("ratio_run_seconds"),
                entry.get("ratio_cpu"),
                f"{_fmt(entry.get('b_peak_rss_mb'))} / {_fmt(entry.get('c_peak_rss_mb'))}",
            ]
        )
    lines += _table(
        [
            "size",
            "Dagster runs",
            "(b) wall s",
            "(c) wall s",
            "(c) ÷ (b) wall",
            "(b) run s",
            "(c) sync s",
            "(c) ÷ (b) run",
            "(c) ÷ (b) CPU",
            "peak RSS MB (b) / (c)",
        ],
        rows,
    )
    return lines
