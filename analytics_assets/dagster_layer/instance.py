"""The persistent Dagster instance the CLI and ``dagster dev`` share.

``DAGSTER_HOME`` is honoured; without it the project keeps its instance in ``./.dagster_home``
so runs started by ``analytics-assets sync`` show up in ``analytics-assets dev``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from dagster import DagsterInstance

DEFAULT_HOME = ".dagster_home"
TEMPLATE = Path(__file__).with_name("dagster.yaml")
INIT_LOCK = ".instance-init.lock"


def instance_home_path() -> Path:
    """The instance home: DAGSTER_HOME, else ``./.dagster_home``."""
    return Path(os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).expanduser().resolve()


def ensure_instance_home() -> Path:
    """Create the instance home (with the shipped dagster.yaml) and export DAGSTER_HOME."""
    home = instance_home_path()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # Write then rename, so a concurrent reader never sees a half-written file.
        partial = config.with_name(f".dagster.yaml.{os.getpid()}")
        shutil.copyfile(TEMPLATE, partial)
        partial.replace(config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> DagsterInstance:
    """The instance, its storage created under a host-wide lock.

    Dagster's SQLite schedule storage creates its tables and stamps its schema version without
    guarding against another process doing the same: two processes opening a fresh home at
    once (two cron syncs, or a sync and ``dagster dev``) can leave two version rows, and every
    later open of that home then fails. One process at a time initialises; opening an
    existing home under the lock costs milliseconds.
    """
    home = ensure_instance_home()
    with open(home / INIT_LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return DagsterInstance.get()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
