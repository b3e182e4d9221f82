"""Run one Split job for some partitions through ``dagster.execute_job`` and print the outcome.

The Postgres tests start this module in several processes at once, the way a run launcher
starts one process per run: each process loads the code location
(``analytics_assets.definitions``) from the environment it was given, opens the instance from
``DAGSTER_HOME`` and executes the job with the multiprocess executor, so the dlt step runs in a
subprocess of its own, as in a deployment.

    python -m analytics_assets_tests.postgres.partition_run JOB [PARTITION] [--range START END]

JOB is a job of the code location, or ``<job>_loads_only`` for its assets without the checks.

It prints one JSON line: ``{"run_id": ..., "success": ..., "job": ..., "partition": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
LOADS_ONLY_SUFFIX = "_loads_only"


def load_job(job_name: str):  # type: ignore[no-untyped-def]
    """The job as the code location defines it (called again in every step process).

    ``<job>_loads_only`` is the same job without its asset checks: the same assets, resources,
    partitions and pool, one step per run (each check is a step, and so a process, of its own).
    """
    warnings.filterwarnings("ignore")
    from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor

    from analytics_assets.definitions import build_definitions

    # The code location runs steps in-process by default; a deployment may choose the
    # multiprocess executor, and the pools must hold there too.
    defs = build_definitions(executor=multiprocess_executor)
    if not job_name.endswith(LOADS_ONLY_SUFFIX):
        return defs.resolve_job_def(job_name)
    base = defs.resolve_job_def(job_name.removesuffix(LOADS_ONLY_SUFFIX))
    loads = define_asset_job(
        job_name,
        selection=AssetSelection.assets(*base.asset_layer.executable_asset_keys).without_checks(),
        partitions_def=base.partitions_def,
    )
    return Definitions.merge(defs, Definitions(jobs=[loads])).resolve_job_def(job_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("job")
    parser.add_argument("partition", nargs="?")
    parser.add_argument("--range", nargs=2, metavar=("START", "END"))
    parser.add_argument("--max-concurrent", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from dagster import DagsterInstance, build_reconstructable_job, execute_job

    job = build_reconstructable_job(
        __name__ if __name__ != "__main__" else "analytics_assets_tests.postgres.partition_run",
        "load_job",
        reconstructable_args=(args.job,),
        reconstructor_working_directory=os.getcwd(),
    )
    tags = {"split/launched_by": "postgres tests"}
    if args.partition:
        tags["dagster/partition"] = args.partition
    if args.range:
        tags[RANGE_START], tags[RANGE_END] = args.range
    run_config = {
        "execution": {"config": {"max_concurrent": args.max_concurrent}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    with DagsterInstance.get() as instance:
        result = execute_job(
            job,
            instance=instance,
            run_config=run_config,
            tags=tags,
        )
        print(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "success": result.success,
                    "job": args.job,
                    "partition": args.partition or args.range,
                }
            ),
            flush=True,
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
