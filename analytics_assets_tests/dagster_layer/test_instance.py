"""Processes opening a fresh instance home at once leave it usable.

Dagster's SQLite schedule storage stamps its schema version without a guard against another
process doing the same; a lost race leaves two version rows and the home can never be opened
again. Two ``analytics-assets sync`` started together by cron on a new machine hit exactly that.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance

OPENERS = 8

# Each child imports everything first, says it is ready, waits for the start file, then opens
# the instance the way the CLI does: the opens race each other, not the imports.
CHILD = """
import sys, time
from pathlib import Path
from analytics_assets.dagster_layer.instance import get_instance
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
get_instance().dispose()
"""


def test_concurrent_first_open_leaves_one_schema_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    go = tmp_path / "go"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    ready = [tmp_path / f"ready-{n}" for n in range(OPENERS)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(flag), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready):
        assert all(child.poll() is None for child in children), "a child exited before the start"
        assert time.monotonic() < deadline, "children did not get ready"
        time.sleep(0.05)
    assert not home.exists()  # nobody has opened the instance yet
    go.touch()
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0] * OPENERS, outputs

    for database in sorted(home.rglob("*.db")):
        with sqlite3.connect(database) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            if "alembic_version" in tables:
                versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
                assert len(versions) == 1, f"{database.name}: {versions}"
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs() == []
