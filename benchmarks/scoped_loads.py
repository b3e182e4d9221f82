"""What committing per scope costs: a sync of this tree against a sync of another tree.

    .venv/bin/python -m benchmarks.scoped_loads --baseline-ref <commit> [--size demo]
        [--latency-ms 0] [--rate-limit 0] [--repeats 3]

Both trees sync the same sandbox, in their own processes (``run_sync``, the CLI's code path,
into a fresh instance and DuckDB file each time), one after the other and alternating, so a
busy machine slows both alike. The baseline tree is the given commit's files (``git
archive``), run with this checkout's virtualenv; with the commit before per-scope loads it is
one dlt run per partition range. Reported: the median wall and CPU time of each, and their
ratio (this tree ÷ baseline): the overhead of a load package per scope.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from analytics_assets.sandbox.process import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent

SYNC = """
import json, resource, time
from analytics_assets.dagster_layer.sync import run_sync
from analytics_assets.definitions import build_definitions
started = time.monotonic()
report = run_sync(build_definitions(), progress=lambda _: None)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.monotonic() - started, "requests": report.requests,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def _extract_tree(ref: str, target: Path) -> Path:
    archive = target / "tree.tar"
    with open(archive, "wb") as handle:
        subprocess.run(["git", "archive", ref], cwd=ROOT, stdout=handle, check=True)
    tree = target / "tree"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def _sync(tree: Path, sandbox: SandboxProcess, work: Path) -> dict[str, float]:
    work.mkdir(parents=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SPLIT_", "ANALYTICS_", "DAGSTER"))
    }
    env.update(
        {
            "PYTHONPATH": str(tree),
            "DAGSTER_HOME": str(work / "home"),
            "ANALYTICS_DUCKDB_PATH": str(work / "warehouse.duckdb"),
            "SPLIT_API_BASE_URL": sandbox.base_url,
            "TMPDIR": str(work),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "RUNTIME__LOG_LEVEL": "ERROR",
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", SYNC], cwd=work, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"sync of {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", required=True)
    parser.add_argument("--size", default="demo")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--rate-limit", type=int, default=0, help="sandbox req/s; 0 = none")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scoped-loads-bench-") as scratch:
        base = Path(scratch)
        baseline = _extract_tree(args.baseline_ref, base)
        runs: dict[str, list[dict[str, float]]] = {"this tree": [], "baseline": []}
        with SandboxProcess(
            size=args.size, latency_ms=args.latency_ms or None, rate_limit=args.rate_limit or None
        ) as sandbox:
            for repeat in range(args.repeats):
                for name, tree in (("baseline", baseline), ("this tree", ROOT)):
                    result = _sync(tree, sandbox, base / f"{name.replace(' ', '-')}-{repeat}")
                    runs[name].append(result)
                    print(f"{name} #{repeat}: {result}", flush=True)
        summary = {
            name: {
                "wall_s": statistics.median(r["seconds"] for r in results),
                "cpu_s": statistics.median(r["cpu"] for r in results),
                "requests": results[0]["requests"],
            }
            for name, results in runs.items()
        }
        summary["ratio"] = {
            "wall": summary["this tree"]["wall_s"] / summary["baseline"]["wall_s"],
            "cpu": summary["this tree"]["cpu_s"] / summary["baseline"]["cpu_s"],
        }
        summary["setup"] = {
            "size": args.size,
            "latency_ms": args.latency_ms,
            "rate_limit": args.rate_limit,
            "repeats": args.repeats,
            "baseline": args.baseline_ref,
            "load_avg": os.getloadavg(),
            "at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
