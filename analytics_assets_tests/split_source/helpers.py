"""Running the source with plain dlt (no Dagster) into a test DuckDB file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt

from analytics_assets.split_source import RequestStats, SplitSettings, SyncScope, split_source
from analytics_assets.warehouse import WarehouseSettings


def run_source(
    base_url: str,
    duckdb_path: Path,
    *,
    scope: SyncScope | None = None,
    api_key: str = "test-key",
    **settings: Any,
) -> RequestStats:
    """One plain dlt run of the whole source (or a scope); returns its request counters."""
    stats = RequestStats()
    options = {"backoff_factor": 0.05, **settings}
    source = split_source(
        SplitSettings(api_key=api_key, base_url=base_url, **options), scope, stats
    )
    pipeline = dlt.pipeline(
        pipeline_name="split_test",
        destination=dlt.destinations.duckdb(str(duckdb_path)),
        dataset_name="split",
        pipelines_dir=str(duckdb_path.parent / "dlt_pipelines"),
    )
    pipeline.run(source)
    return stats


def warehouse_for(duckdb_path: Path) -> WarehouseSettings:
    return WarehouseSettings(duckdb_path=str(duckdb_path))
