"""Transient faults are survived: every run ends with every table equal to the ground truth.

Each case is a fresh project against a sandbox injecting one kind of fault (or all of them),
synced through a real entry point: ``analytics-assets sync`` in a subprocess, or the Dagster
jobs in-process (``run_sync``, the code path the CLI and the UI share). The retry settings are
the production defaults (20 retries, 60 s read timeout) except where a case is about them;
the backoff factor is shortened (0.05 s) to keep the suite fast, and cases with stalled or
dripping bodies shorten the whole-request deadline (a stall costs the deadline). A 429 always
waits what the server's reset headers say, whatever the backoff factor. Faults have no cap on
how often one request fails in a row (the sandbox's default, as on a real network).

``test_an_api_incident_with_production_defaults`` takes every setting at its default: the API
answers nothing but errors for over two minutes, and the sync rides it out.
"""

from __future__ import annotations

import time

import pytest
import requests
from dagster import AssetKey

from analytics_assets_tests.reliability.harness import duplicate_keys, server_faults

pytestmark = pytest.mark.slow

CASES = {
    # name: (sandbox options, environment, entry point)
    "no faults (reference)": ({}, {}, "cli"),
    "429 storms, reset headers only": (
        {"fault_kinds": "429", "fault_rate": 0.06, "rate_limit": 25},
        {},
        "cli",
    ),
    "HTTP 500/502/503/504": ({"fault_kinds": "500,502,503,504", "fault_rate": 0.3}, {}, "dagster"),
    "connections dropped mid-body": ({"fault_kinds": "drop", "fault_rate": 0.3}, {}, "dagster"),
    "responses slower than the timeout": (
        {"fault_kinds": "slow", "fault_rate": 0.05, "slow_ms": 3500},
        {"SPLIT_REQUEST_TIMEOUT": "2"},
        "cli",
    ),
    "truncated and HTML (proxy) bodies": (
        {"fault_kinds": "truncated,html", "fault_rate": 0.3},
        {},
        "dagster",
    ),
    "wrong-shaped 200s (message, null, records key missing, object for list)": (
        {"fault_kinds": "shape", "fault_rate": 0.3},
        {},
        "dagster",
    ),
    "bodies that stall after the headers or drip a byte a second": (
        {"fault_kinds": "stall,drip", "fault_rate": 0.05},
        {"SPLIT_REQUEST_DEADLINE": "3"},
        "cli",
    ),
    "all of them mixed, 20 %, no cap on faults in a row": (
        {"fault_kinds": "all", "fault_rate": 0.2, "slow_ms": 3500, "rate_limit": 30},
        {"SPLIT_REQUEST_TIMEOUT": "2", "SPLIT_REQUEST_DEADLINE": "4"},
        "cli",
    ),
}

INCIDENT_SECONDS = 130
OUTAGE_KINDS = "500,502,503,504,drop,html,shape"
"""What an outage answers: errors, cut connections, proxy pages, wrong bodies."""


def _probe_429_headers(base_url: str, sandbox):  # type: ignore[no-untyped-def]
    """A real 429 from the sandbox's limiter: which headers does it carry?"""
    sandbox.control(rate_limit=1, fault_rate=0)
    try:
        for _ in range(5):
            answer = requests.get(
                base_url + "/v2/workspaces", headers={"x-api-key": "probe"}, timeout=10
            )
            if answer.status_code == 429:
                return answer.headers  # case-insensitive
        raise AssertionError("the sandbox never rate-limited the probe")
    finally:
        time.sleep(1.1)  # let the one-second window pass


