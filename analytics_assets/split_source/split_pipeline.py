"""Standalone example: the Split source into the warehouse with plain dlt, no Dagster.

    SPLIT_API_KEY=... python -m analytics_assets.split_source.split_pipeline

Against the local sandbox instead of the real API:

    analytics-assets sandbox --size demo &
    SPLIT_API_KEY=sandbox SPLIT_API_BASE_URL=http://127.0.0.1:8765/internal/api \\
        python -m analytics_assets.split_source.split_pipeline

The warehouse is the one the CLI uses (``ANALYTICS_DUCKDB_PATH``, ``ANALYTICS_DATASET``,
``ANALYTICS_DESTINATION``; see :mod:`analytics_assets.warehouse`).
"""

from __future__ import annotations

import argparse
import sys

from analytics_assets.split_source import (
    RequestStats,
    SplitSettings,
    SplitSourceError,
    split_source,
)
from analytics_assets.warehouse import (
    WarehouseSettings,
    make_pipeline,
    use_system_allocator_for_arrow,
)


def load_split(warehouse: WarehouseSettings, settings: SplitSettings) -> None:
    """Load every table of the organisation into ``warehouse`` and print a summary."""
    use_system_allocator_for_arrow()
    stats = RequestStats()
    pipeline = make_pipeline(warehouse)
    load_info = pipeline.run(split_source(settings, stats=stats), **warehouse.run_options())
    print(load_info)
    print(f"requests: {stats.requests}, retries: {stats.retries}, 429s: {stats.rate_limited}")
    with pipeline.sql_client() as client:
        for table in ("workspaces", "feature_flags", "segments_keys"):
            name = client.make_qualified_table_name(table)
            count = client.execute_sql(f"SELECT count(*) FROM {name}")[0][0]
            print(f"{table}: {count} rows")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analytics_assets.split_source.split_pipeline",
        description="Load the Split Admin API into the warehouse with plain dlt (no Dagster)."
        " Needs SPLIT_API_KEY; SPLIT_API_BASE_URL and the ANALYTICS_* variables as for"
        " analytics-assets.",
    )
    parser.parse_args(argv)
    try:
        settings = SplitSettings.from_environment()
        warehouse = WarehouseSettings.from_environment()
        load_split(warehouse, settings)
    except SplitSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from analytics_assets.split_source.errors import find_split_error

        cause = find_split_error(exc)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
