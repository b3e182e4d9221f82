"""The Dagster code location: composes the Split asset graph. Nothing is defined here.

Importing this module does no work: Dagster calls ``defs`` when it loads the code location
(``dagster dev``, ``dagster definitions validate``, a code server), and only then are the
settings read and the graph built.
"""

from dagster import (
    Definitions,
    ExecutorDefinition,
    definitions,
    in_process_executor,
    map_asset_specs,
)
from dagster_dlt import DagsterDltResource

from analytics_assets.dagster_layer.assets import build_split_assets, pool_for
from analytics_assets.dagster_layer.checks import FRESHNESS_CHECKS, build_quality_checks
from analytics_assets.dagster_layer.jobs import SPLIT_JOBS
from analytics_assets.dagster_layer.models import build_model_assets, models_job
from analytics_assets.dagster_layer.policies import with_cadences
from analytics_assets.dagster_layer.resources import (
    split_api_from_environment,
    warehouse_from_environment,
)
from analytics_assets.dagster_layer.schedules import SPLIT_SCHEDULES
from analytics_assets.dagster_layer.sensors import SPLIT_SENSORS
from analytics_assets.dagster_layer.translator import without_dlt_runtime_objects


def build_definitions(executor: ExecutorDefinition = in_process_executor) -> Definitions:
    """The code location, with resources bound to the current environment variables.

    A run is one load step and then its checks, strictly in that order: a process per step
    (the multiprocess executor) would only add an interpreter start, seconds each, to every
    run. A deployment that wants it anyway passes it here.
    """
    warehouse = warehouse_from_environment()
    destination = warehouse.settings()
    models = build_model_assets(pool_for(destination))
    return Definitions(
        assets=[
            *with_cadences(
                map_asset_specs(without_dlt_runtime_objects, build_split_assets(destination))
            ),
            models,
        ],
        asset_checks=[
            *build_quality_checks(destination),
            *FRESHNESS_CHECKS,
        ],
        jobs=[*SPLIT_JOBS, models_job(models)],
        sensors=list(SPLIT_SENSORS),
        schedules=list(SPLIT_SCHEDULES),
        executor=executor,
        resources={
            "dlt": DagsterDltResource(),
            "split_api": split_api_from_environment(),
            "warehouse": warehouse,
        },
    )


@definitions
def defs() -> Definitions:
    return build_definitions()
