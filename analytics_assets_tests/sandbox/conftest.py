"""Fixtures: sandboxes started as real subprocesses and spoken to over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from analytics_assets.sandbox import SandboxProcess

API_KEY = "test-key"


class Api:
    """A thin authenticated HTTP helper for one sandbox."""

    def __init__(self, base_url: str, api_key: str = API_KEY) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.base_url + path, params=params or None, timeout=30)

    def json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, (path, params, response.status_code, response.text)
        return response.json()


@pytest.fixture(scope="session")
def tiny_sandbox() -> Iterator[SandboxProcess]:
    """A plain tiny sandbox shared by read-only tests (no faults, no limits)."""
    with SandboxProcess(size="tiny", seed=42) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def tiny_truth(tiny_sandbox: SandboxProcess) -> dict[str, Any]:
    return tiny_sandbox.ground_truth()


@pytest.fixture(scope="session")
def api(tiny_sandbox: SandboxProcess) -> Api:
    return Api(tiny_sandbox.base_url)
