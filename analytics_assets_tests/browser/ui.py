"""What a user does in the Dagster UI (1.13), as Playwright steps with text and role selectors.

Selectors are Dagster's visible texts, roles and accessible names (icon buttons are named by
their icon, e.g. ``settings``). Three structural hooks remain, each where no text or role
exists: ``data-tooltip`` on graph nodes (an asset's or group's full name, which the node may
truncate), ``#zoom-slider-container`` (the graph's toolbar, whose gear shares its name with the
navigation's Settings) and ``.CodeMirror`` (the asset-selection editor).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

TERMINAL_RUN_STATUSES = ("Success", "Failure", "Canceled")
RUN_STATUSES = (*TERMINAL_RUN_STATUSES, "Queued", "Not started", "Starting", "Started", "Canceling")
RUN_TOAST = re.compile(r"Launched run ([0-9a-f]{8})")
BACKFILL_TOAST = re.compile(r"Created backfill ([a-z0-9]{8})")

# What the UI keeps in localStorage: the one-time "Join the community" dialog, expanded groups
# and the facets of graph nodes. Only the dialog is preset; the rest is clicked.
DISMISS_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', '1')"


@dataclass(frozen=True)
class RunRow:
    run_id: str
    status: str
    text: str


class DagsterUI:
    """One browser page on a ``dagster dev`` webserver."""

    def __init__(self, page: Page, base_url: str, artifacts: Path) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.artifacts = artifacts
        # Should the community dialog appear anyway (e.g. a changed storage key), skip it.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").click(),
        )

    # --- navigation and artifacts ---------------------------------------------------------

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path, wait_until="domcontentloaded")
        # The app shell renders the navigation first; the content follows its own queries.
        expect(
            self.page.get_by_role("link", name=re.compile("Catalog|Overview")).first
        ).to_be_visible(timeout=60_000)

    def screenshot(self, name: str, **options: Any) -> Path:
        path = self.artifacts / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), **options)
        return path

    def body_text(self) -> str:
        return self.page.locator("body").inner_text()

    # --- the asset graph --------------------------------------------------------------------

    def _open_graph_menu(self) -> None:
        """Open the graph's settings menu (the gear at the bottom right), freshly."""
        any_item = self.page.get_by_role("menuitem", name=re.compile("all groups"))
        if any_item.is_visible():
            self.page.keyboard.press("Escape")
        expect(any_item).to_be_hidden()
        self.page.locator("#zoom-slider-container").get_by_role(
            "button", name="settings", exact=True
        ).click()
        expect(any_item).to_be_visible()

    def graph_menu(self, item: re.Pattern[str] | str) -> None:
        """Click an item of the graph's settings menu."""
        self._open_graph_menu()
        self.page.get_by_role("menuitem", name=item).click()
        self.page.keyboard.press("Escape")

    def open_global_graph(self) -> None:
        self.goto("/asset-groups")
        expect(self.page.get_by_role("button", name=re.compile("Materialize all"))).to_be_visible(
            timeout=60_000
        )

    def expand_all_groups(self) -> None:
        self._open_graph_menu()
        entry = self.page.get_by_role("menuitem", name=re.compile("(Expand|Collapse) all groups"))
        if "Expand" in entry.inner_text():
            entry.click()
        self.page.keyboard.press("Escape")

    def show_facets(self, facets: Iterable[str]) -> None:
        """Turn on node facets (Description, Owner, Freshness...) in the facets dialog."""
        self.page.locator("#zoom-slider-container").get_by_role(
            "button", name="config", exact=True
        ).click()
        dialog = self.page.get_by_role("dialog")
        expect(dialog.get_by_text("Choose Asset Facets")).to_be_visible()
        for facet in facets:
            checkbox = dialog.get_by_role("checkbox", name=facet, exact=True)
            if not checkbox.is_checked():
                dialog.get_by_text(facet, exact=True).click()
            expect(checkbox).to_be_checked()
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()

    def filter_graph(self, query: str) -> None:
        """Type an asset selection into "Search and filter assets" (a CodeMirror editor)."""
        editor = self.page.locator(".CodeMirror").first
        editor.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.press("Backspace")
        self.page.keyboard.type(query)
        self.page.keyboard.press("Enter")

    def refit_graph(self) -> None:
        """Reload the graph page (its filter is kept in the URL): the graph is fitted to the
        screen on load, so a filtered graph is drawn at a zoom that shows node details."""
        self.page.reload()
        expect(self.page.get_by_role("button", name=re.compile("Materialize all"))).to_be_visible(
            timeout=60_000
        )

    def graph_tooltips(self) -> set[str]:
        """Full names of the asset and group nodes the graph renders right now."""
        names = self.page.locator("svg foreignObject [data-tooltip]").evaluate_all(
            "els => els.map(e => e.getAttribute('data-tooltip'))"
        )
        return set(names)

    def wait_for_graph_nodes(
        self, expected: set[str], universe: set[str], timeout: float = 30.0
    ) -> set[str]:
        """Wait until the rendered nodes among ``universe`` are exactly ``expected``."""
        deadline = time.monotonic() + timeout
        shown: set[str] = set()
        while time.monotonic() < deadline:
            shown = self.graph_tooltips() & universe
            if shown == expected:
                # Layout settles in steps; make sure this is not an intermediate state.
                time.sleep(0.3)
                if self.graph_tooltips() & universe == expected:
                    return shown
            time.sleep(0.3)
        raise AssertionError(f"graph shows {sorted(shown)}, expected {sorted(expected)}")

    def wait_for_graph_statuses(
        self, materialized: int, filled: int, timeout: float = 60.0
    ) -> None:
        """Wait until the nodes show their statuses: ``materialized`` unpartitioned assets
        "Materialized", ``filled`` partitioned ones "100% filled", none "Loading…"."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.body_text()
            if (
                "Loading" not in text
                and text.count("\nMaterialized") >= materialized
                and text.count("100% filled") >= filled
            ):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"graph nodes did not show their statuses: {text.count('Materialized')}"
                    f" materialized, {text.count('100% filled')} filled"
                )
            time.sleep(1)

    # --- launching ----------------------------------------------------------------------------

    def wait_for_toast(self, pattern: re.Pattern[str], timeout: float = 60.0) -> str:
        toast = self.page.get_by_text(pattern).first
        expect(toast).to_be_visible(timeout=timeout * 1000)
        match = pattern.search(toast.inner_text())
        assert match, toast.inner_text()
        return match.group(1)

    def materialize_group(self, group: str) -> str:
        """Press "Materialize all" on an unpartitioned group's page; the run's short id."""
        self.goto(f"/locations/analytics_assets/asset-groups/{group}")
        button = self.page.get_by_role("button", name=re.compile("Materialize all"))
        expect(button).to_be_enabled(timeout=60_000)
        button.click()
        return self.wait_for_toast(RUN_TOAST)

    def open_partition_dialog(self, asset_path: str) -> Locator:
        """The asset page's "Materialize…" button: the dialog that asks for partitions."""
        self.goto(f"/assets/{asset_path}")
        self.page.get_by_role("button", name=re.compile("Materialize…")).click()
        dialog = self.page.get_by_role("dialog")
        expect(dialog.get_by_text("Partition selection")).to_be_visible(timeout=30_000)
        return dialog

    def partitions_in_dialog(self, dialog: Locator, timeout: float = 30.0) -> list[str]:
        """The partition keys the dialog offers (the dropdown of the "Custom" selection)."""
        dialog.get_by_text("Select a partition or create one").click()
        expect(self.page.get_by_placeholder("Filter partitions")).to_be_visible()
        select_all = self.page.get_by_text(re.compile(r"^Select all \(\d+\)$"))
        expect(select_all).to_be_visible(timeout=timeout * 1000)
        count = int(re.findall(r"\d+", select_all.inner_text())[0])
        labels = self.page.locator("label").filter(has=self.page.get_by_role("checkbox"))
        deadline = time.monotonic() + timeout
        while True:
            keys = [
                text.splitlines()[-1].strip()
                for text in labels.all_inner_texts()
                if text.strip() and not text.startswith(("Select all", "Backfill only"))
            ]
            if len(keys) >= count or time.monotonic() > deadline:
                return keys
            time.sleep(0.5)

    def launch_one_partition(
        self, asset_path: str, typed: str, expected: Mapping[str, str] | None = None
    ) -> str:
        """Materialize one partition through the asset's partition dialog, found by typing
        ``typed`` into its filter; the run id. With ``expected`` (id -> partition key) the
        filter must offer exactly one partition, and it must be the one of an object named
        ``typed``."""
        dialog = self.open_partition_dialog(asset_path)
        dialog.get_by_text("Select a partition or create one").click()
        self.page.get_by_placeholder("Filter partitions").fill(typed)
        offered = self.page.locator("label").filter(has=self.page.get_by_role("checkbox"))
        expect(offered.filter(has_text=typed).first).to_be_visible(timeout=30_000)
        time.sleep(0.5)  # the filter applies as typed
        keys = [
            text.splitlines()[-1].strip()
            for text in offered.all_inner_texts()
            if text.strip() and not text.startswith(("Select all", "Backfill only"))
        ]
        if expected is not None:
            named = [key for key in expected.values() if key.startswith(f"{typed} (")]
            assert keys == named and len(named) == 1, f"typing {typed!r} offered {keys}"
        self.page.locator("label").filter(has_text=keys[0]).first.click()
        self.page.keyboard.press("Escape")  # closes the dropdown, not the dialog
        expect(self.page.get_by_placeholder("Filter partitions")).to_be_hidden()
        expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
        time.sleep(0.5)  # the dropdown fades out
        self.screenshot("partition-dialog-one-partition")
        dialog.get_by_role("button", name="Launch 1 run").click()
        return self.wait_for_toast(RUN_TOAST)

    def launch_backfill_of_all(self, asset_path: str, expected_partitions: int) -> str:
        """Backfill every partition of an asset through its partition dialog; the backfill id."""
        dialog = self.open_partition_dialog(asset_path)
        dialog.get_by_role("button", name="All", exact=True).click()
        expect(dialog.get_by_text(f"{expected_partitions} partitions", exact=True)).to_be_visible()
        self.screenshot("partition-dialog-backfill")
        dialog.get_by_role("button", name="Launch backfill").click()
        return self.wait_for_toast(BACKFILL_TOAST)

    # --- following runs -----------------------------------------------------------------------

    def run_status(self) -> str | None:
        """The status tag in a run page's header."""
        tag = self.page.get_by_text(re.compile(f"^({'|'.join(RUN_STATUSES)})$")).first
        try:
            return tag.inner_text(timeout=2_000).strip()
        except Exception:
            return None

    def open_run(self, short_id: str) -> str:
        """Open a run's page from the Runs list (toasts show only a short id); its full id."""
        self.goto("/runs")
        toggle = self.page.get_by_role("checkbox", name="Show runs within backfills")
        expect(self.page.get_by_text("Show runs within backfills")).to_be_visible(timeout=60_000)
        if not toggle.is_checked():
            self.page.get_by_text("Show runs within backfills").click()
        link = self.page.get_by_role("link", name=re.compile(rf"^run {short_id}$"))
        expect(link).to_be_visible(timeout=60_000)
        link.click()
        self.page.wait_for_url(re.compile(rf"/runs/{short_id}[0-9a-f-]+"))
        expect(self.page.get_by_text(short_id).first).to_be_visible(timeout=60_000)
        return self.page.url.rsplit("/", 1)[-1]

    def wait_for_run(self, short_id: str, timeout: float = 300.0) -> str:
        """Open a run's page and wait until it shows a final status; that status."""
        self.open_run(short_id)
        deadline = time.monotonic() + timeout
        last_reload = time.monotonic()
        status = None
        while time.monotonic() < deadline:
            status = self.run_status()
            if status in TERMINAL_RUN_STATUSES:
                return status
            if time.monotonic() - last_reload > 30:  # the page is live; this is a fallback
                self.page.reload(wait_until="domcontentloaded")
                last_reload = time.monotonic()
            time.sleep(1)
        raise AssertionError(f"run {short_id} still {status!r} after {timeout:.0f}s")

    def wait_for_backfill(self, backfill_id: str, timeout: float = 300.0) -> str:
        """Open a backfill's page and wait until its status is final; that status."""
        self.goto(f"/runs/b/{backfill_id}")
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            match = re.search(r"\nStatus\n([^\n]+)\n", self.body_text())
            status = match.group(1).strip() if match else ""
            if status and status not in ("In progress", "Requested", "Canceling"):
                return status
            time.sleep(2)
            self.page.reload(wait_until="domcontentloaded")
        raise AssertionError(f"backfill {backfill_id} still {status!r} after {timeout:.0f}s")

    def runs_list(self, include_backfill_runs: bool = True) -> list[RunRow]:
        """The rows of the Runs page, newest first (backfills as one row each)."""
        self.goto("/runs")
        run_links = self.page.get_by_role("link", name=re.compile(r"^run(_with_subruns)? \w{8}$"))
        expect(run_links.first).to_be_visible(timeout=60_000)
        if include_backfill_runs:
            toggle = self.page.get_by_role("checkbox", name="Show runs within backfills")
            if not toggle.is_checked():
                self.page.get_by_text("Show runs within backfills").click()
                expect(toggle).to_be_checked()
                time.sleep(1.5)  # the list reloads with the backfills' runs
        ids = [name.split()[-1] for name in run_links.all_inner_texts()]
        # Each row reads "<id> ... <status> <created at> <duration> View" in the page text.
        text = self.body_text()
        rows = []
        for index, run_id in enumerate(ids):
            start = text.find(f"\n{run_id}\n")
            end = text.find(f"\n{ids[index + 1]}\n") if index + 1 < len(ids) else len(text)
            block = text[start:end] if start >= 0 else ""
            lines = [line.strip() for line in block.splitlines()]
            status = next((line for line in lines if line in RUN_STATUSES), "?")
            rows.append(RunRow(run_id, status, block.strip()))
        return rows

    def queue_counts(self) -> tuple[int, int]:
        """(queued, in progress) as the Runs page's tabs count them."""
        tabs = " ".join(self.page.get_by_role("tab").all_inner_texts())
        queued = re.search(r"Queued \((\d+)\)", tabs)
        running = re.search(r"In progress \((\d+)\)", tabs)
        return (int(queued.group(1)) if queued else 0, int(running.group(1)) if running else 0)

    # --- asset pages ----------------------------------------------------------------------------

    def asset_overview(self, asset_path: str) -> str:
        self.goto(f"/assets/{asset_path}")
        expect(self.page.get_by_text("Definition", exact=True).first).to_be_visible(timeout=60_000)
        return self.body_text()

    def asset_checks(self, asset_path: str, timeout: float = 30.0) -> dict[str, str]:
        """Check name -> latest status, from the asset's Checks tab."""
        self.goto(f"/assets/{asset_path}?view=checks")
        heading = self.page.get_by_text(re.compile(r"^Checks \(\d+\)$"))
        expect(heading).to_be_visible(timeout=60_000)
        expected = int(re.findall(r"\d+", heading.inner_text())[0])
        deadline = time.monotonic() + timeout
        while True:
            block = self.body_text().split("Execute all", 1)[-1]
            statuses = dict(
                re.findall(
                    r"\n([a-z0-9_]+)\n(?:\1\n)?(Succeeded|Failed|Warning|Not evaluated|Skipped"
                    r"|In progress|Execution failed)\n",
                    "\n" + block,
                )
            )
            if len(statuses) >= expected or time.monotonic() > deadline:
                return statuses
            time.sleep(0.5)

    def wait_for_partitions(self, asset_path: str, keys: Iterable[str], timeout: float) -> None:
        """Wait until an asset's Partitions tab lists all ``keys`` (reloading now and then)."""
        wanted = list(keys)
        self.goto(f"/assets/{asset_path}?view=partitions")
        deadline = time.monotonic() + timeout
        last_load = time.monotonic()
        while True:
            text = self.body_text()
            missing = [key for key in wanted if key not in text]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{asset_path} lacks partitions {missing}")
            if time.monotonic() - last_load > 10:
                self.page.reload(wait_until="domcontentloaded")
                last_load = time.monotonic()
            time.sleep(1)

    def catalog_assets(self) -> set[str]:
        """Asset keys the Catalog lists ("split / workspaces" -> "split/workspaces")."""
        self.goto("/assets")
        links = self.page.get_by_role("link", name=re.compile(r"^\w+ [/] \w+"))
        expect(links.first).to_be_visible(timeout=60_000)
        self.settle()
        hrefs = links.evaluate_all("els => els.map(e => e.getAttribute('href'))")
        return {href.split("/assets/", 1)[1].strip("/") for href in hrefs if "/assets/" in href}

    def settle(self, timeout: float = 15.0) -> None:
        """Let the page's queries finish (Dagster polls, so "idle" may not last long)."""
        with contextlib.suppress(Exception):
            self.page.wait_for_load_state("networkidle", timeout=timeout * 1000)


def dump_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))
