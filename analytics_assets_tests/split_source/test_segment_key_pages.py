"""Segment keys read with the pages after the first in flight at once equal sequential paging.

The sandbox serves the contract's normal behaviour (covered by the exactness tests). These
cases need a server that misbehaves in ways the contract leaves open (§2.6, §5.3): a page
size clamped below the one asked for, a segment that grows or is deactivated while it is
being read, and a middle page that comes back short. A small HTTP server plays them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest

from analytics_assets.split_source import SplitApiError, SplitSettings
from analytics_assets.split_source.errors import SplitDataError
from analytics_assets.split_source.source import SyncScope, _static_resource, _Tables
from analytics_assets.split_source.stats import RequestStats
from analytics_assets.split_source.transport import SplitTransport


@dataclass
class Segment:
    keys: list[str]
    clamp: int = 100
    grow_after_first_page: list[str] = field(default_factory=list)
    short_page_at: int | None = None  # this offset returns half a page
    missing_from: int | None = None  # offsets from here answer 404
    failing: bool = False
    duplicate_reads: int = 0  # this many whole reads serve keys 0-9 twice (on the last page)
    latency: float = 0.0  # seconds before each answer
    requests: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    most_in_flight: int = 0

    def answer(self, offset: int, limit: int) -> tuple[int, dict]:
        """``page`` after the segment's latency, counting the requests being answered."""
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.latency)
            return self.page(offset, limit)
        finally:
            with self.lock:
                self.in_flight -= 1

    def page(self, offset: int, limit: int) -> tuple[int, dict]:
        with self.lock:
            self.requests.append(offset)
            if self.failing:
                return 500, {"code": 500, "message": "boom"}
            if self.missing_from is not None and offset >= self.missing_from:
                return 404, {"code": 404, "message": "Segment not found"}
            size = min(limit, self.clamp)
            if offset == self.short_page_at:
                size //= 2
            keys = self.keys
            if self.duplicate_reads:
                keys = self.keys + self.keys[:10]
            page = keys[offset : offset + size]
            count = len(keys)
            if self.duplicate_reads and offset + size >= count:
                self.duplicate_reads -= 1
            if offset == 0 and self.grow_after_first_page:
                self.keys = self.keys + self.grow_after_first_page
                self.grow_after_first_page = []
        body = {"keys": [{"key": k} for k in page], "count": count, "offset": offset}
        return 200, {**body, "limit": size, "openChangeRequestId": None}


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, Segment]]]:
    segments: dict[str, Segment] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            # /internal/api/v2/segments/{env}/{segment}/keys
            name = parts.path.split("/")[-2]
            query = parse_qs(parts.query)
            status, body = segments[name].answer(
                int(query.get("offset", ["0"])[0]), int(query["limit"][0])
            )
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/internal/api", segments
    httpd.shutdown()
    httpd.server_close()


def read(
    base_url: str, name: str, listed: int = 1, **settings: object
) -> tuple[list[str], RequestStats]:
    config = SplitSettings(api_key="test-key", base_url=base_url, backoff_factor=0.01, **settings)
    stats = RequestStats()
    parent = _static_resource(
        "environment_segments",
        [{"environment_id": "env-1", "name": name, "workspace_id": "ws"}] * listed,
    )
    tables = _Tables(SplitTransport(config, stats), SyncScope(), config)
    resource = tables.segments_keys(parent)
    tables = [item for item in resource if isinstance(item, pa.Table)]
    return [k for table in tables for k in table.column("key").to_pylist()], stats


def keys(n: int, prefix: str = "k") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def test_every_page_once_in_order(server):
    base_url, segments = server
    segments["big"] = Segment(keys(1_050))
    got, stats = read(base_url, "big")
    assert got == keys(1_050)
    assert sorted(segments["big"].requests) == list(range(0, 1_050, 100))
    assert stats.requests == 11


