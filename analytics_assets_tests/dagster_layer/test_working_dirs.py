"""dlt working folders: a live run's folder is kept, a killed run's folder is removed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from analytics_assets.dagster_layer.working_dirs import (
    remove_dead_working_dirs,
    working_root,
)

HOLD = """
import sys, time
from pathlib import Path
from analytics_assets.dagster_layer.working_dirs import owned_working_dir
with owned_working_dir(Path(sys.argv[1]), "run-live") as folder:
    (folder / "data.parquet").write_bytes(b"records")
    print(folder, flush=True)
    time.sleep(600)
"""


def test_a_live_runs_folder_is_kept_and_a_killed_runs_folder_removed(tmp_path: Path):
    root = working_root(None, tmp_path / "home")
    assert root == (tmp_path / "home" / "dlt-working").resolve()
    owner = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        folder = Path(owner.stdout.readline().strip())  # type: ignore[union-attr]
        assert folder.is_dir()
        assert remove_dead_working_dirs(root) == []  # its owner is alive
        assert (folder / "data.parquet").exists()
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        assert folder.exists()  # a kill leaves it behind ...
        assert remove_dead_working_dirs(root) == [folder]  # ... the next sync removes it
        assert not folder.exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=30)


def test_a_configured_folder_wins(tmp_path: Path):
    assert working_root(str(tmp_path / "work"), tmp_path / "home") == (tmp_path / "work").resolve()
