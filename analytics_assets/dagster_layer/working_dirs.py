"""dlt's working folders: under the instance home (or a configured folder), not shared temp.

A run's dlt folder holds extracted Split records (user names and e-mails included) until its
packages are loaded. It lives under ``<DAGSTER_HOME>/dlt-working`` (or
``ANALYTICS_WORKING_DIR``), so it has the instance's permissions and lifetime, not those of a
shared temporary folder. Its owner holds an exclusive ``flock`` on a file inside it for as
long as it works there; a killed process loses the lock with its life, so the next sync can
tell a dead run's folder from a live one (on this host or another sharing the folder) and
remove it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORKING_DIR_NAME = "dlt-working"
OWNER_LOCK = ".owner.lock"


def working_root(configured: str | None, instance_home: str | os.PathLike[str]) -> Path:
    """Where dlt's per-run folders go: the configured folder, else the instance home's."""
    root = Path(configured).expanduser() if configured else Path(instance_home) / WORKING_DIR_NAME
    return root.resolve()


@contextmanager
def owned_working_dir(root: Path, name: str) -> Iterator[Path]:
    """A folder for one run's dlt work, locked while in use and removed afterwards."""
    if not root.exists():
        root.mkdir(parents=True, mode=0o700)  # Split data: only the instance's user reads it
    folder = root / f"{name}-{os.getpid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    with open(folder / OWNER_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def remove_dead_working_dirs(root: Path) -> list[Path]:
    """Remove the folders whose owner is gone (killed, crashed); live runs keep theirs."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if _owner_alive(folder):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _owner_alive(folder: Path) -> bool:
    lock_path = folder / OWNER_LOCK
    try:
        handle = open(lock_path)  # noqa: SIM115 - closed below, after the probe
    except FileNotFoundError:
        # Being created this instant (the lock file comes right after the folder), or left by
        # a process killed in between: judge it by age so a starting run is not disturbed.
        try:
            return folder.stat().st_mtime > time.time() - 60
        except FileNotFoundError:
            return True
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
