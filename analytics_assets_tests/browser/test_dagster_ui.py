"""Materializing from the ``dagster dev`` UI, verified in a real (headless) browser.

A user's session, clicked through Dagster's own UI against the tiny sandbox:

1. the asset graph shows the raw Split assets in their three groups, with their lineage;
2. "Materialize all" on the organisation group; the run succeeds, as its run page says;
3. the partition sensors add the workspace and environment partitions (and launch their own
   refresh runs); one workspace partition is then materialized through the partition dialog,
   and a backfill of all of them after it;
4. every run and the backfill succeed as the UI reports them, and only then (DuckDB takes one
   process at a time) the warehouse is compared with the sandbox's ground truth;
5. each asset's page shows what a user needs: description, owner, kinds, columns, the last
   materialization's row count, a passing freshness policy and passing quality checks.

Screenshots go to test-artifacts/browser/ (and, on failure, one per open page);
docs/screenshots/asset-graph.png and finished-run.png are refreshed from a passing run only
when asked (ANALYTICS_UI_DOCS_SCREENSHOTS=1): `make test` must not rewrite committed files.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from analytics_assets.dagster_layer.translator import (
    ENVIRONMENT_TABLES,
    ORGANISATION_TABLES,
    WORKSPACE_TABLES,
)
from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets.split_source import ENDPOINTS_BY_TABLE, upstream_tables
from analytics_assets.warehouse import WarehouseSettings
from analytics_assets_tests.browser.processes import PROJECT_ROOT, DagsterDev, wait_for
from analytics_assets_tests.support import assert_matches_truth, truth_partition_keys

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

# The raw assets' groups and lineage, from the definitions' own facts (the endpoint table).
GROUPS = {
    "split_organisation": ORGANISATION_TABLES,
    "split_workspace": WORKSPACE_TABLES,
    "split_environment": ENVIRONMENT_TABLES,
}
ASSETS = {table for tables in GROUPS.values() for table in tables}
# The lineage the graph must draw: each asset's direct upstream assets.
UPSTREAM = {table: set(upstream_tables(ENDPOINTS_BY_TABLE[table])) for table in ASSETS}
# The graph also holds the dbt models; the raw assets are looked at without them, so the
# nodes are large enough to carry their names.
RAW_ASSETS_QUERY = 'not kind:"dbt"'
GROUP_OF = {table: group for group, tables in GROUPS.items() for table in tables}
PARTITIONED_ASSET = "feature_flags"  # the workspace-partitioned asset launched by hand
DOCS_SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
NORMAL_VIEWPORT = {"width": 1600, "height": 1000}
# The whole graph at a zoom that still shows node details (18 raw assets): a large CSS
# viewport, rendered at 0.44 device pixels per CSS pixel into a 1920x1200 image.
GRAPH_VIEWPORT = {"width": 4400, "height": 2750}
GRAPH_SCALE = 1920 / 4400


def _new_page(browser: Any, open_pages: dict[str, Any], name: str, **context: Any) -> Any:
    from analytics_assets_tests.browser.ui import DISMISS_COMMUNITY_DIALOG

    browser_context = browser.new_context(**context)
    browser_context.add_init_script(DISMISS_COMMUNITY_DIALOG)
    browser_context.set_default_timeout(30_000)
    page = browser_context.new_page()
    open_pages[name] = page
    return page


def _log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)


def test_materialize_from_the_dagster_ui(
    dagster_dev: DagsterDev,
    ui_sandbox: SandboxProcess,
    browser: Any,
    open_pages: dict[str, Any],
    artifacts: Path,
    diagnostics: None,
) -> None:
    from analytics_assets_tests.browser.ui import DagsterUI, dump_json

    started = time.monotonic()
    truth = ui_sandbox.ground_truth()
    workspace_keys, environment_keys = truth_partition_keys(truth)
    workspace_ids = sorted(workspace_keys.values())  # partition keys: "<name> (<id>)"
    environment_ids = sorted(environment_keys.values())
    names = [row["name"] for row in truth["tables"]["workspaces"]["rows"]]
    # A name no other workspace's contains: typing it must offer that one partition only.
    workspace_name = next(n for n in names if sum(n in other for other in names) == 1)
    ui = DagsterUI(
        _new_page(browser, open_pages, "main", viewport=NORMAL_VIEWPORT),
        dagster_dev.base_url,
        artifacts,
    )
    graph = DagsterUI(
        _new_page(
            browser,
            open_pages,
            "graph",
            viewport=GRAPH_VIEWPORT,
            device_scale_factor=GRAPH_SCALE,
        ),
        dagster_dev.base_url,
        artifacts,
    )

    # 1. The asset graph: all assets in their groups, then (while the first run works) the
    # lineage of each asset. Vertical, the whole graph fits the screen with node details.
    graph.open_global_graph()
    graph.expand_all_groups()
    graph.graph_menu(re.compile("vertical orientation"))
    graph.show_facets(["Description", "Owner", "Freshness"])
    graph.open_global_graph()  # reloads: the graph is fitted to the screen on load
    graph.filter_graph(RAW_ASSETS_QUERY)
    graph.refit_graph()
    graph.wait_for_graph_nodes(ASSETS | set(GROUPS), ASSETS | set(GROUPS))
    graph.screenshot("01-asset-graph-before-materializing")
    catalog = ui.catalog_assets()
    assert {key for key in catalog if key.startswith("split/")} == {f"split/{t}" for t in ASSETS}
    _log(f"catalog and graph show the {len(ASSETS)} raw assets in their three groups", started)

    # 2. "Materialize all" on the organisation group.
    organisation_run = ui.materialize_group("split_organisation")
    _log(f"launched organisation run {organisation_run}", started)

    for table, parents in UPSTREAM.items():
        graph.filter_graph(f'1+key:"split/{table}"')
        graph.wait_for_graph_nodes({table} | parents, ASSETS)
    graph.filter_graph('key:"split/workspaces"+1')
    graph.wait_for_graph_nodes(
        {"workspaces"} | {t for t, parents in UPSTREAM.items() if "workspaces" in parents},
        ASSETS,
    )
    graph.screenshot("02-lineage-downstream-of-workspaces")
    _log(f"graph shows all {len(ASSETS)} raw assets with their upstream assets", started)

    assert ui.wait_for_run(organisation_run, timeout=300) == "Success"
    ui.screenshot("03-organisation-run-finished")
    _log("organisation run: Success", started)

    # 3. The sensors add the partitions; then one partition, then a backfill of all of them.
    ui.wait_for_partitions(f"split/{PARTITIONED_ASSET}", workspace_ids, timeout=180)
    ui.wait_for_partitions("split/segments_keys", environment_ids, timeout=180)
    dialog = ui.open_partition_dialog(f"split/{PARTITIONED_ASSET}")
    assert sorted(ui.partitions_in_dialog(dialog)) == workspace_ids
    _log("partitions added by the sensors", started)

    # A user finds a workspace's partition by typing its name into the partition filter.
    partition_run = ui.launch_one_partition(
        f"split/{PARTITIONED_ASSET}", typed=workspace_name, expected=workspace_keys
    )
    _log(f"launched run {partition_run} for workspace {workspace_name!r}", started)
    backfill = ui.launch_backfill_of_all(f"split/{PARTITIONED_ASSET}", len(workspace_ids))
    _log(f"launched backfill {backfill}", started)

    # While those runs work: the organisation assets are final, so their pages can be read.
    problems = _asset_page_problems(ui, truth, GROUPS["split_organisation"])
    _log("organisation asset pages read", started)

    # 4. Every run succeeds, as the UI shows it.
    assert ui.wait_for_run(partition_run, timeout=420) == "Success"
    ui.screenshot("04-partition-run-finished")
    assert ui.wait_for_backfill(backfill, timeout=420) == "Succeeded"
    ui.screenshot("05-backfill-finished")

    def sensor_runs_finished() -> list[Any] | None:
        rows = ui.runs_list()
        sensors = ("split_workspace_partitions", "split_environment_partitions")
        launched = [r for r in rows if any(s in r.text for s in sensors)]
        if {s for s in sensors for r in launched if s in r.text} != set(sensors):
            return None
        if ui.queue_counts() != (0, 0) or any(
            r.status not in ("Success", "Failure", "Canceled") for r in rows
        ):
            return None
        return rows

    rows = wait_for(
        sensor_runs_finished,
        timeout=300,
        interval=5,
        message="the partition sensors' runs did not finish",
    )
    ui.screenshot("06-runs")
    dump_json(artifacts / "runs.json", [r.__dict__ for r in rows])
    failed = [r for r in rows if r.status != "Success"]
    for row in failed:  # their pages (with the error) for the artifacts
        ui.open_run(row.run_id)
        ui.screenshot(f"FAILED-run-{row.run_id}", full_page=True)
    assert failed == [], "runs that did not succeed (see test-artifacts/browser/FAILED-run-*)"
    # The organisation run, two sensor runs, the partition run and the backfill's run.
    assert len(rows) >= 5, rows
    _log(f"{len(rows)} runs, all Success in the UI", started)

    # The warehouse, once nothing writes to the DuckDB file any more.
    assert dagster_dev.active_runs() == []
    assert_matches_truth(
        WarehouseSettings(duckdb_path=str(dagster_dev.duckdb_path)),
        truth,
        tables=sorted(ASSETS),
    )
    _log("warehouse matches the sandbox's ground truth", started)

    # 5. What each asset's page tells a user (the organisation's were read above).
    problems += _asset_page_problems(
        ui, truth, GROUPS["split_workspace"] + GROUPS["split_environment"]
    )
    problems += _listing_problems(ui, truth)
    assert not problems, "asset pages:\n" + "\n".join(problems)
    _log("asset pages show descriptions, owners, kinds, columns, row counts, checks", started)

    # Screenshots for the docs: the whole graph after the runs, and the first run.
    graph.open_global_graph()
    graph.filter_graph(RAW_ASSETS_QUERY)
    graph.refit_graph()
    graph.wait_for_graph_statuses(
        materialized=len(GROUPS["split_organisation"]),
        filled=len(ASSETS) - len(GROUPS["split_organisation"]),
    )
    time.sleep(1)
    graph_png = graph.screenshot("asset-graph")
    ui.open_run(organisation_run)
    assert ui.run_status() == "Success"
    time.sleep(1)
    run_png = ui.screenshot("finished-run")
    if os.environ.get("ANALYTICS_UI_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(graph_png, DOCS_SCREENSHOTS / "asset-graph.png")
        shutil.copyfile(run_png, DOCS_SCREENSHOTS / "finished-run.png")
    _log("screenshots saved", started)


def _asset_page_problems(ui: Any, truth: dict[str, Any], tables: Iterable[str]) -> list[str]:
    """Check assets' Overview and Checks tabs; a list of what is missing or wrong."""
    problems: list[str] = []
    # The freshness daemon evaluates every 30 s; give the last runs time for a first pass.
    freshness_deadline = time.monotonic() + 120
    for table in tables:
        path = f"split/{table}"
        ui.asset_overview(path)
        # The page fills in section by section: read it until it is complete (or give up).
        page_deadline = time.monotonic() + 20
        while True:
            missing = _overview_problems(ui.body_text(), table, truth)
            if not missing:
                break
            if time.monotonic() > page_deadline:
                if missing == ["freshness"] and time.monotonic() < freshness_deadline:
                    time.sleep(5)
                    ui.asset_overview(path)
                    page_deadline = time.monotonic() + 10
                    continue
                break
            time.sleep(1)
        ui.screenshot(f"asset-{table}")
        problems += [f"{path}: no {what} shown" for what in missing]
        checks = ui.asset_checks(path)
        # Every asset has a freshness check and a unique-key check; each derived table checks
        # that its rows reference an upstream table.
        required = {"freshness_check", "natural_key_unique"}
        if not required <= set(checks) or (
            UPSTREAM[table] and not any(name.startswith("references_") for name in checks)
        ):
            problems.append(
                f"{path}: checks {sorted(checks)} lack {sorted(required)} or references_*"
            )
        failed = {name: status for name, status in checks.items() if status != "Succeeded"}
        if failed:
            problems.append(f"{path}: checks not passing: {failed}")
    return problems


