"""Standalone example: the Split source into DuckDB with plain dlt, no Dagster.

    SPLIT_API_KEY=... python -m analytics_assets.split_source.split_pipeline

Against the local sandbox instead of the real API:

    analytics-assets sandbox --size demo &
    SPLIT_API_KEY=sandbox SPLIT_API_BASE_URL=http://127.0.0.1:8765/internal/api \\
        python -m analytics_assets.split_source.split_pipeline
"""

from __future__ import annotations

from analytics_assets.split_source import RequestStats, SplitSettings, split_source
from analytics_assets.warehouse import (
    WarehouseSettings,
    make_pipeline,
    use_system_allocator_for_arrow,
)


def load_split(duckdb_path: str = "data/analytics.duckdb", dataset: str = "split") -> None:
    use_system_allocator_for_arrow()
    stats = RequestStats()
    warehouse = WarehouseSettings(duckdb_path=duckdb_path, dataset=dataset)
    pipeline = make_pipeline(warehouse)
    load_info = pipeline.run(
        split_source(SplitSettings.from_environment(), stats=stats), **warehouse.run_options()
    )
    print(load_info)
    print(f"requests: {stats.requests}, retries: {stats.retries}, 429s: {stats.rate_limited}")
    with pipeline.sql_client() as client:
        for table in ("workspaces", "feature_flags", "segments_keys"):
            count = client.execute_sql(f"SELECT count(*) FROM {table}")[0][0]
            print(f"{table}: {count} rows")


if __name__ == "__main__":
    load_split()
