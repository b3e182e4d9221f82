"""Column hints from the endpoint table: every documented column exists from the first load.

dlt creates a column only when a record carries a non-null value for it, so a new or small
organisation would get tables without the columns the README and the contract document, and
SQL over them (the dbt models included) would break. The hints declare each documented column
with its type; the API's own values still decide everything else.
"""

from __future__ import annotations

from typing import Any

from analytics_assets.split_source.settings import Endpoint


def column_hints(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """dlt column hints for ``endpoint``'s documented columns (all nullable: the API may omit
    any of them)."""
    return {
        name: {"name": name, "data_type": data_type, "nullable": True}
        for name, data_type in endpoint.columns.items()
    }
