"""The key test: an independent crawl reproduces the ground truth, in the minimal requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from analytics_assets.sandbox import SandboxProcess
from analytics_assets_tests.sandbox.crawler import NATURAL_KEYS, Crawler, keyed


@pytest.fixture(scope="module")
def demo_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(size="demo", seed=42) as sandbox:
        yield sandbox


def assert_crawl_matches_truth(sandbox: SandboxProcess) -> dict[str, Any]:
    truth = sandbox.ground_truth()
    sandbox.reset_stats()
    crawled = Crawler(sandbox.base_url).crawl()
    stats = sandbox.stats()

    assert set(truth["tables"]) == set(NATURAL_KEYS)
    for table, expected in truth["tables"].items():
        assert expected["key"] == list(NATURAL_KEYS[table]), table
        truth_rows = keyed(table, expected["rows"])
        crawl_rows = keyed(table, crawled[table])
        assert expected["count"] == len(truth_rows), table
        assert set(crawl_rows) == set(truth_rows), table
        mismatched = [key for key, row in truth_rows.items() if crawl_rows[key] != row]
        assert not mismatched, f"{table}: {len(mismatched)} rows differ, e.g. {mismatched[:2]}"

    minimal = truth["minimal_requests"]
    assert stats["requests_total"] == minimal["total"]
    served = {name: entry["requests"] for name, entry in stats["by_endpoint"].items()}
    # Endpoints a perfect client never calls (e.g. behind a 402) do not appear in the stats.
    assert served == {name: n for name, n in minimal["by_endpoint"].items() if n}
    # The same requests split by the scopes a sync commits on its own.
    scopes = {"organisation"}
    scopes |= {f"workspace {row['id']}" for row in truth["tables"]["workspaces"]["rows"]}
    scopes |= {f"environment {row['id']}" for row in truth["tables"]["environments"]["rows"]}
    assert set(minimal["by_scope"]) == scopes
    assert sum(minimal["by_scope"].values()) == minimal["total"]
    # Only 200s, except the one 402 of a plan without large segments (contract §3.5).
    statuses = {name: set(entry["by_status"]) for name, entry in stats["by_endpoint"].items()}
    if truth.get("forms", {}).get("large_segments_plan") == "paywalled":
        assert statuses.pop("large_segments") == {"402"}
    assert all(found == {"200"} for found in statuses.values()), statuses
    assert stats["faults"] == {} and stats["rate_limited"] == 0
    return truth


def test_tiny_crawl_reproduces_truth_in_minimal_requests(tiny_sandbox: SandboxProcess) -> None:
    truth = assert_crawl_matches_truth(tiny_sandbox)
    # tiny's totals, so that a change to the data generator is a conscious one.
    assert truth["minimal_requests"]["by_endpoint"]["feature_flags"] == 5  # 2 + 1 + 1 + 1
    assert truth["minimal_requests"]["by_endpoint"]["users"] == 3  # 200 ACTIVE = one page
    assert truth["minimal_requests"]["by_endpoint"]["change_requests"] == 6  # 100 REQUESTED


def test_demo_crawl_reproduces_truth_in_minimal_requests(demo_sandbox: SandboxProcess) -> None:
    truth = assert_crawl_matches_truth(demo_sandbox)
    counts = {table: info["count"] for table, info in truth["tables"].items()}
    assert counts["workspaces"] >= 3
    assert counts["feature_flags"] >= 100
    assert counts["segments"] >= 30
    assert 20_000 <= counts["segments_keys"] <= 50_000
    assert all(n > 0 for n in truth["status_counts"]["users"].values())
    assert all(n > 0 for n in truth["status_counts"]["change_requests"].values())


def test_crawl_after_a_generation_change_matches_the_new_truth(
    demo_sandbox: SandboxProcess,
) -> None:
    demo_sandbox.control(generation=2)
    try:
        truth = assert_crawl_matches_truth(demo_sandbox)
        assert truth["generation"] == 2
    finally:
        demo_sandbox.control(generation=0)
