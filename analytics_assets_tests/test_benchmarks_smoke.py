"""The benchmark harness in quick mode: it runs end to end and writes a complete results file.

Not a timed test: the assertions are on what the run measured (request counts against the
sandbox's minimal count, rows against its ground truth), never on how long it took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics_assets.split_source.settings import ENDPOINTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_quick_benchmark_writes_complete_results(tmp_path: Path) -> None:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("SPLIT_", "ANALYTICS_"))
    }
    environment["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(tmp_path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1150,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latest.md").read_text().startswith("# Benchmark results")
    machine = results["machine"]
    for field in ("cpu_model", "cpu_cores", "ram_gib", "python", "packages"):
        assert machine[field], field
    assert machine["packages"]["dlt"] and machine["packages"]["dagster"]
    assert set(results["scenarios"]) == {
        "efficiency",
        "saturation",
        "throughput",
        "memory",
        "overhead",
    }

    efficiency = results["scenarios"]["efficiency"]
    assert set(efficiency["contenders"]) == {"a", "b", "c"}
    ours = efficiency["contenders"]["b"]
    # A measured value: every request the sandbox saw, against the fewest a client can make.
    assert ours["requests"] >= efficiency["minimal_requests"] > 0
    assert ours["request_efficiency"] <= 1.02
    assert ours["truth"]["tables_exact"] == ours["truth"]["tables_total"] == len(ENDPOINTS)
    dagster = efficiency["contenders"]["c"]
    assert dagster["truth"]["tables_exact"] == len(ENDPOINTS)
    assert dagster["request_efficiency"] <= 1.02
    original = efficiency["contenders"]["a"]
    assert original["request_efficiency"] > 1.02 and not original["terminated"]
    assert "error_handler" in original["as_written"]

    (saturation_case,) = results["scenarios"]["saturation"]["cases"]  # quick: the first case
    saturation = saturation_case["runs"]
    assert {"b_known", "b_unknown"} <= set(saturation)
    assert all(run["saturation"] > 0 for run in saturation.values())
    # Under a known limit the client never exceeds it: the sandbox refused nothing.
    assert saturation["b_known"]["rate_limited_429"] == 0
    throughput = results["scenarios"]["throughput"]["contenders"]
    assert throughput["b"]["rows_correct"] == results["scenarios"]["throughput"]["truth_keys"]
    assert throughput["b"]["rows_per_cpu_second"] > 0 and throughput["a"]["rows_per_cpu_second"] > 0
    memory = results["scenarios"]["memory"]["runs"]
    assert all(run["row_counts_match"] and run["peak_rss_mb"] > 0 for run in memory.values())
    assert all(
        set(run["phase_peak_rss_mb"]) == {"extract", "normalize", "load"} for run in memory.values()
    )
    assert results["targets"] and all("met" in target for target in results["targets"])