def _listing_problems(ui: Any, truth: dict[str, Any]) -> list[str]:
    """Partition keys are ids; the names behind them are in split/workspaces' listing."""
    problems = []
    ui.asset_overview("split/workspaces")
    names = [row["name"] for row in truth["tables"]["workspaces"]["rows"]]
    try:
        wait_for(lambda: all(name in ui.body_text() for name in names), timeout=20)
    except TimeoutError:
        problems.append(f"split/workspaces: the listing does not show the names {names}")
    return problems


def _overview_problems(text: str, table: str, truth: dict[str, Any]) -> list[str]:
    """What an asset's Overview tab does not show (yet)."""
    rows = truth["tables"][table]["count"]
    columns = text.split("Columns", 1)[-1]
    expectations = {
        "description": re.search(
            r"Description\n+.*Natural key: \(.+\)\. Source: Split Admin API, GET ", text
        ),
        "group": f"Group\n{GROUP_OF[table]}" in text,
        "owner": re.search(r"Owners\ndata-platform\n", text),
        "kinds": re.search(r"Kinds\n(dlt\nDuckDB|DuckDB\ndlt)\n", text),
        "storage": f"split.{table}" in text,
        "materialization": "Latest materialization" in text and "Never materialized" not in text,
        "row count": re.search(rf"Row count\n({rows:,}|{rows})\n", text),
        "column schema": all(
            re.search(rf"\n{column}\n", columns)
            for column in [*truth["tables"][table]["key"], "_dlt_load_id"]
        ),
        "freshness": "Freshness policy\nPassing" in text,
    }
    return [what for what, ok in expectations.items() if not ok]
