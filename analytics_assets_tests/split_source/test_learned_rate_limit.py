"""An unknown rate limit is learned from the Remaining headers, even when answers bunch.

Gateways and busy servers do not hand answers back as evenly as requests arrive: a buffering
proxy, a garbage-collection pause or a loaded event loop holds some back and then releases
several at once. The server still counts requests when they *arrive*. A client that learns
the limit from the answers of the last second then sees more than one second of the server's
window, over-estimates the limit, and its pacer causes the 429s it is there to avoid.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from analytics_assets.split_source import SplitSettings
from analytics_assets.split_source.reading import read_scope
from analytics_assets.split_source.settings import ENDPOINTS_BY_TABLE
from analytics_assets.split_source.source import paging_for
from analytics_assets.split_source.stats import RequestStats
from analytics_assets.split_source.transport import RequestContext, SplitTransport
from analytics_assets_tests.split_source.misbehaving import Answer, misbehaving_server, offset_page

FLAGS = ENDPOINTS_BY_TABLE["feature_flags"]


class BufferingGateway:
    """Split's sliding one-second window, counted on arrival, behind a gateway that holds
    every answer until its next flush, once every ``flush_seconds``."""

    def __init__(self, limit: int, flush_seconds: float) -> None:
        self.limit = limit
        self.flush_seconds = flush_seconds
        self.epoch = time.monotonic()
        self.arrivals: deque[float] = deque()
        self.refused = 0
        self.most_in_one_window = 0
        self.lock = threading.Lock()

    def __call__(self, path: str, query: dict[str, str], attempt: int) -> Answer:
        with self.lock:
            now = time.monotonic()
            while self.arrivals and self.arrivals[0] <= now - 1.0:
                self.arrivals.popleft()
            if len(self.arrivals) >= self.limit:
                self.refused += 1
                reset = max(1, math.ceil(self.arrivals[0] + 1.0 - now))
                answer = Answer(
                    429,
                    {"code": 429},
                    {
                        "X-RateLimit-Remaining-Org": "0",
                        "X-RateLimit-Reset-Seconds-Org": str(reset),
                    },
                )
            else:
                self.arrivals.append(now)
                self.most_in_one_window = max(self.most_in_one_window, len(self.arrivals))
                remaining = self.limit - len(self.arrivals)
                items = [{"id": f"{path}-flag", "name": "flag"}]
                answer = Answer(
                    body=offset_page(items, query, len(items)),
                    headers={"X-RateLimit-Remaining-Org": str(remaining)},
                )
        elapsed = time.monotonic() - self.epoch
        next_flush = (math.floor(elapsed / self.flush_seconds) + 1) * self.flush_seconds
        time.sleep(self.epoch + next_flush - time.monotonic())
        return answer


def read_workspaces(url: str, count: int, stats: RequestStats) -> list[dict[str, Any]]:
    """``count`` one-page scopes read by 12 threads through one transport (one pacer)."""
    transport = SplitTransport(
        SplitSettings(api_key="test-key", base_url=url, backoff_factor=0.01), stats
    )

    def read(index: int) -> list[dict[str, Any]]:
        path = f"v2/splits/ws/ws-{index}"
        context = RequestContext(FLAGS, path, (("workspace", f"ws-{index}"),))
        return read_scope(transport, context, {}, paging_for(FLAGS))

    with ThreadPoolExecutor(12) as pool:
        return [row for rows in pool.map(read, range(count)) for row in rows]


def test_bunched_answers_do_not_make_the_learned_limit_overshoot() -> None:
    gateway = BufferingGateway(limit=10, flush_seconds=1.0)
    stats = RequestStats()
    with misbehaving_server(gateway) as server:
        started = time.monotonic()
        rows = read_workspaces(server.url, 80, stats)
        elapsed = time.monotonic() - started
    assert len(rows) == 80  # every scope read whole
    assert gateway.refused == 0, (
        f"{gateway.refused} requests refused with 429; at most {gateway.most_in_one_window}"
        " arrived in one window"
    )
    assert stats.rate_limited == 0
    # ...and the limit it learned is used: 80 requests at 10 a second, plus the first flush
    # and the last answer's wait for its flush.
    assert elapsed < 80 / 10 * 1.3 + 2, elapsed
