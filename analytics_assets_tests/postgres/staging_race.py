"""Two scoped loads into one Postgres dataset, interleaved at dlt's merge (a test worker).

dlt loads a merge table into ``<dataset>_staging.<table>`` first (truncating it at the start of
each load), then runs one SQL merge: delete the destination scope, insert the staging rows.
Two concurrent runs that load the same table share that staging table unless each names its
own staging dataset. This worker reproduces the interleaving deterministically with files as a
barrier:

1. run A has staged its rows and is about to merge: it waits;
2. run B truncates the staging table, stages its own rows and waits before its merge;
3. A merges (deleting its scope and inserting what the staging table now holds: B's rows);
4. B merges.

    python -m analytics_assets_tests.postgres.staging_race ROLE BASE_URL WORKSPACE KNOWN DSN
        DATASET BARRIER

ROLE is ``A``, ``B`` or ``serial`` (no pausing). KNOWN is every workspace id, comma-separated.
The staging dataset name comes from dlt configuration
(``DESTINATION__POSTGRES__STAGING_DATASET_NAME_LAYOUT``), which the test sets per case.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

TABLE = "feature_flags"
WAIT_SECONDS = 120.0


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {path.name}")
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    role, base_url, workspaces, known, dsn, dataset, barrier = argv
    import dlt
    from dlt.destinations.sql_jobs import SqlMergeFollowupJob

    from analytics_assets.libpq_postgres import DESTINATION_NAME, libpq_postgres
    from analytics_assets.split_source import SplitSettings, SyncScope, split_source

    marks = Path(barrier)
    original = SqlMergeFollowupJob.from_table_chain.__func__  # type: ignore[attr-defined]

    def merge_after_barrier(cls, table_chain, sql_client):  # type: ignore[no-untyped-def]
        # dlt builds the merge job once the table's staging load has completed.
        if table_chain[0]["name"] == TABLE and role == "A":
            (marks / "a_staged").touch()
            _wait_for(marks / "b_staged")
        elif table_chain[0]["name"] == TABLE and role == "B":
            (marks / "b_staged").touch()
            _wait_for(marks / "a_merged")
        return original(cls, table_chain, sql_client)

    SqlMergeFollowupJob.from_table_chain = classmethod(merge_after_barrier)  # type: ignore[assignment]
    if role == "B":
        _wait_for(marks / "a_staged")
    source = split_source(
        SplitSettings(api_key="staging-race-key", base_url=base_url, backoff_factor=0.05),
        SyncScope(
            workspace_ids=tuple(workspaces.split(",")),
            known_workspace_ids=tuple(known.split(",")),
        ),
    ).with_resources(TABLE)
    pipeline = dlt.pipeline(
        pipeline_name="split",
        # a DSN as users write it (password optional), configured as dlt's `postgres`
        destination=libpq_postgres(dsn, destination_name=DESTINATION_NAME),
        dataset_name=dataset,
        pipelines_dir=str(marks / f"pipelines_{role}"),
    )
    pipeline.run(source)
    if role == "A":
        (marks / "a_merged").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
