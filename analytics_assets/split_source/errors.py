"""Errors raised by the Split source. Messages say what failed, where, and what to do.

No message ever contains the API key: the key travels only in a request header, and
messages are built from the URL path, the status and the API's own error text.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit


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


class SplitRateLimitError(SplitUnavailableError):
    """A 429 asked for a wait beyond the configured caps."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=429, endpoint="", scope="")


class SplitDataError(SplitApiError):
    """The API's answers cannot be turned into exact rows (e.g. a record without its key, or
    a scope whose pages kept moving while it was read)."""


_HINTS = {
    400: "The API rejected the request parameters; this is a bug in the source, please report it.",
    401: "The API key was refused (missing, invalid or revoked). Set SPLIT_API_KEY to a valid"
    " Admin API key; for Harness-migrated accounts also set SPLIT_AUTH_SCHEME=x-api-key.",
    402: "The organisation's plan does not include this feature.",
    403: "The key lacks the role or scope for this endpoint. Use an Admin API key with"
    " access to this workspace/environment (users and groups need GLOBAL scope).",
    404: "The object no longer exists or the key cannot see it. If it was deleted in Split,"
    " the next sync of its parent removes it; re-run the sync.",
}


def api_error_for(status: int, body: bytes, context: Any, settings: Any) -> SplitApiError:
    """The error for a final, non-retryable answer: what, where, and what to do.

    ``context`` is the request's ``RequestContext``; the API's own message is quoted when it
    sent one (never the key: it is not in any body, and is masked should one echo it).
    """
    detail = ""
    try:
        parsed = json.loads(body) if body else None
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            detail = f": {parsed['message'][:500]}"
    except ValueError:
        pass
    if settings.api_key:
        detail = detail.replace(settings.api_key, "***")
    hint = _HINTS.get(status, "Check the API status and re-run the sync.")
    if status == 404 and "/internal/api" not in urlsplit(settings.base_url).path:
        hint = (
            f"SPLIT_API_BASE_URL={settings.base_url!r} does not end in /internal/api, where"
            " the Admin API lives; set it to e.g. https://api.split.io/internal/api."
        )
    where = context.where
    message = f"Split API {where} failed with HTTP {status}{detail}. {hint}"
    kind = {401: SplitAuthError, 403: SplitAuthError, 404: SplitNotFoundError}.get(
        status, SplitApiError
    )
    return kind(message, status=status, endpoint=where, scope=context.describe_scope())
