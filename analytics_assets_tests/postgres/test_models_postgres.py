"""The dbt models built through Dagster on PostgreSQL (sandbox -> sync -> models), the marts
held against the sandbox's ground truth like on DuckDB (dagster_layer/test_models.py).

The warehouse is given as users write it: a libpq URL without a password (the machine's
server trusts local connections). Each test loads into datasets of its own in database
``test`` and drops them afterwards, so runs side by side do not meet.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator

import psycopg2
import pytest

from analytics_assets.dagster_layer.sync import run_sync
from analytics_assets.definitions import build_definitions
from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets_tests.dagster_layer.conftest import project_environment
from analytics_assets_tests.dagster_layer.test_models import (
    AS_OF,
    _truth_stale,
    expected_segment_usage,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _query(sql: str) -> list[tuple]:
    with psycopg2.connect(DSN, connect_timeout=5) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.fixture
def postgres_synced(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SandboxProcess, str]]:
    dataset = f"split_models_{uuid.uuid4().hex[:10]}"
    models = f"{dataset}_analytics"
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SPLIT_", "ANALYTICS_", "DESTINATION__")):
            monkeypatch.delenv(name)
    try:
        with SandboxProcess(size="tiny") as sandbox:
            for name, value in project_environment(tmp_path, sandbox).items():
                monkeypatch.setenv(name, value)
            monkeypatch.setenv("ANALYTICS_DESTINATION", "postgres")
            monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", DSN)
            monkeypatch.setenv("ANALYTICS_DATASET", dataset)
            monkeypatch.setenv("ANALYTICS_AS_OF", AS_OF.isoformat())
            monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            run_sync(build_definitions(), progress=lambda _: None)
            yield sandbox, models
    finally:
        for schema in (models, f"{dataset}_staging", dataset):
            _query(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; SELECT 1')


def test_marts_on_postgres_match_truth(postgres_synced):
    sandbox, models = postgres_synced
    definitions = list(sandbox.ground_truth_rows("feature_flag_definitions"))
    stale = {(d["environment_id"], d["id"]) for d in definitions if _truth_stale(d)}
    assert stale
    assert (
        set(_query(f"SELECT environment_id, flag_id FROM {models}.flag_health WHERE is_stale"))
        == stale
    )
    assert _query(f"SELECT count(*) FROM {models}.flag_health") == [(len(definitions),)]
    assert set(
        _query(
            "SELECT environment_id, used_by_type, used_by, segment_type, segment_name, used_in"
            f" FROM {models}.segment_usage"
        )
    ) == expected_segment_usage(sandbox)
    matchers = Counter(
        (d["environment_id"], d["id"], m["type"])
        for d in definitions
        for r in d.get("rules") or []
        for m in r["condition"]["matchers"]
    )
    assert (
        Counter(
            {
                (e, f, t): n
                for e, f, t, n in _query(
                    "SELECT environment_id, flag_id, matcher_type, count(*)"
                    f" FROM {models}.stg_split__rule_matchers GROUP BY 1, 2, 3"
                )
            }
        )
        == matchers
    )
    # Typed as documented on Postgres too.
    types = dict(
        _query(
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_schema = '{models}' AND table_name = 'flag_health'"
        )
    )
    assert types["last_changed_at"] == "timestamp with time zone"
    assert types["is_stale"] == "boolean"
