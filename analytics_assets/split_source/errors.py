"""Errors raised by the Split source. Messages say what failed, where, and what to do.

No message ever contains the API key: the key travels only in a request header, and
messages are built from the URL path, the status and the API's own error text.
"""

from __future__ import annotations


class SplitSourceError(Exception):
    """Base class for errors a user can act on."""


class SplitConfigurationError(SplitSourceError):
    """The source is configured wrongly (missing key, malformed URL, unknown option)."""


class SplitApiError(SplitSourceError):
    """The API answered with an error that retries did not (or cannot) fix."""

    def __init__(self, message: str, *, status: int | None, endpoint: str, scope: str) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint
        self.scope = scope


class SplitAuthError(SplitApiError):
    """401/403: the key is missing, invalid, revoked, or lacks the role for an endpoint."""


class SplitNotFoundError(SplitApiError):
    """404 on a scope that must exist, e.g. a workspace deleted while the sync ran."""


class SplitUnavailableError(SplitApiError):
    """Transport failures, 5xx or 429 that outlasted every retry, or an unreachable host."""


def find_split_error(exc: BaseException) -> SplitSourceError | None:
    """The SplitSourceError inside an exception chain (dlt wraps extraction errors twice)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SplitSourceError):
            return current
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return None


class SyncCancelled(SplitSourceError):
    """The sync was stopped on request (SIGTERM, Ctrl+C, a Dagster "Terminate")."""
