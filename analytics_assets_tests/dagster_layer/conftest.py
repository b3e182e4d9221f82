"""A project synced through Dagster against a tiny sandbox, for the Dagster-layer tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions

from analytics_assets.dagster_layer.sync import SyncReport, run_sync
from analytics_assets.definitions import build_definitions
from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets.warehouse import WarehouseSettings


@dataclass
class SyncedProject:
    path: Path
    sandbox: SandboxProcess
    defs: Definitions
    report: SyncReport

    @property
    def instance(self) -> DagsterInstance:
        return DagsterInstance.get()

    @property
    def warehouse(self) -> WarehouseSettings:
        return WarehouseSettings.from_environment()


def project_environment(path: Path, sandbox: SandboxProcess) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(path / "dagster_home"),
        "ANALYTICS_DUCKDB_PATH": str(path / "warehouse.duckdb"),
        "SPLIT_API_BASE_URL": sandbox.base_url,
        "SPLIT_BACKOFF_FACTOR": "0.05",
    }


@pytest.fixture
def synced_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncedProject]:
    """A fresh sandbox and instance, fully synced through Dagster (the CLI's code path)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SPLIT_", "ANALYTICS_")):
            monkeypatch.delenv(name)
    with SandboxProcess(size="tiny") as sandbox:
        for name, value in project_environment(tmp_path, sandbox).items():
            monkeypatch.setenv(name, value)
        defs = build_definitions()
        report = run_sync(defs, progress=lambda _: None)
        yield SyncedProject(tmp_path, sandbox, defs, report)
