"""BigQuery, Snowflake and MotherDuck: configuration resolves and the SQL is right, offline.

No account is reached. Each destination gets fake credentials through dlt's standard
environment variables; the pipeline is built exactly as a run builds it (``make_pipeline``),
the scoped source is extracted from the local sandbox and normalized, and the destination's own
job client (which connects lazily) generates the merge SQL a run would execute. What is checked:
credentials and dataset resolve, the destination supports the merge strategies the source
relies on (delete-insert with ``destination_scope``, scd2), and its identifier casing still
matches the unquoted column names in our scope conditions (Snowflake folds both to upper case).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dlt.common.configuration.container import Container
from dlt.common.storages import FileStorage, PackageStorage
from dlt.common.storages.load_package import LoadPackageStateInjectableContext
from dlt.destinations.sql_jobs import SqlMergeFollowupJob

from analytics_assets.split_source import (
    ENDPOINTS_BY_TABLE,
    SplitSettings,
    SyncScope,
    split_source,
)
from analytics_assets.warehouse import WarehouseSettings, make_pipeline

FAKE_CREDENTIALS = {
    "bigquery": {
        "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": "analytics-test-project",
        "DESTINATION__BIGQUERY__CREDENTIALS__CLIENT_EMAIL": (
            "loader@analytics-test-project.iam.gserviceaccount.com"
        ),
        "DESTINATION__BIGQUERY__CREDENTIALS__PRIVATE_KEY": (
            "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n"
        ),
        "DESTINATION__BIGQUERY__LOCATION": "EU",
    },
    "snowflake": {
        "DESTINATION__SNOWFLAKE__CREDENTIALS": (
            "snowflake://loader:not-a-password@test_account/ANALYTICS?warehouse=LOADING&role=LOADER"
        ),
    },
    "motherduck": {
        "DESTINATION__MOTHERDUCK__CREDENTIALS": "md:analytics?motherduck_token=not-a-token",
    },
}
# The client library each destination's job client imports (the dlt extra of the same name).
CLIENT_LIBRARY = {
    "bigquery": "google.cloud.bigquery",
    "snowflake": "snowflake.connector",
    "motherduck": "duckdb",
}
QUALIFIED_TABLE = {
    "bigquery": "`analytics-test-project`.`split`.`feature_flags`",
    "snowflake": '"SPLIT"."FEATURE_FLAGS"',
    "motherduck": '"analytics"."split"."feature_flags"',
}


@contextmanager
def _load_package(pipeline) -> Iterator[None]:
    """The normalized package in context, as dlt's loader provides it to merge jobs."""
    (load_id,) = pipeline.list_normalized_load_packages()
    storage = PackageStorage(
        FileStorage(str(Path(pipeline.working_dir) / "load" / "normalized")), "normalized"
    )
    with Container().injectable_context(
        LoadPackageStateInjectableContext(storage=storage, load_id=load_id)
    ):
        yield


@pytest.fixture
def destination_environment(request, monkeypatch) -> Iterator[str]:
    destination = request.param
    for name, value in FAKE_CREDENTIALS[destination].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANALYTICS_DESTINATION", destination)
    yield destination


def _scoped_pipeline(destination: str, sandbox, tmp_path: Path):
    """One workspace's flags and definitions, extracted and normalized for ``destination``."""
    truth = sandbox.ground_truth(tables=["workspaces"])
    workspaces = tuple(r["id"] for r in truth["tables"]["workspaces"]["rows"])
    warehouse = WarehouseSettings.from_environment()
    assert warehouse.destination == destination
    assert not warehouse.single_writer  # loads run in the pool split_api, in parallel
    pipeline = make_pipeline(warehouse, pipelines_dir=str(tmp_path / "dlt"))
    scope = SyncScope(workspace_ids=workspaces[:1], known_workspace_ids=workspaces)
    settings = SplitSettings(api_key="test-key", base_url=sandbox.base_url, backoff_factor=0.05)
    source = split_source(settings, scope).with_resources(
        "feature_flags", "feature_flag_definitions"
    )
    pipeline.extract(source)
    pipeline.normalize()
    return pipeline, scope, workspaces


@pytest.mark.parametrize(
    "destination_environment", ["bigquery", "snowflake", "motherduck"], indirect=True
)
def test_destination_configuration_and_merge_sql(
    destination_environment: str, tiny_sandbox, tmp_path: Path
):
    destination = destination_environment
    pytest.importorskip(
        CLIENT_LIBRARY[destination],
        reason=f"the {destination} client library is not installed (pip install"
        f" 'dlt[{destination}]==1.31.0')",
    )
    pipeline, scope, workspaces = _scoped_pipeline(destination, tiny_sandbox, tmp_path)
    client = pipeline.destination_client()  # resolves config and credentials; no connection
    capabilities = client.capabilities
    assert {"delete-insert", "scd2"} <= set(capabilities.supported_merge_strategies)
    sql_client = client.sql_client
    assert sql_client.make_qualified_table_name("feature_flags") == QUALIFIED_TABLE[destination]
    assert client.config.credentials.is_resolved()
    if destination == "bigquery":
        assert client.config.credentials.project_id == "analytics-test-project"
        assert client.config.location == "EU"
    if destination == "snowflake":
        assert client.config.credentials.warehouse == "LOADING"
        assert client.config.credentials.database == "ANALYTICS"

    flags = client.prepare_load_table("feature_flags")
    assert flags["x-merge-strategy"] == "delete-insert"
    condition = flags["x-merge-destination-scope"]
    assert condition == scope.destination_scope(ENDPOINTS_BY_TABLE["feature_flags"])
    assert condition.startswith(f"(workspace_id IN ('{workspaces[0]}')")
    statements = SqlMergeFollowupJob.generate_sql([flags], sql_client)
    delete = next(s for s in statements if s.lstrip().upper().startswith("DELETE"))
    insert = next(s for s in statements if s.lstrip().upper().startswith("INSERT"))
    assert QUALIFIED_TABLE[destination] in delete and condition in delete
    # The scope names columns unquoted; the table's columns are created under the
    # destination's casing. They match when the unquoted name folds to the created one.
    column = capabilities.casefold_identifier("workspace_id")
    quoted = sql_client.escape_column_name(column)
    assert quoted in insert
    if destination == "snowflake":
        assert column == "WORKSPACE_ID"  # unquoted workspace_id folds to WORKSPACE_ID too

    definitions = client.prepare_load_table("feature_flag_definitions")
    assert definitions["x-merge-strategy"] == "scd2"
    assert definitions["x-merge-destination-scope"] == condition
    with _load_package(pipeline):  # scd2 takes its validity boundary from the load package
        history = " ".join(SqlMergeFollowupJob.generate_sql([definitions], sql_client))
    valid_to = sql_client.escape_column_name(capabilities.casefold_identifier("_dlt_valid_to"))
    assert f"UPDATE {sql_client.make_qualified_table_name('feature_flag_definitions')}" in (history)
    assert valid_to in history and condition in history
