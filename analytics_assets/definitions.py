"""The Dagster code location: composes the Split asset graph. Nothing is defined here."""

from dagster import Definitions, ExecutorDefinition, in_process_executor, map_asset_specs
from dagster_dlt import DagsterDltResource

from analytics_assets.dagster_layer.assets import POOL, SPLIT_ASSETS
from analytics_assets.dagster_layer.checks import FRESHNESS_CHECKS, QUALITY_CHECKS
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
    models = build_model_assets(POOL)
    return Definitions(
        assets=[
            *with_cadences(map_asset_specs(without_dlt_runtime_objects, SPLIT_ASSETS)),
            models,
        ],
        asset_checks=[*QUALITY_CHECKS, *FRESHNESS_CHECKS],
        jobs=[*SPLIT_JOBS, models_job(models)],
        sensors=list(SPLIT_SENSORS),
        schedules=list(SPLIT_SCHEDULES),
        executor=executor,
        resources={
            "dlt": DagsterDltResource(),
            "split_api": split_api_from_environment(),
            "warehouse": warehouse_from_environment(),
        },
    )


defs = build_definitions()
