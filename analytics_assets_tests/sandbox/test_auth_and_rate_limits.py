"""Authentication (contract §1.2, §1.3) and Split-style rate limiting (contract §1.4)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from analytics_assets.sandbox import SandboxProcess

SECRET = "s3cret-admin-key"


@pytest.fixture(scope="module")
def keyed_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(size="tiny", api_key=SECRET) as sandbox:
        yield sandbox


def _get(sandbox: SandboxProcess, headers: dict[str, str]) -> requests.Response:
    return requests.get(sandbox.base_url + "/v2/workspaces", headers=headers, timeout=10)


def test_any_non_empty_key_is_accepted_by_default(tiny_sandbox: SandboxProcess) -> None:
    assert _get(tiny_sandbox, {"Authorization": "Bearer anything"}).status_code == 200
    assert _get(tiny_sandbox, {"x-api-key": "anything"}).status_code == 200
    refused = _get(tiny_sandbox, {})
    assert refused.status_code == 401 and refused.content == b""


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer wrong-{SECRET}"},
        {"x-api-key": "wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {SECRET}"},
    ],
)
def test_missing_or_wrong_key_is_401_with_empty_body(
    keyed_sandbox: SandboxProcess, headers: dict[str, str]
) -> None:
    response = _get(keyed_sandbox, headers)
    assert response.status_code == 401
    assert response.content == b""
    assert "X-RateLimit-Remaining-Org" in response.headers


def test_the_configured_key_is_accepted_in_either_header(keyed_sandbox: SandboxProcess) -> None:
    assert _get(keyed_sandbox, {"Authorization": f"Bearer {SECRET}"}).status_code == 200
    assert _get(keyed_sandbox, {"x-api-key": SECRET}).status_code == 200
    # Control routes need no key, and never echo it.
    assert requests.get(keyed_sandbox.root_url + "/_sandbox/health", timeout=10).ok
    config = keyed_sandbox.control()
    assert config["api_key_set"] is True and SECRET not in str(config)


def test_key_revoked_mid_run(keyed_sandbox: SandboxProcess) -> None:
    keyed_sandbox.control(api_key="rotated-key")
    try:
        assert _get(keyed_sandbox, {"x-api-key": SECRET}).status_code == 401
        assert _get(keyed_sandbox, {"x-api-key": "rotated-key"}).status_code == 200
        keyed_sandbox.control(api_key=None)
        assert _get(keyed_sandbox, {"x-api-key": "whatever"}).status_code == 200
    finally:
        keyed_sandbox.control(api_key=SECRET)


@pytest.fixture(scope="module")
def limited_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(size="tiny", rate_limit=3) as sandbox:
        yield sandbox


def _burst(sandbox: SandboxProcess, count: int) -> list[requests.Response]:
    session = requests.Session()
    session.headers["x-api-key"] = "k"
    return [session.get(sandbox.base_url + "/v2/groups", timeout=10) for _ in range(count)]


def test_rate_limit_headers_and_429(limited_sandbox: SandboxProcess) -> None:
    time.sleep(1.1)  # a fresh window
    limited_sandbox.reset_stats()
    responses = _burst(limited_sandbox, 8)
    statuses = [r.status_code for r in responses]
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}
    remaining = [int(r.headers["X-RateLimit-Remaining-Org"]) for r in responses[:3]]
    assert remaining == [2, 1, 0]
    assert [int(r.headers["X-RateLimit-Remaining-IP"]) for r in responses[:3]] == [2, 1, 0]
    for refused in responses[3:]:
        assert int(refused.headers["X-RateLimit-Reset-Seconds-Org"]) >= 1
        assert int(refused.headers["X-RateLimit-Reset-Seconds-IP"]) >= 1
        assert refused.headers["X-RateLimit-Remaining-Org"] == "0"
        assert refused.headers["X-RateLimit-Remaining-IP"] == "0"
        assert "Retry-After" not in refused.headers
        assert refused.json()["code"] == 429
    assert limited_sandbox.stats()["rate_limited"] == 5
    # A 429 consumes no quota: after the advertised wait the client is let through.
    wait = max(int(responses[-1].headers["X-RateLimit-Reset-Seconds-Org"]), 1)
    time.sleep(wait + 0.05)
    assert [r.status_code for r in _burst(limited_sandbox, 3)] == [200, 200, 200]


def test_retry_after_only_with_the_option(limited_sandbox: SandboxProcess) -> None:
    limited_sandbox.control(retry_after=True)
    try:
        time.sleep(1.1)
        refused = _burst(limited_sandbox, 4)[-1]
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
    finally:
        limited_sandbox.control(retry_after=False)


def test_unlimited_sandbox_still_sends_remaining_headers(tiny_sandbox: SandboxProcess) -> None:
    response = _get(tiny_sandbox, {"x-api-key": "k"})
    assert int(response.headers["X-RateLimit-Remaining-Org"]) > 1000
    assert int(response.headers["X-RateLimit-Remaining-IP"]) > 1000
    assert "X-RateLimit-Reset-Seconds-Org" not in response.headers
