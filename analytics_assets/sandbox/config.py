"""Runtime configuration of the sandbox: data selection, auth, rate limits and faults.

Everything but ``size``, ``seed`` and ``slow_ms`` can also be changed while the server runs,
through ``POST /_sandbox/control`` (see :meth:`SandboxConfig.with_changes`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analytics_assets.sandbox.forms import FORM_OPTIONS_BY_NAME, ServedForms
from analytics_assets.sandbox.sizes import SIZES

FAULT_KINDS: tuple[str, ...] = (
    "500",
    "502",
    "503",
    "504",
    "429",
    "drop",
    "slow",
    "truncated",
    "html",
    "shape",
    "stall",
    "drip",
)
"""Transient failures the sandbox can inject; see :mod:`analytics_assets.sandbox.faults`."""

DRIFT_KINDS: tuple[str, ...] = ("new_field", "type_change")
"""Schema drift the sandbox can apply to feature-flag records (contract §2.4):

* ``new_field``: every record gains ``releaseChannel`` (a string), a field the API never sent;
* ``type_change``: ``creationTime`` is served as an ISO-8601 string instead of epoch millis.
"""

CONTROLLABLE = (
    "generation",
    "api_key",
    "rate_limit",
    "latency_ms",
    "fault_rate",
    "fault_kinds",
    "slow_ms",
    "retry_after",
    "max_consecutive_faults",
    "harness_mode",
    "drift",
    "stall_ms",
    "incident_seconds",
    *FORM_OPTIONS_BY_NAME,
)
"""Settings ``POST /_sandbox/control`` accepts (the form settings by their own names)."""


class ConfigError(ValueError):
    """A setting has a value the sandbox cannot use; the message names the setting."""


@dataclass(frozen=True)
class SandboxConfig:
    """All sandbox settings. Frozen: a change produces a new config object."""

    size: str = "tiny"
    seed: int = 42
    generation: int = 0
    api_key: str | None = field(default=None, repr=False)
    """Only this key is accepted when set; any non-empty key when None."""
    rate_limit: int | None = None
    """Requests per second allowed in each of the Org and IP buckets; None or 0 = unlimited."""
    latency_ms: int = 0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    slow_ms: int = 5000
    retry_after: bool = False
    """Also send `Retry-After` with 429s (not documented by Split, contract §1.4)."""
    max_consecutive_faults: int | None = None
    """Faults in a row per request at most; None: no cap, as on a real network (a request
    can fail any number of times in a row, with probability fault_rate each time)."""
    stall_ms: int = 600_000
    """How long the 'stall' fault holds a response after its headers (then it hangs up)."""
    incident_until: float = 0.0
    """Wall-clock time (epoch seconds) until which every API request fails: an incident.
    Set through ``incident_seconds`` (CLI option or control), which starts one now."""
    harness_mode: bool = False
    """Behave like an account migrated to Harness: /users and /groups are refused (403).
    Contract §1.2 says they "will not function" there; the exact error is undocumented."""
    drift: tuple[str, ...] = ()
    """Schema drift applied to what is served (and to the ground truth); see DRIFT_KINDS."""
    forms: ServedForms = field(default_factory=ServedForms)
    """Which documented form the newer endpoints serve (and the ground truth shows)."""

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")
        if self.generation < 0:
            raise ConfigError(f"generation must be 0 or more, got {self.generation}")
        if self.api_key is not None and not self.api_key:
            raise ConfigError("api_key must be a non-empty string or null")
        if self.rate_limit is not None and self.rate_limit < 0:
            raise ConfigError(f"rate_limit must be 0 or more, got {self.rate_limit}")
        if self.latency_ms < 0 or self.slow_ms < 0:
            raise ConfigError("latency_ms and slow_ms must be 0 or more")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigError(f"fault_rate must be between 0 and 1, got {self.fault_rate}")
        unknown = [kind for kind in self.fault_kinds if kind not in FAULT_KINDS]
        if unknown or not self.fault_kinds:
            raise ConfigError(
                f"fault_kinds must be a non-empty subset of {', '.join(FAULT_KINDS)}; "
                f"unknown: {', '.join(unknown) or 'none given'}"
            )
        if self.max_consecutive_faults is not None and self.max_consecutive_faults < 0:
            raise ConfigError("max_consecutive_faults must be 0 or more, or null for no cap")
        if self.stall_ms < 0:
            raise ConfigError("stall_ms must be 0 or more")
        unknown_drift = [kind for kind in self.drift if kind not in DRIFT_KINDS]
        if unknown_drift:
            raise ConfigError(
                f"drift must be a subset of {', '.join(DRIFT_KINDS)}; "
                f"unknown: {', '.join(unknown_drift)}"
            )

    @property
    def effective_rate_limit(self) -> int | None:
        """The per-second limit, or None when unlimited (0 means unlimited too)."""
        return self.rate_limit or None

    def with_changes(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """A new config with ``changes`` applied; unknown or invalid settings raise ConfigError."""
        unknown = sorted(set(changes) - set(CONTROLLABLE))
        if unknown:
            raise ConfigError(
                f"cannot change {', '.join(unknown)}; settable: {', '.join(CONTROLLABLE)}"
            )
        values = {k: v for k, v in changes.items() if k not in FORM_OPTIONS_BY_NAME}
        form_changes = {k: v for k, v in changes.items() if k in FORM_OPTIONS_BY_NAME}
        try:
            if form_changes:
                values["forms"] = self.forms.with_changes(form_changes)
            if "generation" in values:
                values["generation"] = int(values["generation"])
            for name in ("latency_ms", "slow_ms", "stall_ms"):
                if name in values:
                    values[name] = int(values[name])
            if "max_consecutive_faults" in values:
                values["max_consecutive_faults"] = parse_fault_cap(values["max_consecutive_faults"])
            if "incident_seconds" in values:
                seconds = float(values.pop("incident_seconds"))
                values["incident_until"] = time.time() + seconds if seconds > 0 else 0.0
            if "rate_limit" in values and values["rate_limit"] is not None:
                values["rate_limit"] = int(values["rate_limit"])
            if "fault_rate" in values:
                values["fault_rate"] = float(values["fault_rate"])
            if "fault_kinds" in values:
                values["fault_kinds"] = parse_fault_kinds(values["fault_kinds"])
            if "drift" in values:
                values["drift"] = parse_drift(values["drift"])
            for flag in ("retry_after", "harness_mode"):
                if flag in values:
                    values[flag] = bool(values[flag])
            if "api_key" in values and values["api_key"] is not None:
                values["api_key"] = str(values["api_key"])
        except (TypeError, ValueError) as error:
            raise ConfigError(f"invalid control value: {error}") from None
        return dataclasses.replace(self, **values)

    def public(self) -> dict[str, Any]:
        """The settings as JSON, with the API key reduced to whether one is set."""
        settings = dataclasses.asdict(self)
        settings.pop("api_key")
        settings["api_key_set"] = self.api_key is not None
        settings["fault_kinds"] = list(self.fault_kinds)
        settings["drift"] = list(self.drift)
        settings.pop("forms")
        settings.update(self.forms.public())
        return settings


def parse_fault_kinds(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Fault kinds from a comma-separated string or a list; None or "all" means every kind."""
    if value is None:
        return FAULT_KINDS
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return FAULT_KINDS
        value = [part for part in value.split(",")]
    kinds = tuple(str(part).strip() for part in value if str(part).strip())
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown:
        raise ConfigError(
            f"unknown fault kinds {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}"
        )
    return kinds


def parse_fault_cap(value: object) -> int | None:
    """A cap on consecutive faults: a number, or None / "none" / -1 for no cap."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    cap = int(value)  # type: ignore[call-overload]
    return None if cap < 0 else cap


def parse_drift(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Drift kinds from a comma-separated string or a list; None, "" or "none" means none."""
    if value is None:
        return ()
    if isinstance(value, str):
        if value.strip().lower() in ("", "none"):
            return ()
        value = value.split(",")
    return tuple(dict.fromkeys(str(part).strip() for part in value if str(part).strip()))
