"""A dlt source for the Split (Harness FME) Admin API. No Dagster imports here.

    import dlt
    from analytics_assets.split_source import split_source

    pipeline = dlt.pipeline("split", destination="duckdb", dataset_name="split")
    pipeline.run(split_source())

Environment variables (see ``settings``): SPLIT_API_KEY, SPLIT_API_BASE_URL, SPLIT_AUTH_SCHEME,
SPLIT_MAX_REQUESTS_PER_SECOND, SPLIT_MAX_RETRIES, SPLIT_BACKOFF_FACTOR, SPLIT_REQUEST_TIMEOUT,
SPLIT_MAX_CONCURRENT_REQUESTS.
"""

from analytics_assets.split_source.errors import (
    SplitApiError,
    SplitAuthError,
    SplitConfigurationError,
    SplitNotFoundError,
    SplitSourceError,
    SplitUnavailableError,
)
from analytics_assets.split_source.settings import (
    ENDPOINTS,
    ENDPOINTS_BY_TABLE,
    TABLES,
    Endpoint,
    SplitSettings,
    upstream_tables,
)
from analytics_assets.split_source.source import (
    EnvironmentRef,
    SyncScope,
    read_listing,
    split_source,
)
from analytics_assets.split_source.stats import RequestStats

__all__ = [
    "ENDPOINTS",
    "ENDPOINTS_BY_TABLE",
    "TABLES",
    "Endpoint",
    "EnvironmentRef",
    "RequestStats",
    "SplitApiError",
    "SplitAuthError",
    "SplitConfigurationError",
    "SplitNotFoundError",
    "SplitSettings",
    "SplitSourceError",
    "SplitUnavailableError",
    "SyncScope",
    "read_listing",
    "split_source",
    "upstream_tables",
]
