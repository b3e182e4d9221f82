"""The deployment files (deploy/): what can be checked without Docker or a cluster.

- The Dockerfile: its build context holds every COPY source, it installs the pinned set with
  the postgres extra, and its command serves this code location (checked by serving it).
- The Helm values: valid YAML, only keys the chart's values schema (dagster 1.13) defines, and
  the same concurrency limits as the instance file.
- The code location with the production instance file on a real Postgres (marked postgres).
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from analytics_assets.dagster_layer.stopping import STOP_DEADLINE_SECONDS
from analytics_assets_tests.postgres.conftest import (
    DEPLOY_INSTANCE_YAML,
    REPO_ROOT,
    PostgresDatabase,
    clean_environment,
    postgres_instance_home,
)

DEPLOY = REPO_ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
VALUES = DEPLOY / "helm" / "values.yaml"
GRPC_COMMAND = [
    "dagster", "api", "grpc", "-m", "analytics_assets.definitions", "-h", "0.0.0.0", "-p", "3030",
]  # fmt: skip

# Keys of the dagster/dagster chart's values that these values use, from the chart's values
# schema (helm/dagster/schema, pydantic models, dagster 1.13): anything else is a typo that the
# chart would reject (its models forbid extra keys) or, worse, silently ignore.
CHART_TOP_LEVEL = {
    "global", "dagsterWebserver", "dagster-user-deployments", "postgresql",
    "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
    "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
    "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount",
    "retention", "concurrency", "additionalInstanceConfig",
}  # fmt: skip
USER_DEPLOYMENT_KEYS = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations",
    "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName", "initContainers", "sidecarContainers", "deploymentStrategy",
}  # fmt: skip
K8S_RUN_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
}  # fmt: skip
CONCURRENCY_KEYS = {"enabled": None, "pools": {"defaultLimit", "granularity",
                    "opGranularityRunBuffer"}, "runs": {"maxConcurrentRuns",
                    "tagConcurrencyLimits"}}  # fmt: skip
POSTGRESQL_KEYS = {
    "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
    "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
}  # fmt: skip


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _exec_form(arguments: str) -> list[str]:
    return yaml.safe_load(arguments)  # a JSON array is valid YAML


def test_dockerfile_copies_what_the_build_context_holds_and_installs_the_pinned_set():
    instructions = _instructions()
    assert instructions[0][0] == "FROM"
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert copies
    for args in copies:
        *sources, _destination = shlex.split(args)
        for source in sources:
            assert not source.startswith("--"), "no --from stages: one self-contained image"
            assert (REPO_ROOT / source).exists(), f"COPY source {source} is not in the context"
    run = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert 'pip install -c constraints.txt ".[postgres]"' in run
    # The package data the code location needs at run time is what the COPY brings.
    assert (REPO_ROOT / "analytics_assets" / "dagster_layer" / "dagster.yaml").exists()
    environment = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "RUNTIME__DLTHUB_TELEMETRY=false" in environment
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in environment
    user = [args for keyword, args in instructions if keyword == "USER"]
    assert user and user[-1] not in ("root", "0")
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".git", "data", "*.duckdb", ".dagster_home"} <= set(ignored)


def test_dockerfile_command_is_the_grpc_code_server_of_this_code_location():
    instructions = _instructions()
    assert not [args for keyword, args in instructions if keyword == "ENTRYPOINT"], (
        "the K8sRunLauncher runs `dagster api execute_run` in this image: no ENTRYPOINT"
    )
    commands = [_exec_form(args) for keyword, args in instructions if keyword == "CMD"]
    assert commands[-1] == GRPC_COMMAND
    assert ("EXPOSE", "3030") in instructions
    # Every option of the command exists in the installed dagster.
    help_text = subprocess.run(
        [sys.executable, "-m", "dagster", "api", "grpc", "--help"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    for option in ("--module-name", "--host", "--port"):
        assert option in help_text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve_and_check(env: dict[str, str], cwd: Path) -> None:
    """Start the image's command (on a free local port) and ask it for its health."""
    port = _free_port()
    command = [sys.executable, "-m", *GRPC_COMMAND[:-4], "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            health = subprocess.run(
                [sys.executable, "-m", "dagster", "api", "grpc-health-check", "-p", str(port)],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if health.returncode == 0:
                break
            if server.poll() is not None:
                pytest.fail(f"the code server exited: {server.communicate()[1][-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the code server did not report SERVING within 120s")
            time.sleep(1)
        from dagster._grpc.client import DagsterGrpcClient
        from dagster._serdes import deserialize_value

        answer = DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories()
        loaded = deserialize_value(answer) if isinstance(answer, str) else answer
        symbols = getattr(loaded, "repository_symbols", None)
        assert symbols, f"the code server loaded no code location: {loaded!r}"[:3000]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def test_the_image_command_serves_the_code_location(tmp_path: Path):
    env = clean_environment(DAGSTER_HOME=str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    _serve_and_check(env, tmp_path)


def test_helm_values_use_only_chart_keys_and_match_the_image_and_instance():
    values = yaml.safe_load(VALUES.read_text())
    assert set(values) <= CHART_TOP_LEVEL, set(values) - CHART_TOP_LEVEL

    user_code = values["dagster-user-deployments"]
    assert user_code["enabled"] and user_code["enableSubchart"]
    (deployment,) = user_code["deployments"]
    assert set(deployment) <= USER_DEPLOYMENT_KEYS, set(deployment) - USER_DEPLOYMENT_KEYS
    # The chart runs `dagster api grpc -h 0.0.0.0 -p <port>` + dagsterApiGrpcArgs: the
    # image's own command, on the image's port.
    assert ["dagster", "api", "grpc", *deployment["dagsterApiGrpcArgs"]] == [
        a for a in GRPC_COMMAND if a not in ("-h", "0.0.0.0", "-p", "3030")
    ]
    assert deployment["port"] == 3030
    assert deployment["image"]["tag"] not in ("", "latest")
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["ANALYTICS_DESTINATION"] == "postgres"
    assert "SPLIT_API_KEY" not in env, "the key comes from a Secret, never from values"
    secrets = [s["name"] for s in deployment["envSecrets"]]
    assert "split-api" in secrets and "analytics-warehouse" in secrets

    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    assert set(k8s) <= K8S_RUN_LAUNCHER_KEYS, set(k8s) - K8S_RUN_LAUNCHER_KEYS
    assert [s["name"] for s in k8s["envSecrets"]] == secrets
    # Kubernetes SIGKILLs a run pod this long after SIGTERM; a stop needs at most this long.
    grace = k8s["runK8sConfig"]["podSpecConfig"]["terminationGracePeriodSeconds"]
    assert grace >= 2 * STOP_DEADLINE_SECONDS

    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    # The chart fails when limits are set both here and under `concurrency`.
    assert not coordinator["config"]["queuedRunCoordinator"]

    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert set(concurrency) <= set(CONCURRENCY_KEYS)
    for section in ("pools", "runs"):
        assert set(concurrency[section]) <= CONCURRENCY_KEYS[section]
    instance = yaml.safe_load(DEPLOY_INSTANCE_YAML.read_text())["concurrency"]
    pools, runs = concurrency["pools"], concurrency["runs"]
    assert pools["defaultLimit"] == instance["pools"]["default_limit"]
    assert pools["granularity"] == instance["pools"]["granularity"]
    assert pools["opGranularityRunBuffer"] == instance["pools"]["op_granularity_run_buffer"]
    assert runs["maxConcurrentRuns"] == instance["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == instance["runs"]["tag_concurrency_limits"]
    # The rate budget: pool limit x per-run pacing stays within ~3 requests/s per org, the
    # conservative figure for Split's unpublished org limit (shared/split-admin-api.md §1.4).
    per_run = float(env["SPLIT_MAX_REQUESTS_PER_SECOND"])
    assert pools["defaultLimit"] * per_run <= 3.0

    postgresql = values["postgresql"]
    assert set(postgresql) <= POSTGRESQL_KEYS
    assert postgresql["postgresqlScheme"] == "postgresql+psycopg2"
    assert postgresql["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["telemetry"] == {"enabled": False}


@pytest.mark.postgres
def test_code_location_loads_with_the_production_instance_on_postgres(
    postgres_database: PostgresDatabase, tmp_path: Path
):
    """What a user-code pod does on start: load the definitions, with Dagster on Postgres."""
    home = postgres_instance_home(tmp_path / "dagster_home")
    env = clean_environment(
        ANALYTICS_DESTINATION="postgres",
        DESTINATION__POSTGRES__CREDENTIALS=postgres_database.dlt_credentials,
        SPLIT_API_KEY="not-a-real-key",
        DAGSTER_HOME=str(home),
        **postgres_database.dagster_environment(),
    )
    validate = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate",
         "-m", "analytics_assets.definitions"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert validate.returncode == 0, validate.stdout + validate.stderr
    # The production code location puts every load in the API pool, not DuckDB's writer pool.
    probe = subprocess.run(
        [sys.executable, "-c",
         "from dagster import AssetsDefinition\n"
         "from analytics_assets.definitions import build_definitions\n"
         "assets = [a for a in build_definitions().assets if isinstance(a, AssetsDefinition)]\n"
         "print({a.op.pool for a in assets if a.op.name.startswith('split_')})"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert probe.stdout.strip().splitlines()[-1] == "{'split_api'}", probe.stderr
    _serve_and_check(env, tmp_path)
    # The instance the pods share (what the chart's migration job and the daemon open).
    info = subprocess.run(
        [sys.executable, "-m", "dagster", "instance", "info"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    for storage in ("PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"):
        assert storage in info.stdout
    assert postgres_database.query("SELECT count(*) FROM runs") == [(0,)]


@pytest.mark.postgres
def test_ci_start_script_is_a_no_op_when_the_server_is_up(postgres_server: PostgresDatabase):
    script = REPO_ROOT / ".ci" / "start-postgres.sh"
    for _ in range(2):  # idempotent
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        if postgres_server.port == 5432 and postgres_server.host in ("127.0.0.1", "localhost"):
            assert "already accepting connections" in result.stdout
