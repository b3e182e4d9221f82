"""Filesystem failures as sentences: a folder that cannot be created or written, a file where
a folder belongs, a full disk.

Where the project writes (the Dagster instance folder, the DuckDB file's folder) is checked
before a sync starts; a disk that fills up during a sync is recognised in the exception that
reaches the run or the CLI, whichever library raised it (Python, DuckDB, SQLite), and told with
the system's own reason, the place and what to do.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

from analytics_assets.split_source.errors import SplitConfigurationError

# The system's reasons, as Python, DuckDB and SQLite word them.
_REASONS = {
    errno.ENOSPC: ("No space left on device", "database or disk is full"),
    errno.EROFS: ("Read-only file system",),
    errno.EACCES: ("Permission denied",),
    errno.EDQUOT: ("Disk quota exceeded",),
    errno.ENOTDIR: ("Not a directory",),
    errno.EIO: ("disk I/O error", "Input/output error"),  # SQLite says this of a full disk too
}
_WHAT_TO_DO = {
    errno.ENOSPC: "Free space on that device, or move it to one with room",
    errno.EDQUOT: "Free space within the quota, or move it to another device",
    errno.EROFS: "Point it at a writable folder",
    errno.EACCES: "Give this user write access, or point it at a folder it owns",
    errno.ENOTDIR: "Point it at a folder, or move the file that is in the way",
    errno.EIO: "Check that the device has free space and is healthy",
}


def check_writable_folder(folder: Path, what: str, setting: str) -> None:
    """Create ``folder`` if missing and prove a file can be written in it; else a sentence."""
    folder = folder.expanduser()
    named = f"{what[0].upper()}{what[1:]} {folder} ({setting})"
    if folder.exists() and not folder.is_dir():
        raise SplitConfigurationError(
            f"{named} is a file, not a folder. Point {setting} at a folder (it is created when"
            " missing)."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in folder.parents if p.exists() and not p.is_dir()), folder)
        raise SplitConfigurationError(
            f"{named} cannot be created: {blocking} is a file, not a folder. Point {setting}"
            " elsewhere, or move that file."
        ) from None
    except OSError as exc:
        raise SplitConfigurationError(_sentence(exc, f"{what} {folder} ({setting})")) from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".analytics-assets-probe-"):
            pass
    except OSError as exc:
        raise SplitConfigurationError(_sentence(exc, f"{what} {folder} ({setting})")) from None


def _sentence(exc: OSError, where: str) -> str:
    code = exc.errno if exc.errno in _WHAT_TO_DO else errno.EACCES
    reason = exc.strerror or os.strerror(code)
    return f"Cannot write to {where}: {reason}. {_WHAT_TO_DO[code]}."


def storage_failure(exc: BaseException, where: str) -> str | None:
    """A sentence for a filesystem failure anywhere in ``exc``'s chain, or None.

    ``where`` says during what or to what (``"during the load"``, ``"to the Dagster
    instance (DAGSTER_HOME)"``). The library's own message is kept whole: it names the file
    it could not write.
    """
    # The innermost error that says it: outer ones (dlt's) repeat it amid their own advice.
    for error in reversed(_chain(exc)):
        code = error.errno if isinstance(error, OSError) else None
        text = _without_traceback(" ".join(str(error).split()))
        if code not in _REASONS:
            code = next((c for c, words in _REASONS.items() if any(w in text for w in words)), None)
        if code is not None:
            return (
                f"A write failed {where}: {text.rstrip('.')}. {_WHAT_TO_DO[code]}, then run the"
                " sync again; the tables keep their last complete load."
            )
    return None


def _without_traceback(text: str) -> str:
    """A message that quotes another program's traceback (dbt's log does) keeps what the
    traceback ends with, the error itself: "OSError: [Errno 28] No space left on device"."""
    if "Traceback (most recent call last)" not in text:
        return text
    before = text.split("Traceback (most recent call last)", 1)[0].rstrip(" :")
    errors = re.findall(r"\b\w*(?:Error|Exception): \[Errno \d+\] [^.]*", text)
    return f"{before}: {errors[-1]}" if errors else before


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (dlt wraps its steps' errors; ``exception`` is dlt's link)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return seen
