"""The client against an API that misbehaves the way real APIs and proxies do.

Each case is served over real HTTP by a scripted server (``misbehaving.py``): wrong-shaped
200s, totals that lie, pages that move, bodies that stall or drip, rate limits that ask for
a day, keys pasted with a newline. Transient misbehaviour ends in exactly the served rows;
persistent misbehaviour fails with a sentence that names the endpoint and scope, in bounded
time, and never as an empty (or partial) read.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from analytics_assets.split_source import SplitConfigurationError, SplitSettings
from analytics_assets.split_source.cancellation import Cancellation
from analytics_assets.split_source.errors import (
    SplitApiError,
    SplitDataError,
    SplitUnavailableError,
    SyncCancelled,
)
from analytics_assets.split_source.reading import read_scope
from analytics_assets.split_source.settings import ENDPOINTS_BY_TABLE
from analytics_assets.split_source.source import paging_for
from analytics_assets.split_source.stats import RequestStats
from analytics_assets.split_source.transport import RequestContext, SplitTransport
from analytics_assets_tests.split_source.misbehaving import Answer, misbehaving_server, offset_page

FLAGS = ENDPOINTS_BY_TABLE["feature_flags"]
FLAGS_PATH = "v2/splits/ws/ws-1"


def flags(count: int, prefix: str = "flag") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i:04d}", "name": f"{prefix}_{i}"} for i in range(count)]


def read_flags(url: str, stats: RequestStats | None = None, **settings: Any) -> list[dict]:
    options = {"backoff_factor": 0.01, "max_retries": 3, **settings}
    transport = SplitTransport(SplitSettings(api_key="test-key", base_url=url, **options), stats)
    context = RequestContext(FLAGS, FLAGS_PATH, (("workspace", "ws-1"),))
    return read_scope(transport, context, {}, paging_for(FLAGS))


@pytest.mark.parametrize(
    "wrong",
    [
        {"message": "Service temporarily degraded"},
        None,
        {"offset": 0, "limit": 50, "totalCount": 120},  # the records key is missing
        {"objects": {"items": []}, "totalCount": 120},  # an object where the list belongs
        [],  # a list where the envelope belongs
    ],
    ids=["message", "null", "no-records-key", "object-for-list", "list-for-object"],
)
def test_a_wrong_shaped_200_is_retried_never_an_empty_page(wrong: Any) -> None:
    items = flags(120)

    def script(path: str, query: dict[str, str], attempt: int) -> Answer:
        if attempt <= 2:
            return Answer(body=wrong)
        return Answer(body=offset_page(items, query, len(items)))

    stats = RequestStats()
    with misbehaving_server(script) as server:
        assert read_flags(server.url, stats) == items
    assert stats.retries == 6  # two wrong answers for each of the three pages


def test_a_persistently_wrong_shape_fails_naming_endpoint_and_scope() -> None:
    with misbehaving_server(lambda *_: Answer(body={"message": "maintenance"})) as server:
        with pytest.raises(SplitUnavailableError) as raised:
            read_flags(server.url, max_retries=2)
    message = str(raised.value)
    assert "GET /v2/splits/ws/ws-1 (workspace ws-1)" in message
    assert "wrong shape" in message and "objects" in message


def test_a_total_smaller_than_what_is_served_does_not_stop_paging() -> None:
    items = flags(120)
    with misbehaving_server(lambda p, q, a: Answer(body=offset_page(items, q, 40))) as server:
        assert read_flags(server.url) == items


def test_without_any_total_paging_goes_on_to_a_short_page() -> None:
    items = flags(100)  # two full pages, then an empty one
    with misbehaving_server(lambda p, q, a: Answer(body=offset_page(items, q, None))) as server:
        assert read_flags(server.url) == items
        assert sum(server.requests.values()) == 3


def test_rows_that_move_while_paging_are_read_again_from_the_start() -> None:
    before, after = flags(120), [{"id": "new-0", "name": "new"}, *flags(120)]
    reads = {"first page served": 0}

    def script(path: str, query: dict[str, str], attempt: int) -> Answer:
        # A flag is created at the front between the first and the second page of the first
        # read: page 2 then repeats the last flag of page 1.
        if query["offset"] == "0":
            reads["first page served"] += 1
        current = before if reads["first page served"] == 1 and query["offset"] == "0" else after
        return Answer(body=offset_page(current, query, len(current)))

    with misbehaving_server(script) as server:
        assert read_flags(server.url) == after


def test_a_page_served_twice_forever_fails_loudly() -> None:
    items = flags(120)

    def script(path: str, query: dict[str, str], attempt: int) -> Answer:
        shifted = {**query, "offset": str(max(0, int(query["offset"]) - 1))}
        return Answer(body={**offset_page(items, shifted, len(items)), "offset": query["offset"]})

    with misbehaving_server(script) as server, pytest.raises(SplitDataError) as raised:
        read_flags(server.url)
    assert "kept changing" in str(raised.value) and "feature_flags" in str(raised.value)


def test_a_record_without_its_natural_key_names_endpoint_and_table() -> None:
    body = {"objects": [{"name": "no id"}], "offset": 0, "limit": 50, "totalCount": 1}
    with misbehaving_server(lambda *_: Answer(body=body)) as server:
        with pytest.raises(SplitDataError) as raised:
            read_flags(server.url)
    assert "natural key (id)" in str(raised.value) and "`feature_flags`" in str(raised.value)


@pytest.mark.parametrize("misbehaviour", ["stall", "drip"])
def test_a_body_that_stalls_or_drips_ends_at_the_deadline_and_is_retried(misbehaviour) -> None:
    items = flags(10)

    def script(path: str, query: dict[str, str], attempt: int) -> Answer:
        good = offset_page(items, query, len(items))
        if attempt == 1:
            if misbehaviour == "stall":
                return Answer(body=good, stall_seconds=30)
            return Answer(body=good, drip_seconds=0.5)  # a per-read timeout never fires
        return Answer(body=good)

    stats = RequestStats()
    started = time.monotonic()
    with misbehaving_server(script) as server:
        got = read_flags(server.url, stats, request_deadline=1.5)
    assert got == items and stats.retries == 1
    assert time.monotonic() - started < 20  # not the 30 s stall, not a 5-minute drip


def test_a_body_that_always_stalls_fails_naming_the_deadline() -> None:
    body = offset_page(flags(5), {}, 5)
    with misbehaving_server(lambda *_: Answer(body=body, stall_seconds=60)) as server:
        with pytest.raises(SplitUnavailableError) as raised:
            read_flags(server.url, request_deadline=0.5, max_retries=1)
    assert "SPLIT_REQUEST_DEADLINE=0.5s" in str(raised.value)


def test_a_429_with_a_reset_time_is_waited_out_without_using_retries() -> None:
    items = flags(10)

    def script(path: str, query: dict[str, str], attempt: int) -> Answer:
        if attempt <= 5:  # more 429s in a row than there are retries
            return Answer(429, {"code": 429}, {"X-RateLimit-Reset-Seconds-Org": "0"})
        return Answer(body=offset_page(items, query, len(items)))

    stats = RequestStats()
    with misbehaving_server(script) as server:
        assert read_flags(server.url, stats, max_retries=0) == items
    assert stats.rate_limited == 5 and stats.retries == 0


def test_a_429_asking_for_a_day_fails_at_once_naming_the_header() -> None:
    answer = Answer(429, {"code": 429}, {"X-RateLimit-Reset-Seconds-Org": "86400"})
    started = time.monotonic()
    with misbehaving_server(lambda *_: answer) as server:
        with pytest.raises(SplitApiError) as raised:
            read_flags(server.url)
    assert time.monotonic() - started < 10
    assert "X-RateLimit-Reset-Seconds-Org" in str(raised.value)
    assert "SPLIT_MAX_SERVER_WAIT" in str(raised.value)


def test_a_negative_or_garbled_reset_header_is_ignored_not_a_traceback() -> None:
    items = flags(3)

    def script(path: str, query: dict[str, str], attempt: int) -> Answer:
        if attempt == 1:
            return Answer(429, {}, {"X-RateLimit-Reset-Seconds-Org": "-5", "Retry-After": "soon"})
        return Answer(body=offset_page(items, query, len(items)))

    stats = RequestStats()
    with misbehaving_server(script) as server:
        assert read_flags(server.url, stats) == items
    assert stats.retries == 1  # no usable reset time: an ordinary backoff


def test_the_rate_limit_wait_budget_bounds_the_whole_sync() -> None:
    answer = Answer(429, {}, {"X-RateLimit-Reset-Seconds-Org": "1"})
    with misbehaving_server(lambda *_: answer) as server:
        with pytest.raises(SplitApiError) as raised:
            read_flags(server.url, rate_limit_wait_budget=2.5)
    assert "SPLIT_RATE_LIMIT_WAIT_BUDGET" in str(raised.value)


def test_cancelling_ends_a_stalled_request_at_once() -> None:
    body = offset_page(flags(5), {}, 5)
    cancellation = Cancellation()
    settings = SplitSettings(api_key="k", base_url="http://127.0.0.1:1/internal/api")
    with misbehaving_server(lambda *_: Answer(body=body, stall_seconds=60)) as server:
        transport = SplitTransport(
            SplitSettings(api_key="k", base_url=server.url), cancellation=cancellation
        )
        context = RequestContext(FLAGS, FLAGS_PATH, (("workspace", "ws-1"),))
        threading.Timer(0.5, cancellation.cancel, args=("terminated",)).start()
        started = time.monotonic()
        with pytest.raises(SyncCancelled):
            read_scope(transport, context, {}, paging_for(FLAGS))
        assert time.monotonic() - started < 3
    assert settings.max_retries == 20  # the production default rides out minutes of faults


def test_a_key_pasted_with_a_trailing_newline_works() -> None:
    items = flags(2)
    with misbehaving_server(lambda p, q, a: Answer(body=offset_page(items, q, 2))) as server:
        transport = SplitTransport(SplitSettings(api_key="sk-pasted\n", base_url=server.url))
        context = RequestContext(FLAGS, FLAGS_PATH, (("workspace", "ws-1"),))
        assert read_scope(transport, context, {}, paging_for(FLAGS)) == items
    assert server.headers_seen[0]["Authorization"] == "Bearer sk-pasted"


def test_a_key_that_cannot_be_a_header_fails_without_showing_it() -> None:
    with pytest.raises(SplitConfigurationError) as raised:
        SplitSettings(api_key="sk-first-line\nsk-second-line", base_url="http://127.0.0.1/")
    assert "sk-first" not in str(raised.value) and "sk-second" not in str(raised.value)
    assert "SPLIT_API_KEY" in str(raised.value)


def test_a_base_url_without_internal_api_is_named_from_the_404() -> None:
    with misbehaving_server(
        lambda *_: Answer(404, {"code": 404, "message": "Not Found"})
    ) as server:
        url = server.url.removesuffix("/internal/api")
        with pytest.raises(SplitApiError) as raised:
            read_flags(url)
    assert "does not end in /internal/api" in str(raised.value)


def _closed_port() -> int:
    """A port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "url, reason",
    [
        (None, "connection refused"),
        (
            "http://split-api.invalid/internal/api",
            "host name not found",
        ),  # RFC 2606: never resolves
    ],
    ids=["refused", "unknown-host"],
)
def test_a_wrong_address_fails_in_seconds_naming_the_base_url(url: str | None, reason: str) -> None:
    url = url or f"http://127.0.0.1:{_closed_port()}/internal/api"
    stats = RequestStats()
    with pytest.raises(SplitConfigurationError) as raised:
        read_flags(url, stats, max_retries=20)
    message = str(raised.value)
    assert stats.requests == 3  # not the 21 attempts (minutes of backoff) of a real fault
    assert reason in message and "SPLIT_API_BASE_URL" in message and url in message
    assert "test-key" not in message


def test_a_refusal_after_the_api_has_answered_is_ridden_out() -> None:
    """Once the address has answered, a refusal is an incident (a restart, a deploy), not a
    wrong URL: it gets every retry."""
    port = _closed_port()
    items = flags(10)

    def script(path: str, query: dict[str, str], attempt: int) -> Answer:
        return Answer(body=offset_page(items, query, len(items)))

    url = f"http://127.0.0.1:{port}/internal/api"
    stats = RequestStats()
    transport = SplitTransport(
        SplitSettings(api_key="test-key", base_url=url, backoff_factor=0.2, max_retries=20), stats
    )
    context = RequestContext(FLAGS, FLAGS_PATH, (("workspace", "ws-1"),))
    with misbehaving_server(script, port=port):
        assert read_scope(transport, context, {}, paging_for(FLAGS)) == items
    restarted = threading.Event()

    def restart_later() -> None:
        time.sleep(2.0)
        with misbehaving_server(script, port=port):
            restarted.set()
            time.sleep(10)

    threading.Thread(target=restart_later, daemon=True).start()
    assert read_scope(transport, context, {}, paging_for(FLAGS)) == items
    assert restarted.is_set() and stats.retries >= 3
