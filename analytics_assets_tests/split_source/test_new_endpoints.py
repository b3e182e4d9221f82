"""The five tables of issue 13 are exact in every documented form, through the whole source.

Each test syncs ``split_source(...)`` from a sandbox serving one set of forms (contract
§3.4–§3.6) into a real DuckDB file and compares the warehouse with the sandbox's ground truth,
row by row and value by value, and the requests with the minimal count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics_assets.sandbox import SandboxProcess
from analytics_assets.sandbox.forms import ServedForms
from analytics_assets_tests.sandbox.form_variants import NEW_TABLES, VARIANTS
from analytics_assets_tests.split_source.helpers import run_source, warehouse_for
from analytics_assets_tests.support import assert_matches_truth


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(size="tiny", seed=42) as process:
        yield process


@pytest.fixture
def serve(sandbox: SandboxProcess) -> Iterator[Any]:
    def switch(generation: int = 0, **forms: str) -> SandboxProcess:
        sandbox.control(**{**ServedForms().public(), **forms}, generation=generation)
        return sandbox

    yield switch
    sandbox.control(**ServedForms().public(), generation=0)


@pytest.mark.parametrize(
    "variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "defaults"
)
def test_every_table_is_exact_in_minimal_requests_in_every_form(
    serve: Any, variant: dict[str, str], tmp_path: Path
) -> None:
    sandbox = serve(**variant)
    truth = sandbox.ground_truth()
    stats = run_source(sandbox.base_url, tmp_path / "w.duckdb")

    assert_matches_truth(warehouse_for(tmp_path / "w.duckdb"), truth)  # all 18 tables
    minimal = truth["minimal_requests"]
    assert stats.by_endpoint == {t: n for t, n in minimal["by_endpoint"].items() if n}
    assert stats.requests == minimal["total"]
    assert stats.retries == 0


def test_a_plan_without_large_segments_warns_once_and_loads_the_rest(
    serve: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = serve(large_segments_plan="paywalled")
    truth = sandbox.ground_truth()
    with caplog.at_level(logging.WARNING):
        run_source(sandbox.base_url, tmp_path / "w.duckdb")  # a 402 is not a failed sync
    assert_matches_truth(warehouse_for(tmp_path / "w.duckdb"), truth)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "large segment" in r.getMessage().lower()
    ]
    assert len(warnings) == 1, warnings  # once, not once per workspace or environment
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        for table in ("large_segments", "environment_large_segments"):
            assert con.execute(f"SELECT count(*) FROM split.{table}").fetchone() == (0,)


@pytest.mark.parametrize(
    "variant",
    [{}, {"rule_based_segment_timestamps": "iso", "rule_based_segments_envelope": "offset"}],
    ids=["defaults", "iso-offset"],
)
def test_generations_keep_rule_based_definition_history(
    serve: Any, variant: dict[str, str], tmp_path: Path
) -> None:
    database = tmp_path / "w.duckdb"
    truths = {}
    for generation in (0, 1):
        sandbox = serve(generation=generation, **variant)
        truths[generation] = sandbox.ground_truth()
        run_source(sandbox.base_url, database)
        assert_matches_truth(warehouse_for(database), truths[generation], NEW_TABLES)

    def keys(generation: int) -> set[tuple[str, str]]:
        rows = truths[generation]["tables"]["rule_based_segment_definitions"]["rows"]
        return {(r["environment_id"], r["name"]) for r in rows}

    deleted = keys(0) - keys(1)
    assert deleted
    with duckdb.connect(str(database), read_only=True) as con:
        closed = set(
            con.execute(
                "SELECT environment_id, name FROM split.rule_based_segment_definitions"
                " WHERE _dlt_valid_to IS NOT NULL"
            ).fetchall()
        )
        versions = con.execute(
            "SELECT count(*) FROM split.rule_based_segment_definitions"
        ).fetchone()
    assert deleted <= closed  # a deleted definition keeps its history, closed
    assert versions is not None and versions[0] > len(keys(1))  # edits added versions
