"""The API key on the wire: dlt's own auth classes, chosen by the auth scheme (contract §1.2).

The key lives in the auth object only; ``SplitSettings`` has already stripped surrounding
whitespace and refused characters a header cannot carry, so no request library ever sees a
malformed key (its error message would quote the header value).
"""

from __future__ import annotations

from dlt.sources.helpers.rest_client.auth import APIKeyAuth, BearerTokenAuth
from requests.auth import AuthBase

from analytics_assets.split_source.settings import SplitSettings


def api_key_auth(settings: SplitSettings) -> AuthBase:
    """``Authorization: Bearer <key>``, or ``x-api-key: <key>`` for Harness-migrated accounts."""
    if settings.auth_scheme == "x-api-key":
        return APIKeyAuth(name="x-api-key", api_key=settings.api_key, location="header")
    return BearerTokenAuth(token=settings.api_key)
