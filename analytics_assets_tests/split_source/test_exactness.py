"""Every table equals the sandbox's ground truth, in the minimal number of requests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pytest

from analytics_assets_tests.split_source.helpers import run_source, warehouse_for
from analytics_assets_tests.support import assert_matches_truth


@pytest.mark.parametrize("sandbox_fixture", ["tiny_sandbox", "demo_sandbox"])
def test_every_table_is_exact_in_minimal_requests(sandbox_fixture, request, tmp_path: Path):
    sandbox = request.getfixturevalue(sandbox_fixture)
    truth = sandbox.ground_truth()
    before = sandbox.stats()["requests_total"]

    stats = run_source(sandbox.base_url, tmp_path / "w.duckdb")

    assert_matches_truth(warehouse_for(tmp_path / "w.duckdb"), truth)
    minimal = truth["minimal_requests"]
    assert stats.requests == minimal["total"]
    assert stats.by_endpoint == {t: n for t, n in minimal["by_endpoint"].items()}
    assert sandbox.stats()["requests_total"] - before == minimal["total"]
    assert stats.retries == 0


def test_status_distributions_match(tiny_sandbox, tmp_path: Path):
    truth = tiny_sandbox.ground_truth(rows=False)
    run_source(tiny_sandbox.base_url, tmp_path / "w.duckdb")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        for table in ("users", "change_requests"):
            got = Counter(
                dict(
                    con.execute(f"SELECT status, count(*) FROM split.{table} GROUP BY 1").fetchall()
                )
            )
            expected = Counter({k: v for k, v in truth["status_counts"][table].items() if v})
            assert got == expected, table
    # PENDING users and non-REQUESTED change requests are exactly what the original config lost.
    assert got  # change_requests has several statuses
    assert truth["status_counts"]["users"]["PENDING"] > 0


def test_tiny_covers_the_pagination_edges(tiny_sandbox):
    """The exactness test above is only as good as the edges the data holds (max page sizes)."""
    truth = tiny_sandbox.ground_truth()
    rows = truth["tables"]
    flags = Counter(r["workspace_id"] for r in rows["feature_flags"]["rows"])
    assert {50, 51} <= set(flags.values())  # exact multiple, one past it
    workspaces = {r["id"] for r in rows["workspaces"]["rows"]}
    assert workspaces - set(flags)  # an empty scope
    keys = Counter((r["environment_id"], r["segment_name"]) for r in rows["segments_keys"]["rows"])
    assert {100, 101} <= set(keys.values())
    active = {(r["environment_id"], r["name"]) for r in rows["environment_segments"]["rows"]}
    assert active - set(keys)  # an active segment with no keys
    assert truth["status_counts"]["users"]["ACTIVE"] == 200  # a marker page that ends exactly
    assert truth["status_counts"]["change_requests"]["REQUESTED"] == 100
    assert truth["status_counts"]["change_requests"]["SCHEDULE_REQUESTED"] == 0


def test_rerun_never_duplicates(tiny_sandbox, tmp_path: Path):
    path = tmp_path / "w.duckdb"
    run_source(tiny_sandbox.base_url, path)
    run_source(tiny_sandbox.base_url, path)
    truth = tiny_sandbox.ground_truth()
    assert_matches_truth(warehouse_for(path), truth)
    with duckdb.connect(str(path), read_only=True) as con:
        versions = con.execute("SELECT count(*) FROM split.feature_flag_definitions").fetchone()[0]
    # nothing changed, so no new versions either
    assert versions == truth["tables"]["feature_flag_definitions"]["count"]