def test_page_size_clamped_by_the_server(server):
    base_url, segments = server
    segments["clamped"] = Segment(keys(250), clamp=40)
    got, stats = read(base_url, "clamped")
    assert got == keys(250)
    assert stats.requests == 7  # ceil(250 / 40): the offsets follow the page the server gave


def test_segment_growing_while_read_is_read_to_its_new_end(server):
    base_url, segments = server
    segments["growing"] = Segment(keys(250), grow_after_first_page=keys(130, prefix="new"))
    got, _ = read(base_url, "growing")
    assert got == keys(250) + keys(130, prefix="new")


def test_short_middle_page_is_filled_in_order(server):
    base_url, segments = server
    segments["short"] = Segment(keys(500), short_page_at=200)
    got, _ = read(base_url, "short")
    assert set(got) == set(keys(500)) and len(got) == 500


def test_keys_served_twice_while_moving_are_read_again(server):
    # A key that moves to a later page while the segment changes is served twice: the read
    # is thrown away and done again, and the second read is clean.
    base_url, segments = server
    segments["shifting"] = Segment(keys(150), duplicate_reads=1)
    got, _ = read(base_url, "shifting")
    assert got == keys(150)


def test_keys_that_keep_repeating_fail_loudly_naming_the_segment(server):
    base_url, segments = server
    segments["stuck"] = Segment(keys(150), duplicate_reads=1_000)
    with pytest.raises(Exception) as caught:
        read(base_url, "stuck")
    error = caught.value
    while error is not None and not isinstance(error, SplitDataError):
        error = error.__cause__ or error.__context__
    assert isinstance(error, SplitDataError), caught.value
    assert "segment stuck" in str(error) and "kept changing" in str(error)


def test_segment_listed_twice_is_read_once(server):
    # Offset paging over a changing list of environment segments can list one twice.
    base_url, segments = server
    segments["twice"] = Segment(keys(250))
    got, stats = read(base_url, "twice", listed=2)
    assert got == keys(250) and stats.requests == 3


def test_segment_deactivated_while_read_is_not_active_there_any_more(server):
    # The API now says the segment is not active in the environment (contract §2.6): it has
    # no keys there, as the next listing of the environment's segments will also say.
    base_url, segments = server
    segments["leaving"] = Segment(keys(500), missing_from=300)
    got, _ = read(base_url, "leaving")
    assert got == []


def test_segment_not_active_at_all_is_empty(server):
    base_url, segments = server
    segments["absent"] = Segment(keys(10), missing_from=0)
    got, stats = read(base_url, "absent")
    assert got == [] and stats.requests == 1


def test_server_error_fails_with_endpoint_and_scope(server):
    base_url, segments = server
    segments["broken"] = Segment(keys(300), failing=True)
    with pytest.raises(Exception) as caught:
        read(base_url, "broken", max_retries=1)
    error = caught.value
    while error is not None and not isinstance(error, SplitApiError):
        error = error.__cause__ or error.__context__
    assert isinstance(error, SplitApiError), caught.value
    assert "segment broken" in str(error) and "environment env-1" in str(error)
    assert "test-key" not in str(caught.value)


def test_requests_in_flight_follow_rate_times_latency(server):
    # 20 requests a second that take 400 ms each keep 8 in flight: a fixed bound of 4 would
    # halve the throughput the rate limit allows.
    base_url, segments = server
    segments["slow"] = Segment(keys(6_000), latency=0.4)
    got, stats = read(base_url, "slow", max_requests_per_second=20)
    assert got == keys(6_000) and stats.requests == 60
    assert 8 <= segments["slow"].most_in_flight <= 16


def test_a_fixed_number_in_flight_is_kept(server):
    base_url, segments = server
    segments["fixed"] = Segment(keys(2_000), latency=0.2)
    got, _ = read(base_url, "fixed", max_requests_per_second=20, max_concurrent_requests=3)
    assert got == keys(2_000)
    assert segments["fixed"].most_in_flight == 3
