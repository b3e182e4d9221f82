"""The DuckDB file shared by one writer and any number of readers, in different processes.

DuckDB lets one process open a file for writing, or any number of processes read it, never
both at once. Without waiting, a query, a quality check or a BI tool that had the file open
when a load began failed the load, and a query during a load failed. Here the one that comes
second waits, says so, and goes on: a reader then sees only committed loads.

dlt builds a destination's credentials from its configuration spec (it copies the fields of
an instance handed to it), so the waiting connection pool travels in a spec of its own. dlt
reads a spec's annotations at class creation: no postponed annotations in this module.
"""

import logging
import time
from typing import Any

from dlt.common.configuration import configspec
from dlt.destinations.impl.duckdb.configuration import (
    DuckDbClientConfiguration,
    DuckDbConnectionPool,
    DuckDbCredentials,
)
from dlt.destinations.impl.duckdb.factory import duckdb as duckdb_destination

from analytics_assets.split_source.errors import SplitConfigurationError

logger = logging.getLogger("analytics_assets.warehouse")
_announced: dict[str, float] = {}

DUCKDB_LOCK_CONFLICT = "Could not set lock on file"
DUCKDB_FILE_WAIT_SECONDS = 1800.0
"""How long a writer waits for readers of the DuckDB file (or a reader for the writer)."""


class _WaitingConnectionPool(DuckDbConnectionPool):
    """Opens the DuckDB file, waiting while another process has it open."""

    def borrow_conn(self, *args: Any, **kwargs: Any) -> Any:
        import duckdb

        deadline = None
        while True:
            try:
                return super().borrow_conn(*args, **kwargs)
            except duckdb.IOException as exc:
                if DUCKDB_LOCK_CONFLICT not in str(exc):
                    raise
                reason = " ".join(str(exc).split())
                if deadline is None:
                    deadline = time.monotonic() + DUCKDB_FILE_WAIT_SECONDS
                    if time.monotonic() - _announced.get(str(self.credentials.database), -1e9) > 60:
                        _announced[str(self.credentials.database)] = time.monotonic()
                        logger.warning(self._waiting(reason))  # once a minute, not per open
                elif time.monotonic() > deadline:
                    raise SplitConfigurationError(
                        f"Gave up after {DUCKDB_FILE_WAIT_SECONDS:.0f}s waiting for another"
                        f" process to close {self.credentials.database} ({reason}). Close it"
                        " (a BI tool's connection, a stuck query), then try again."
                    ) from None
                time.sleep(0.2)

    def _waiting(self, reason: str) -> str:
        database = self.credentials.database
        if self.credentials.read_only:
            return (
                f"{database} is being written by another process (a sync's load); waiting for"
                f" it to finish, then reading what it committed. ({reason})"
            )
        return (
            f"Another process has {database} open (a query, the quality checks or a BI tool;"
            f" DuckDB lets a writer in only when no one else has the file open); waiting for it"
            f" to close it. ({reason})"
        )


@configspec(init=False)
class WaitingDuckDbCredentials(DuckDbCredentials):
    """DuckDB credentials whose connections wait for other processes instead of failing."""

    def on_resolved(self) -> None:
        super().on_resolved()
        self.conn_pool = _WaitingConnectionPool(self)


@configspec(init=False)
class WaitingDuckDbConfiguration(DuckDbClientConfiguration):
    credentials: WaitingDuckDbCredentials = None  # type: ignore[assignment]


class waiting_duckdb(duckdb_destination):  # noqa: N801 (dlt names destination factories in lower case)
    """``dlt.destinations.duckdb`` whose connections wait for other processes."""

    spec = WaitingDuckDbConfiguration
