"""Stopping a sync on SIGTERM or SIGINT: promptly, with every lock, slot and run closed.

A signal reaches one of two places:

- ``analytics-assets sync`` (``StoppableSync``) runs the sync in a worker thread and keeps the
  main thread for signals. Dagster and dlt replace signal handlers only on the main thread,
  so the handler here always runs. The first signal marks the sync's runs in progress as
  canceling, cancels every ``Cancellation`` of the process (the client stops its waits and
  closes its requests), and waits up to ``STOP_GRACE_SECONDS`` for the sync to end. Whatever
  is still unfinished then (a request the client cannot interrupt, a load still running) is
  marked canceled and its pool slots freed, and the process exits. A second signal skips the
  wait. The sync lock and the DuckDB writer lock are flock locks: they end with the process.
- a Dagster run worker (a UI "Terminate", a Kubernetes pod's SIGTERM): ``cancel_on_interrupt``
  chains a handler before Dagster's own, so the run's ``Cancellation`` is cancelled before
  Dagster raises its interrupt into the step.

A stop never leaves a partial table: dlt replaces each table (with its child tables) in one
transaction at the end of its load, so a table is either as before or completely loaded.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from analytics_assets.split_source.cancellation import Cancellation, cancel_all

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_SECONDS = 4.0
"""How long a stopped sync may take to end by itself before its runs are closed for it."""
CLOSE_SECONDS = 2.0
"""Bound on each piece of bookkeeping after a stop (marking runs, exit handlers): with the
grace period, a stop ends the process within 10 s (4 + 3 x 2) whatever is stuck."""
STOP_DEADLINE_SECONDS = STOP_GRACE_SECONDS + 3 * CLOSE_SECONDS
"""The longest a stop takes, from the signal to the exit (docs/production.md)."""

T = TypeVar("T")

_stop = threading.Event()
_stop_signal: list[int] = []


class SyncStopped(Exception):
    """The sync was stopped by a signal; the message says what was kept."""

    def __init__(self, message: str, signum: int, ended_by_itself: bool = True) -> None:
        super().__init__(message)
        self.signum = signum
        self.ended_by_itself = ended_by_itself

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def request_stop(signum: int) -> None:
    """Record a stop for this process and cancel every sync's requests and waits."""
    if not _stop.is_set():
        _stop_signal.append(signum)
        _stop.set()
    cancel_all(f"stopped by {signal_name(signum)}")


def stop_requested() -> bool:
    return _stop.is_set()


def raise_if_stopping() -> None:
    """Between runs: start no new run once a stop was requested."""
    if _stop.is_set():
        signum = _stop_signal[0] if _stop_signal else signal.SIGTERM
        raise SyncStopped(f"The sync was stopped by {signal_name(signum)}.", signum)


def cancel_if_stopping(cancellation: Cancellation) -> None:
    """A run that starts after the stop was requested is cancelled from its first request."""
    if _stop.is_set():
        signum = _stop_signal[0] if _stop_signal else signal.SIGTERM
        cancellation.cancel(f"stopped by {signal_name(signum)}")


@contextmanager
def cancel_on_interrupt(cancellation: Cancellation) -> Iterator[None]:
    """In a run worker's main thread: SIGINT/SIGTERM cancel this run's requests first, then
    reach the handler that was there before (Dagster's, which raises its interrupt).

    Off the main thread (the CLI runs its sync in a worker thread) nothing is installed: the
    CLI's own handler cancels every Cancellation of the process.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        cancellation.cancel(f"stopped by {signal_name(signum)}")
        before = previous.get(signum)
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            if before is not None:
                signal.signal(signum, before)


def exit_on_next_signal(code: int) -> None:
    """While a stopped process winds down: another SIGINT/SIGTERM ends it at once."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: os._exit(code))


def clear_stop() -> None:
    """Forget a handled stop, for a process that carries on afterwards (tests do)."""
    _stop.clear()
    _stop_signal.clear()