@pytest.mark.parametrize("case", list(CASES))
def test_transient_faults_end_in_exact_tables(case, make_project, figures):
    options, env, entry = CASES[case]
    project = make_project(**options)
    sandbox = project.sandbox
    if "429" in case:
        headers = _probe_429_headers(sandbox.base_url, sandbox)
        assert "X-RateLimit-Reset-Seconds-Org" in headers and "Retry-After" not in headers
        sandbox.control(
            rate_limit=options.get("rate_limit"), fault_rate=options.get("fault_rate", 0)
        )
    truth = sandbox.ground_truth()
    sandbox.reset_stats()

    started = time.monotonic()
    if entry == "cli":
        result = project.cli("sync", **env)
        assert result.returncode == 0, str(result)
        assert "Traceback" not in result.stderr
        numbers = result.summary
        requests_made, retries, rate_limited = (
            numbers["requests"],
            numbers["retries"],
            numbers["rate_limited"],
        )
    else:
        report = project.sync_in_process(**env)
        requests_made, retries, rate_limited = report.requests, report.retries, report.rate_limited
        # The counters are where the UI shows them: each scope's load on its partition's
        # materialization, the run's totals on the run's closing one.
        with project.instance() as instance:
            records = instance.fetch_materializations(
                AssetKey(["split", "segments_keys"]), limit=1000
            ).records
            last_run = records[0].run_id
            in_run = [r.asset_materialization.metadata for r in records if r.run_id == last_run]
            summaries = [m for m in in_run if "split/run_summary" in m]
            scopes = [m for m in in_run if "split/run_summary" not in m]
            assert summaries and scopes
            scope_counters = {
                "split/scope_retries",
                "split/scope_requests",
                "split/scope_rate_limited",
            }
            assert all(scope_counters <= set(m) for m in scopes)
            run_requests = {m["split/run_requests"].value for m in summaries}
            assert run_requests == {sum(m["split/scope_requests"].value for m in scopes)}
    seconds = time.monotonic() - started

    # Exact: the same keys, no duplicates, every field of every record.
    assert project.diffs(truth) == []
    assert duplicate_keys(project.duckdb_path) == {}
    faults = server_faults(sandbox)
    minimal = truth["minimal_requests"]["total"]
    if options:
        assert sum(faults.values()) > 0, "the sandbox injected no fault"
        # 429s with a reset time are flow control: waited out, no retry used
        assert (rate_limited if "429" in case else retries) > 0
    # Retries and the requests a 429 sent back (flow control, not a retry) are the only extra
    # requests: no page was fetched twice, none was skipped.
    assert requests_made - retries - rate_limited == minimal
    # and the client's counters are honest: the server saw them (a retry on a connection
    # that died before reaching it is the only way to see fewer).
    assert requests_made - retries <= sandbox.stats()["requests_total"] <= requests_made
    if "429" in case:
        assert rate_limited > 0
    figures.add(
        "transient",
        case,
        "analytics-assets sync" if entry == "cli" else "Dagster in-process (run_sync)",
        "exact tables",
        requests=requests_made,
        minimal_requests=minimal,
        retries=retries,
        rate_limited=rate_limited,
        faults_injected=faults,
        seconds=round(seconds, 1),
    )


def test_an_api_incident_with_production_defaults(make_project, figures):
    """Every request fails for over two minutes, then the API recovers: with every setting at
    its default (backoff included), the sync waits it out and ends exact."""
    project = make_project(fault_kinds=OUTAGE_KINDS)
    sandbox = project.sandbox
    truth = sandbox.ground_truth()
    sandbox.reset_stats()
    sandbox.control(incident_seconds=INCIDENT_SECONDS)
    started = time.monotonic()
    result = project.cli("sync", SPLIT_BACKOFF_FACTOR=None, timeout=1200)
    seconds = time.monotonic() - started
    assert result.returncode == 0, str(result)
    assert "Traceback" not in result.stderr
    assert seconds >= INCIDENT_SECONDS  # it did meet the incident, and outlasted it
    assert project.diffs(truth) == []
    assert duplicate_keys(project.duckdb_path) == {}
    numbers = result.summary
    minimal = truth["minimal_requests"]["total"]
    assert numbers["requests"] - numbers["retries"] - numbers["rate_limited"] == minimal
    figures.add(
        "transient",
        f"an API incident: every request fails for {INCIDENT_SECONDS} s (production defaults)",
        "analytics-assets sync",
        "exact tables",
        requests=numbers["requests"],
        minimal_requests=minimal,
        retries=numbers["retries"],
        rate_limited=numbers["rate_limited"],
        faults_injected=server_faults(sandbox),
        seconds=round(seconds, 1),
    )
