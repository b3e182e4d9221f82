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


def _start_together(script: str, count: int, tmp_path: Path, env: dict[str, str]) -> list[str]:
    """Run ``count`` children of ``script`` released at one instant; their outputs, once all
    exited 0."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(count)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(flag), str(go)],
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
    assert not Path(env["DAGSTER_HOME"]).exists()  # nobody has opened the instance yet
    go.touch()
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [child.returncode for child in children] == [0] * count, outputs
    return outputs


def test_concurrent_first_open_leaves_one_schema_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _start_together(CHILD, OPENERS, tmp_path, {**os.environ, "DAGSTER_HOME": str(home)})

    for database in sorted(home.rglob("*.db")):
        with sqlite3.connect(database) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            if "alembic_version" in tables:
                versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
                assert len(versions) == 1, f"{database.name}: {versions}"
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs() == []


PARSERS = 4

# The same start line for the models' manifest: each child makes it (``dbt parse`` on a new
# instance) and reads it back as dagster-dbt does when the code location loads.
MANIFEST_CHILD = """
import sys, time
from pathlib import Path
from dagster_dbt.dbt_manifest import validate_manifest
from analytics_assets.dagster_layer.models import dbt_project
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
manifest = validate_manifest(dbt_project().manifest_path)
assert manifest["nodes"], "an empty manifest"
"""


def test_processes_starting_at_once_on_a_new_instance_each_read_a_whole_manifest(
    tmp_path: Path,
) -> None:
    """Two syncs (or a sync and `dagster dev`) started together on a new instance both parse
    the dbt project; a process once read the other's half-written manifest.json and died with
    a JSON traceback (CI, test_two_clis_at_once_one_refuses)."""
    home = tmp_path / "home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    _start_together(MANIFEST_CHILD, PARSERS, tmp_path, env)
    # Nothing of the private parse folders is left beside the target.
    assert sorted(p.name for p in (home / "dbt").iterdir()) == ["target"]
