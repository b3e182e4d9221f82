"""The large size: over a million lazily generated keys with a small server footprint."""

from __future__ import annotations

import pytest

from analytics_assets.sandbox import SandboxProcess
from analytics_assets_tests.sandbox.crawler import Crawler

MAX_SERVER_PEAK_RSS = 400 * 1024 * 1024


@pytest.mark.slow
def test_large_size_serves_a_million_keys_in_little_memory() -> None:
    with SandboxProcess(size="large", startup_timeout=180) as sandbox:
        summary = sandbox.ground_truth(rows=False)
        tables = summary["tables"]
        assert tables["workspaces"]["count"] >= 10
        assert tables["segments_keys"]["count"] >= 1_000_000
        assert summary["minimal_requests"]["by_endpoint"]["segments_keys"] >= 10_000

        # Crawl the keys of a sample of active segments over HTTP...
        crawler = Crawler(sandbox.base_url)
        workspace = crawler.offset_pages("/v2/workspaces", 100)[0]["id"]
        environment = crawler.get(f"/v2/environments/ws/{workspace}")[0]["id"]
        active = crawler.offset_pages(f"/v2/segments/ws/{workspace}/environments/{environment}", 50)
        sample = {segment["name"] for segment in active[:15]}
        crawled = {
            name: crawler.key_pages(f"/v2/segments/{environment}/{name}/keys") for name in sample
        }
        # ...and compare them with the streamed ground truth, read to the end.
        expected: dict[str, list[str]] = {name: [] for name in sample}
        streamed = 0
        for row in sandbox.ground_truth_rows("segments_keys"):
            streamed += 1
            if row["environment_id"] == environment and row["segment_name"] in sample:
                expected[row["segment_name"]].append(row["key"])
        assert streamed == tables["segments_keys"]["count"]
        assert crawled == expected
        assert sum(len(keys) for keys in crawled.values()) > 0

        assert sandbox.peak_rss_bytes() < MAX_SERVER_PEAK_RSS, sandbox.peak_rss_bytes()
