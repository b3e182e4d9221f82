"""Determinism per seed, and the changes between generations of one organisation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from analytics_assets.sandbox import SandboxProcess
from analytics_assets_tests.sandbox.crawler import keyed


def _keys(truth: dict[str, Any], table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return keyed(table, truth["tables"][table]["rows"])


def test_same_seed_same_truth_other_seed_other_truth(tiny_truth: dict[str, Any]) -> None:
    with SandboxProcess(size="tiny", seed=42) as again:
        assert again.ground_truth() == tiny_truth
    with SandboxProcess(size="tiny", seed=43) as other:
        other_truth = other.ground_truth()
    assert other_truth["tables"]["workspaces"]["rows"] != tiny_truth["tables"]["workspaces"]["rows"]
    assert set(_keys(other_truth, "segments_keys")) != set(_keys(tiny_truth, "segments_keys"))
    # The layout (the edge cases) is the same; only the content differs.
    assert other_truth["minimal_requests"]["by_endpoint"]["feature_flags"] == 5


@pytest.fixture(scope="module")
def evolving_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(size="tiny", seed=42) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def generations(evolving_sandbox: SandboxProcess) -> dict[int, dict[str, Any]]:
    truths = {0: evolving_sandbox.ground_truth()}
    for generation in (1, 2):
        config = evolving_sandbox.control(generation=generation)
        assert config["generation"] == generation
        truths[generation] = evolving_sandbox.ground_truth()
    evolving_sandbox.control(generation=0)
    return truths


def test_generation_switch_is_served_and_reported(evolving_sandbox: SandboxProcess) -> None:
    evolving_sandbox.control(generation=1)
    try:
        assert evolving_sandbox.health()["generation"] == 1
        response = requests.get(
            evolving_sandbox.base_url + "/v2/workspaces", headers={"x-api-key": "k"}, timeout=10
        )
        names = {ws["name"] for ws in response.json()["objects"]}
        assert "Experimentation Lab ('25)" in names
    finally:
        evolving_sandbox.control(generation=0)
    assert evolving_sandbox.health()["generation"] == 0


def test_workspace_deleted_mid_sync_answers_404(evolving_sandbox: SandboxProcess) -> None:
    headers = {"x-api-key": "k"}
    base = evolving_sandbox.base_url
    before = requests.get(base + "/v2/workspaces", headers=headers, timeout=10).json()["objects"]
    evolving_sandbox.control(generation=1)
    try:
        after = requests.get(base + "/v2/workspaces", headers=headers, timeout=10).json()["objects"]
        (gone,) = {ws["id"] for ws in before} - {ws["id"] for ws in after}
        response = requests.get(f"{base}/v2/environments/ws/{gone}", headers=headers, timeout=10)
        assert response.status_code == 404 and response.json()["code"] == 404
    finally:
        evolving_sandbox.control(generation=0)


def test_generation_at_startup_equals_generation_switched_at_runtime(
    generations: dict[int, dict[str, Any]],
) -> None:
    with SandboxProcess(size="tiny", seed=42, generation=2) as started_late:
        assert started_late.ground_truth() == generations[2]


def test_generation_one_reshapes_workspaces(generations: dict[int, dict[str, Any]]) -> None:
    before, after = generations[0], generations[1]
    old_ws, new_ws = set(_keys(before, "workspaces")), set(_keys(after, "workspaces"))
    assert len(old_ws - new_ws) == 1, "one workspace is deleted"
    assert len(new_ws - old_ws) == 1, "one workspace is added"
    flags_before = Counter(row["workspace_id"] for row in before["tables"]["feature_flags"]["rows"])
    flags_after = Counter(row["workspace_id"] for row in after["tables"]["feature_flags"]["rows"])
    emptied = [(ws,) for (ws,) in old_ws & new_ws if flags_before[ws] > 0 and flags_after[ws] == 0]
    assert len(emptied) == 1, "one surviving workspace is left without flags"
    (deleted,) = old_ws - new_ws
    assert emptied[0] != deleted
    # It stays without flags in later generations, and is still served (with an empty page).
    flags_later = Counter(
        r["workspace_id"] for r in generations[2]["tables"]["feature_flags"]["rows"]
    )
    assert flags_later[emptied[0][0]] == 0
    assert before["minimal_requests"]["by_endpoint"]["workspaces"] == 1


@pytest.mark.parametrize(
    "table",
    [
        "feature_flags",
        "feature_flag_definitions",
        "segments",
        "environment_segments",
        "segments_keys",
        "users",
        "groups",
        "change_requests",
        "flag_sets",
        "environments",
    ],
)
def test_each_generation_adds_and_deletes(
    generations: dict[int, dict[str, Any]], table: str
) -> None:
    for older, newer in ((0, 1), (1, 2)):
        old, new = _keys(generations[older], table), _keys(generations[newer], table)
        assert set(new) - set(old), f"{table}: nothing added in generation {newer}"
        # Change requests are never deleted (they move between statuses instead), except
        # with their workspace in generation 1.
        if table != "change_requests" or newer == 1:
            assert set(old) - set(new), f"{table}: nothing deleted in generation {newer}"


def test_surviving_workspaces_lose_environments_too(generations: dict[int, dict[str, Any]]) -> None:
    old, new = generations[1], generations[2]
    surviving = set(_keys(old, "workspaces")) & set(_keys(new, "workspaces"))
    lost = [
        key
        for key in set(_keys(old, "environments")) - set(_keys(new, "environments"))
        if (key[0],) in surviving
    ]
    assert lost, "generation 2 deletes an environment of a surviving workspace"


@pytest.mark.parametrize(
    "table", ["feature_flag_definitions", "feature_flags", "users", "change_requests", "segments"]
)
def test_each_generation_edits(generations: dict[int, dict[str, Any]], table: str) -> None:
    old, new = _keys(generations[0], table), _keys(generations[1], table)
    edited = [key for key in set(old) & set(new) if old[key] != new[key]]
    assert edited, f"{table}: no record edited"


def test_definition_edits_touch_targeting_and_bump_update_time(
    generations: dict[int, dict[str, Any]],
) -> None:
    old = _keys(generations[0], "feature_flag_definitions")
    new = _keys(generations[1], "feature_flag_definitions")
    changed_fields: Counter[str] = Counter()
    for key in set(old) & set(new):
        if old[key] != new[key]:
            changed_fields.update(f for f in new[key] if old[key].get(f) != new[key].get(f))
            if old[key]["killed"] != new[key]["killed"] or old[key]["rules"] != new[key]["rules"]:
                assert new[key]["lastUpdateTime"] > old[key]["lastUpdateTime"]
    assert changed_fields["killed"] and changed_fields["lastUpdateTime"]
    assert changed_fields["rules"] or changed_fields["treatments"] or changed_fields["defaultRule"]


def test_users_change_status_and_pending_ones_appear(
    generations: dict[int, dict[str, Any]],
) -> None:
    old, new = _keys(generations[0], "users"), _keys(generations[1], "users")
    transitions = {
        (old[k]["status"], new[k]["status"]) for k in set(old) & set(new) if old[k] != new[k]
    }
    assert ("PENDING", "ACTIVE") in transitions or ("ACTIVE", "DEACTIVATED") in transitions
