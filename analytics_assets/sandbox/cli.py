"""Command line for the sandbox: ``python -m analytics_assets.sandbox [options]``.

On start it prints exactly one line to stdout (flushed), which :class:`SandboxProcess` and
scripts parse (shown wrapped here)::

    Sandbox Split Admin API serving at http://HOST:PORT/internal/api
        (size=..., seed=..., generation=...)

SIGINT and SIGTERM stop it cleanly (exit status 0). API keys are never logged: uvicorn's
access log shows paths only and no headers are logged.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
import uvicorn.config

from analytics_assets.sandbox.app import SandboxState, create_app
from analytics_assets.sandbox.config import (
    DRIFT_KINDS,
    FAULT_KINDS,
    ConfigError,
    SandboxConfig,
    parse_drift,
    parse_fault_cap,
    parse_fault_kinds,
)
from analytics_assets.sandbox.endpoints import API_PREFIX
from analytics_assets.sandbox.forms import FORM_OPTIONS, ServedForms
from analytics_assets.sandbox.gateway import IntentionalDropFilter
from analytics_assets.sandbox.sizes import SIZES

BANNER = (
    "Sandbox Split Admin API serving at {url} (size={size}, seed={seed}, generation={generation})"
)

logger = logging.getLogger("analytics_assets.sandbox")


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options to ``parser`` (also used by the project's main CLI)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)"
    )
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="demo", help="organisation size (default demo)"
    )
    parser.add_argument("--seed", type=int, default=42, help="data seed (default 42)")
    parser.add_argument(
        "--generation",
        type=int,
        default=0,
        help="data generation: later states of the same organisation (default 0)",
    )
    parser.add_argument(
        "--api-key", default=None, help="accept only this API key (default: any non-empty key)"
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=0,
        help="requests per second per Org and per IP bucket; 0 = unlimited",
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="latency added to every API response"
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of API requests that fail transiently (0..1)",
    )
    parser.add_argument(
        "--fault-kinds",
        default="all",
        help=f"comma-separated subset of {','.join(FAULT_KINDS)} (default all)",
    )
    parser.add_argument(
        "--slow-ms", type=int, default=5000, help="delay of the 'slow' fault (default 5000)"
    )
    parser.add_argument(
        "--retry-after", action="store_true", help="also send Retry-After with 429 answers"
    )
    parser.add_argument(
        "--harness-mode",
        action="store_true",
        help="refuse /users and /groups with 403, like an account migrated to Harness",
    )
    parser.add_argument(
        "--drift",
        default="",
        help=f"schema drift of feature-flag records: comma-separated subset of"
        f" {','.join(DRIFT_KINDS)} (default none)",
    )
    served = ServedForms()
    for option in FORM_OPTIONS:
        default = getattr(served, option.name)
        parser.add_argument(
            "--" + option.name.replace("_", "-"),
            choices=option.choices,
            default=default,
            help=f"{option.help} (default {default})",
        )
    parser.add_argument(
        "--max-consecutive-faults",
        type=parse_fault_cap,
        default=None,
        help="faults in a row per request fingerprint at most (default: no cap; each attempt"
        " fails with the fault rate, as on a real network)",
    )
    parser.add_argument(
        "--stall-ms",
        type=int,
        default=600_000,
        help="how long the 'stall' fault holds the body back (default 600000)",
    )
    parser.add_argument(
        "--incident-seconds",
        type=float,
        default=0.0,
        help="start with an incident: every API request fails for this many seconds",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (default info)",
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The sandbox configuration the parsed options describe."""
    return SandboxConfig(
        size=args.size,
        seed=args.seed,
        generation=args.generation,
        api_key=args.api_key or None,
        rate_limit=args.rate_limit or None,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        fault_kinds=parse_fault_kinds(args.fault_kinds),
        slow_ms=args.slow_ms,
        retry_after=args.retry_after,
        harness_mode=args.harness_mode,
        max_consecutive_faults=args.max_consecutive_faults,
        stall_ms=args.stall_ms,
        incident_until=time.time() + args.incident_seconds if args.incident_seconds > 0 else 0.0,
        drift=parse_drift(args.drift),
        forms=ServedForms(**{option.name: getattr(args, option.name) for option in FORM_OPTIONS}),
    )


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints the banner once it accepts connections."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(self.banner, flush=True)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a caught SIGINT/SIGTERM after shutting down, which turns a clean
        # stop into a KeyboardInterrupt or a signal exit status; forget them instead.
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, but all of it on stderr: stdout carries only the banner."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for handler in config["handlers"].values():
        handler["stream"] = "ext://sys.stderr"
    return config


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def run_sandbox(args: argparse.Namespace) -> int:
    """Build the organisation, bind, serve until SIGINT/SIGTERM; the exit status."""
    try:
        config = config_from_args(args)
    except ConfigError as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    started = time.perf_counter()
    state = SandboxState(config)
    logger.info(
        "Built %s organisation (seed %s, generation %s) in %.2f s",
        config.size,
        config.seed,
        config.generation,
        time.perf_counter() - started,
    )
    try:
        sock = _bind(args.host, args.port)
    except OSError as error:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    banner = BANNER.format(
        url=f"http://{shown_host}:{port}{API_PREFIX}",
        size=config.size,
        seed=config.seed,
        generation=config.generation,
    )
    server = _AnnouncingServer(
        uvicorn.Config(
            create_app(state=state),
            log_level=args.log_level,
            log_config=_log_config(),
            timeout_graceful_shutdown=3,
            lifespan="off",
        ),
        banner,
    )
    logging.getLogger("uvicorn.error").addFilter(IntentionalDropFilter())
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analytics_assets.sandbox",
        description="A local fake of the Split.io / Harness FME Admin API.",
    )
    add_sandbox_arguments(parser)
    return run_sandbox(parser.parse_args(argv))
