"""Resources shared by every asset, sensor and check.

``SplitApiResource`` is the one place the API key enters Dagster: as ``EnvVar("SPLIT_API_KEY")``,
so the UI, run config and event log show the variable's name, never its value. A base URL on
this machine (the sandbox that ``analytics-assets dev`` and ``demo`` start) needs no key, so
"Materialize all" works out of the box; the real API needs one, and its absence fails at once.
"""

import os
from urllib.parse import urlsplit

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from analytics_assets.split_source import SplitSettings
from analytics_assets.split_source.settings import _env_number
from analytics_assets.warehouse import (
    DEFAULT_DATASET,
    DEFAULT_DESTINATION,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_DUCKDB_PATH,
    WarehouseSettings,
)

SANDBOX_API_KEY = "sandbox-key"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SplitApiResource(ConfigurableResource):
    """How to reach the Split Admin API (key, base URL, auth scheme, rate limit)."""

    api_key: str | None = Field(
        default=None,
        description="Admin API key; set through the SPLIT_API_KEY environment variable. Empty:"
        " use the local sandbox.",
    )
    base_url: str | None = Field(
        default=None, description="Default: the real API (SPLIT_API_BASE_URL overrides)."
    )
    auth_scheme: str = Field(default="bearer", description="bearer or x-api-key (Harness).")
    max_requests_per_second: float | None = Field(
        default=None, description="Client-side pacing limit shared by one run's requests."
    )

    @property
    def uses_sandbox(self) -> bool:
        """True for a base URL on this machine: the local sandbox, which takes any key."""
        host = urlsplit(self.base_url or "").hostname or ""
        return host in LOCAL_HOSTS

    def settings(self) -> SplitSettings:
        """The source's settings; other SPLIT_* tuning variables still apply."""
        api_key = self.api_key or (SANDBOX_API_KEY if self.uses_sandbox else None)
        return SplitSettings.from_environment(
            api_key=api_key,
            base_url=self.base_url,
            auth_scheme=self.auth_scheme,
            max_requests_per_second=self.max_requests_per_second,
        )


class WarehouseResource(ConfigurableResource):
    """Where dlt loads: destination, DuckDB file and dataset (ANALYTICS_* variables)."""

    destination: str = DEFAULT_DESTINATION
    duckdb_path: str = DEFAULT_DUCKDB_PATH
    dataset: str = DEFAULT_DATASET
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    models_dataset: str = ""

    def settings(self) -> WarehouseSettings:
        settings = WarehouseSettings(
            destination=self.destination,
            duckdb_path=self.duckdb_path,
            dataset=self.dataset,
            duckdb_memory_limit=self.duckdb_memory_limit,
            models_dataset=self.models_dataset,
        )
        settings.validate()
        return settings


def _env_or_none(name: str) -> EnvVar | None:
    return EnvVar(name) if os.environ.get(name) else None


def _rate_from_environment() -> float | None:
    # A malformed value is a configuration error with its variable's name, not a ValueError.
    rate = _env_number(os.environ, "SPLIT_MAX_REQUESTS_PER_SECOND", float, None)
    return None if rate is None else float(rate)  # type: ignore[arg-type]


def split_api_from_environment() -> SplitApiResource:
    """Bind the resource to the environment by reference (EnvVar), never by value."""
    return SplitApiResource(
        api_key=_env_or_none("SPLIT_API_KEY"),
        base_url=_env_or_none("SPLIT_API_BASE_URL"),
        auth_scheme=os.environ.get("SPLIT_AUTH_SCHEME", "bearer"),
        max_requests_per_second=_rate_from_environment(),
    )


def split_settings_from_environment() -> SplitSettings:
    """The settings a run of ``split_api_from_environment()`` will resolve, resolved now.

    For checks before any run starts (the CLI's preflight); the same rules as the resource.
    """
    return SplitApiResource(
        api_key=os.environ.get("SPLIT_API_KEY") or None,
        base_url=os.environ.get("SPLIT_API_BASE_URL") or None,
        auth_scheme=os.environ.get("SPLIT_AUTH_SCHEME", "bearer"),
        max_requests_per_second=_rate_from_environment(),
    ).settings()


def warehouse_from_environment() -> WarehouseResource:
    settings = WarehouseSettings.from_environment()
    return WarehouseResource(
        destination=settings.destination,
        duckdb_path=settings.duckdb_path,
        dataset=settings.dataset,
        duckdb_memory_limit=settings.duckdb_memory_limit,
        models_dataset=settings.models_dataset,
    )
