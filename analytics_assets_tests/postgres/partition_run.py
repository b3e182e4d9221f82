"""Run one Split job for some partitions through ``dagster.execute_job`` and print the outcome.

The Postgres tests start this module in several processes at once, the way a run launcher
starts one process per run: each process loads the code location
(``analytics_assets.definitions``) from the environment it was given, opens the instance from
``DAGSTER_HOME`` and executes the job with the code location's executor (in-process: the run's
steps run in the run's own process, as in a deployment).

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
    """The job as the code location defines it (``execute_job`` reconstructs it by name).

    ``<job>_loads_only`` is the same job without its asset checks: the same assets, resources,
    partitions and pool, one step per run (each check is a step of its own).
    """
    warnings.filterwarnings("ignore")
    from dagster import AssetSelection, Definitions, define_asset_job

    from analytics_assets.definitions import build_definitions

    defs = build_definitions()
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
