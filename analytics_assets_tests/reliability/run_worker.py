"""One Dagster run executed in this process's main thread, as a run worker executes it.

``python -m analytics_assets_tests.reliability.run_worker JOB``: the project comes from the
environment (``DAGSTER_HOME``, ``SPLIT_*``, ``ANALYTICS_*``). Dagster's execution takes the
main thread's SIGINT/SIGTERM handlers (SIGINT is what a UI "Terminate" sends to the run's
process, SIGTERM what Kubernetes sends to its pod) and raises its interrupt into the step.
Prints the run id once the run exists, and its final status at the end.
"""

from __future__ import annotations

import sys

from analytics_assets.dagster_layer.instance import get_instance
from analytics_assets.dagster_layer.sync import QUIET_LOGGERS
from analytics_assets.definitions import build_definitions

WORKER_TAG = "split/launched_by"
WORKER = "reliability run worker"


def main(job_name: str) -> int:
    instance = get_instance()
    result = (
        build_definitions()
        .resolve_job_def(job_name)
        .execute_in_process(
            instance=instance,
            tags={WORKER_TAG: WORKER},
            run_config=QUIET_LOGGERS,
            raise_on_error=False,
        )
    )
    run = instance.get_run_by_id(result.run_id)
    print(result.run_id, run.status.value if run else "missing", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
