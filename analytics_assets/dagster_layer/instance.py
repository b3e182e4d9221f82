"""The persistent Dagster instance the CLI and ``dagster dev`` share.

``DAGSTER_HOME`` is honoured; without it the project keeps its instance in ``./.dagster_home``
so runs started by ``analytics-assets sync`` show up in ``analytics-assets dev``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dagster import DagsterInstance

DEFAULT_HOME = ".dagster_home"
TEMPLATE = Path(__file__).with_name("dagster.yaml")


def ensure_instance_home() -> Path:
    """Create the instance home (with the shipped dagster.yaml) and export DAGSTER_HOME."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(TEMPLATE, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> DagsterInstance:
    ensure_instance_home()
    return DagsterInstance.get()
