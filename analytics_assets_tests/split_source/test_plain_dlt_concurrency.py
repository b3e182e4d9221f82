"""Through plain dlt, the source keeps as many requests in flight as the rate limit needs.

dlt reads a parallelized resource's scopes in its extract pool, 5 threads unless configured.
A scope keeps about one request in flight, so at 20 requests a second and 400 ms per answer
(8 in flight on average) 5 threads would hold a sync to 12.5 requests a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics_assets_tests.split_source.helpers import run_source, warehouse_for
from analytics_assets_tests.support import assert_matches_truth


def test_a_slow_api_gets_more_requests_in_flight_than_dlts_default_pool(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(size="tiny", rate_limit=20, latency_ms=400)
    truth = sandbox.ground_truth()
    sandbox.reset_stats()
    stats = run_source(sandbox.base_url, tmp_path / "w.duckdb", max_requests_per_second=20)
    assert_matches_truth(warehouse_for(tmp_path / "w.duckdb"), truth)
    served = sandbox.stats()
    assert stats.rate_limited == 0
    assert served["in_flight_max"] >= 8, served["in_flight_max"]


@pytest.mark.slow
def test_a_configured_extract_pool_is_left_alone(
    sandbox_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("EXTRACT__WORKERS", "2")
    sandbox = sandbox_factory(size="tiny", rate_limit=20, latency_ms=400)
    truth = sandbox.ground_truth()
    sandbox.reset_stats()
    run_source(sandbox.base_url, tmp_path / "w.duckdb", max_requests_per_second=20)
    assert_matches_truth(warehouse_for(tmp_path / "w.duckdb"), truth)
    # Two scopes at once (a segment's later pages are read beside each other, so a little
    # more than two), below the 8 the source's own pool reaches in the test above.
    assert sandbox.stats()["in_flight_max"] < 8, sandbox.stats()["in_flight_max"]