def _bounded(work: Callable[[], Any], seconds: float) -> None:
    """Run bookkeeping in a daemon thread and give up waiting after ``seconds``."""
    thread = threading.Thread(target=work, name="analytics-assets-stop", daemon=True)
    thread.start()
    thread.join(seconds)


def run_exit_handlers(seconds: float = CLOSE_SECONDS) -> None:
    """The process's exit handlers (temporary folders), bounded: before an ``os._exit``,
    which a stopped sync needs because threads stuck on a request would block a normal exit."""
    _bounded(atexit._run_exitfuncs, seconds)


@dataclass
class StoppableSync:
    """Runs a sync in a worker thread; SIGINT/SIGTERM stop it within the grace period."""

    open_instance: Callable[[], DagsterInstance]
    runs_filter: Callable[[], RunsFilter]
    grace_seconds: float = STOP_GRACE_SECONDS
    exit_on_further_signal: bool = False
    """After a stop, keep SIGINT/SIGTERM ending the process at once (the CLI, which is
    stopping) instead of giving back the handlers that were there before."""
    signals_received: list[int] = field(default_factory=list)
    closed_runs: list[str] = field(default_factory=list)
    ended_by_itself: bool = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only noted here; the main loop marks the runs canceling first, then cancels, so
        # that Dagster records the runs it ends as CANCELED rather than FAILURE.
        self.signals_received.append(signum)

    def run(self, work: Callable[[], T]) -> T:
        """``work()``'s result or exception; ``SyncStopped`` after a signal."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["result"] = work()
            except BaseException as exc:  # handed to the main thread as it is
                outcome["error"] = exc

        thread = threading.Thread(target=target, name="analytics-assets-sync", daemon=True)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            thread.start()
            while thread.is_alive() and not self.signals_received:
                thread.join(0.1)
            if not self.signals_received:
                if "error" in outcome:
                    raise outcome["error"]
                return outcome["result"]
            _bounded(lambda: self._mark(DagsterRunStatus.CANCELING), CLOSE_SECONDS)
            request_stop(self.signals_received[0])
            deadline = time.monotonic() + self.grace_seconds
            while thread.is_alive() and time.monotonic() < deadline:
                if len(self.signals_received) > 1:
                    break  # a second signal: stop at once
                thread.join(0.1)
            self.ended_by_itself = not thread.is_alive()
            _bounded(lambda: self._mark(DagsterRunStatus.CANCELED), CLOSE_SECONDS)
            raise self._stopped(outcome)
        finally:
            if self.signals_received and self.exit_on_further_signal:
                exit_on_next_signal(128 + self.signals_received[0])
            else:
                for signum, before in previous.items():
                    if before is not None:
                        signal.signal(signum, before)

    def _stopped(self, outcome: dict[str, Any]) -> SyncStopped:
        signum = self.signals_received[0]
        name = signal_name(signum)
        if "result" in outcome:
            what = "It had loaded everything before it stopped."
        else:
            what = (
                "What it loaded is kept, and every workspace's and environment's rows are a"
                " complete load, never half-written; run `analytics-assets sync` again to"
                " finish (it fetches only what is left)."
            )
        canceled = (
            f" {len(self.closed_runs)} run(s) in progress were marked canceled."
            if self.closed_runs
            else ""
        )
        message = f"The sync was stopped by {name}.{canceled} {what}"
        return SyncStopped(message, signum, self.ended_by_itself)

    def _mark(self, status: DagsterRunStatus) -> None:
        """Runs of this sync still in progress: canceling (first), canceled (at the end)."""
        by = signal_name(self.signals_received[0])
        message = f"The analytics-assets sync was stopped by {by}."
        instance = self.open_instance()
        try:
            for record in instance.get_run_records(self.runs_filter()):
                run = record.dagster_run
                if status == DagsterRunStatus.CANCELING:
                    instance.report_run_canceling(run, message)
                    continue
                instance.report_run_canceled(run, message)
                if instance.event_log_storage.supports_global_concurrency_limits:
                    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
                self.closed_runs.append(run.run_id)
        finally:
            instance.dispose()
