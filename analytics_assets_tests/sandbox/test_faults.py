"""Injected faults are transient, reproducible and never change the data."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from analytics_assets.sandbox import SandboxProcess
from analytics_assets_tests.sandbox.crawler import Crawler, keyed


@pytest.fixture(scope="module")
def faulty_sandbox() -> Iterator[SandboxProcess]:
    # A cap of two faults in a row, so that a client with three retries always gets through:
    # what this module checks is the cap and the fault kinds themselves.
    with SandboxProcess(
        size="tiny",
        seed=5,
        fault_rate=1.0,
        slow_ms=1200,
        max_consecutive_faults=2,
        fault_kinds="500,502,503,504,429,drop,slow,truncated,html",
    ) as sandbox:
        yield sandbox


def test_a_retrying_client_gets_all_the_data(faulty_sandbox: SandboxProcess) -> None:
    """With every first and second attempt failing, three retries always get through."""
    truth = faulty_sandbox.ground_truth(tables=["workspaces", "environments", "users", "groups"])
    crawler = Crawler(faulty_sandbox.base_url, retries=3, timeout=0.4)
    workspaces = crawler.offset_pages("/v2/workspaces", 100)
    environments = [
        {**env, "workspace_id": ws["id"]}
        for ws in workspaces
        for env in crawler.get(f"/v2/environments/ws/{ws['id']}")
    ]
    users = [
        user
        for status in ("ACTIVE", "DEACTIVATED", "PENDING")
        for user in crawler.marker_pages("/v2/users", 200, {"status": status})
    ]
    groups = crawler.offset_pages("/v2/groups", 200)
    for table, rows in (
        ("workspaces", workspaces),
        ("environments", environments),
        ("users", users),
        ("groups", groups),
    ):
        assert keyed(table, rows) == keyed(table, truth["tables"][table]["rows"])
    # Every request failed exactly twice before succeeding (max_consecutive_faults = 2).
    assert crawler.attempts == 3 * (crawler.attempts // 3) and len(crawler.failures) == 2 * (
        crawler.attempts // 3
    )
    faults = faulty_sandbox.stats()["faults"]
    assert len(faults) >= 5, faults  # a mixture of kinds


def _raw_get(url: str) -> tuple[int, dict[str, str], bytes | str]:
    """One request over a bare connection, reporting an incomplete read instead of raising."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", parts.path + "?" + parts.query, headers={"x-api-key": "k"})
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        try:
            return response.status, headers, response.read()
        except http.client.IncompleteRead as error:
            return response.status, headers, f"incomplete after {len(error.partial)} bytes"
    finally:
        connection.close()


def _fault_once(sandbox: SandboxProcess, kind: str, query: str) -> tuple[int, dict[str, str], Any]:
    sandbox.control(fault_kinds=[kind], fault_rate=1.0, max_consecutive_faults=1)
    return _raw_get(f"{sandbox.base_url}/v2/groups?{query}")


def test_each_fault_kind_behaves_as_documented(faulty_sandbox: SandboxProcess) -> None:
    try:
        status, headers, body = _fault_once(faulty_sandbox, "truncated", "limit=11")
        assert status == 200 and int(headers["content-length"]) == len(body)
        with pytest.raises(ValueError):
            json.loads(body)
        status, headers, body = _fault_once(faulty_sandbox, "drop", "limit=12")
        assert status == 200 and isinstance(body, str) and body.startswith("incomplete")
        status, headers, body = _fault_once(faulty_sandbox, "html", "limit=13")
        assert status in (502, 503) and headers["content-type"].startswith("text/html")
        assert b"<html>" in body
        status, headers, body = _fault_once(faulty_sandbox, "429", "limit=14")
        assert status == 429 and "retry-after" not in headers
        assert int(headers["x-ratelimit-reset-seconds-org"]) >= 1
        assert int(headers["x-ratelimit-reset-seconds-ip"]) >= 1
        for kind in ("500", "502", "503", "504"):
            assert _fault_once(faulty_sandbox, kind, f"limit=2{kind}")[0] == int(kind)
        # The next attempt of the same request is served normally (max 1 fault in a row).
        status, _, body = _raw_get(f"{faulty_sandbox.base_url}/v2/groups?limit=11")
        assert status == 200
    finally:
        faulty_sandbox.control(fault_kinds="all", fault_rate=1.0, max_consecutive_faults=2)


def _outcomes(sandbox: SandboxProcess, paths: list[str]) -> list[str]:
    session = requests.Session()
    session.headers["x-api-key"] = "k"
    outcomes = []
    for path in paths:
        try:
            response = session.get(sandbox.base_url + path, timeout=0.3)
            outcomes.append(f"{response.status_code}:{len(response.content)}")
        except requests.RequestException as error:
            outcomes.append(type(error).__name__)
    return outcomes


def test_faults_are_reproducible_per_seed() -> None:
    paths = [f"/v2/groups?limit={n}" for n in range(1, 8) for _ in range(3)]
    options: dict[str, Any] = {"size": "tiny", "seed": 9, "fault_rate": 0.5, "slow_ms": 600}
    with SandboxProcess(**options) as first:
        run_one = _outcomes(first, paths)
    with SandboxProcess(**options) as second:
        run_two = _outcomes(second, paths)
    assert run_one == run_two
    assert any(outcome.startswith("200") for outcome in run_one)
    assert any(not outcome.startswith("200:") for outcome in run_one)
