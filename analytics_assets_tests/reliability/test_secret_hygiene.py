"""Secret hygiene: the API key of every run in this suite appears in no output at all.

Every run of the suite (transient and persistent faults, kills, bad configuration, drift,
concurrency) used one distinctive key, ``sk-RELIABILITY-<32 hex>``. After all of them, the
key is searched for in:

- the stdout/stderr of every CLI run, and this process's own output and log records;
- every file the runs left: each project's Dagster instance (SQLite storages, with every
  value read and zlib snapshots unpacked; logs; compute logs), DuckDB warehouse (raw bytes,
  every string column of every table, dlt's compressed pipeline state unpacked), dlt working
  folders left behind by killed runs (gzip files unpacked), sandbox logs;
- what the Dagster UI shows for every run: run config, tags, job and plan snapshots, event
  log;
- dlt's folders outside the projects: its default pipelines folder, ~/.dlt, /var/dlt and
  this machine's temporary ``analytics-assets-*`` folders;
- the resource as the UI shows it (``EnvVar`` name, never the value).

``test_no_secret_anywhere`` runs last (see conftest). Run alone, it makes its own runs first.
"""

from __future__ import annotations

import gzip
import sqlite3
import zlib
from pathlib import Path

import duckdb
import pytest
from dlt.common.versioned_state import compress_state

from analytics_assets_tests.reliability.harness import (
    SecretScan,
    global_dlt_locations,
)


def test_the_scan_finds_a_planted_secret(tmp_path: Path, secret: str):
    """The scanner is not vacuous: it finds the key hidden in each kind of file."""
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "plain.log").write_text(f"Authorization: Bearer {secret}\n")
    (planted / "job.insert_values.gz").write_bytes(gzip.compress(secret.encode()))
    with sqlite3.connect(planted / "runs.db") as con:
        con.execute("CREATE TABLE snapshots (body BLOB)")
        con.execute("INSERT INTO snapshots VALUES (?)", [zlib.compress(secret.encode())])
    with duckdb.connect(str(planted / "w.duckdb")) as con:
        con.execute("CREATE TABLE _dlt_pipeline_state (state VARCHAR)")
        con.execute("INSERT INTO _dlt_pipeline_state VALUES (?)", [compress_state({"k": secret})])
    scan = SecretScan(secret)
    scan.path(planted)
    found = " | ".join(scan.hits)
    for where in (
        "plain.log",
        "job.insert_values.gz (decompressed)",
        "runs.db:snapshots (decompressed)",
        "w.duckdb dlt pipeline state",
    ):
        assert where in found, found


def _own_runs(make_project, secret: str) -> None:  # type: ignore[no-untyped-def]
    """When run alone: a successful sync, a failing one (key refused), an in-process one."""
    project = make_project()
    assert project.cli("sync").returncode == 0
    project.sync_in_process()
    refused = make_project("refused", api_key="not-" + secret[:8])
    assert refused.cli("sync").returncode == 1


@pytest.mark.slow
def test_no_secret_anywhere(ledger, secret, figures, make_project, work_root):
    if not any(path.is_relative_to(work_root) for path in ledger.paths):
        _own_runs(make_project, secret)

    scan = SecretScan(secret)
    for label, text in ledger.texts:
        scan.text(label, text)
    scan.path(work_root)
    homes = sorted({p.parent for p in work_root.rglob("dagster.yaml")})
    for home in homes:
        scan.instance_runs(home)
    outside = global_dlt_locations()
    for location in outside:
        scan.path(location)

    # The resource as the UI shows it: the variable's name, not its value.
    from analytics_assets_tests.reliability.harness import Project

    with Project(work_root / "resource-check", None, secret).environment():
        from analytics_assets.definitions import build_definitions

        split_api = build_definitions().resources["split_api"]
        assert split_api.api_key.env_var_name == "SPLIT_API_KEY"
        scan.text("the split_api resource", repr(split_api))

    assert scan.hits == []
    assert scan.texts > 0 and scan.files > 0 and scan.runs > 0
    figures.add(
        "secrets",
        "distinctive key searched in every output",
        "all runs of the suite",
        "0 occurrences",
        outputs=scan.texts,
        files=scan.files,
        megabytes=round(scan.bytes / 1e6, 1),
        sqlite_values=scan.sqlite_values,
        duckdb_values=scan.duckdb_values,
        dagster_runs=scan.runs,
        instances=len(homes),
        outside_locations=len(outside),
        dlt_folders_left_by_killed_runs=len(list(work_root.rglob("dlt-working/run-*"))),
    )
