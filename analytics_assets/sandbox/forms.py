"""The documented forms of the newer endpoints (contract §3.4–§3.6), each one selectable.

The sources disagree on envelopes, timestamp forms, the case of ``dataType``, field names
and tag shapes, and the real API may serve any of them; so the sandbox serves whichever form
a setting chooses, and the ground truth shows the records in that form. ``FORM_OPTIONS`` is
the single list of these settings: the config, the control route, the command line and
:class:`~analytics_assets.sandbox.process.SandboxProcess` all read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FormOption:
    """One selectable served form: its choices and why it exists (defaults: ServedForms)."""

    name: str
    choices: tuple[str, ...]
    help: str


FORM_OPTIONS: tuple[FormOption, ...] = (
    FormOption(
        "attributes_envelope",
        ("objects", "data", "array"),
        "§3.4 attributes with paginate=true: `objects` + markers (as HGO decodes), `data` +"
        " markers (Split's other cursor endpoints), or `array` = only the legacy bare array"
        " (paging parameters ignored); without paginate=true the legacy array is served always",
    ),
    FormOption(
        "attribute_data_type",
        ("upper", "lower", "null"),
        "§3.4 attribute `dataType`: upper case (request bodies), lower case (TF/HGO comments),"
        " or null for every attribute (implicitly created attributes)",
    ),
    FormOption(
        "large_segments_envelope",
        ("array", "offset"),
        "§3.5 workspace list of large segments: bare array (PY, HGO) or offset envelope (docs)",
    ),
    FormOption(
        "environment_large_segments_envelope",
        ("array", "offset"),
        "§3.5 environment list of large segments: bare array or offset envelope",
    ),
    FormOption(
        "large_segment_tags",
        ("names", "urns", "null"),
        "§3.5 large segment `tags`: [{name}] (PY), [{id,type,name}] (HGO), or null everywhere",
    ),
    FormOption(
        "large_segments_plan",
        ("included", "paywalled"),
        "§3.5 `paywalled`: both large segment endpoints answer 402 'Forbidden by Paywalls'",
    ),
    FormOption(
        "rule_based_segments_envelope",
        ("array", "objects", "offset"),
        "§3.6 workspace list of rule-based segments: bare array (observed), the whole list in"
        " `{objects}`, or an offset envelope {objects, offset, limit, totalCount}",
    ),
    FormOption(
        "rule_based_segment_definitions_envelope",
        ("array", "objects", "offset"),
        "§3.6 environment list of rule-based segments: bare array (observed live), `{objects}`"
        " (documented), or an offset envelope",
    ),
    FormOption(
        "rule_based_segment_traffic_type",
        ("id", "object"),
        "§3.6 `trafficTypeId` + `trafficTypeURN` (HGO) or a `trafficType {id, name}` (PY)",
    ),
    FormOption(
        "rule_based_segment_matchers",
        ("flag", "docs"),
        "§3.6 matchers of rule-based segment rules: the flag-definition dialect (type,"
        " attribute, string/strings/number…; PY, HGO) or the docs example's attribute/operator/"
        "value (LDM)",
    ),
    FormOption(
        "rule_based_segment_timestamps",
        ("epoch", "iso"),
        "§3.6 epoch-ms `creationTime` (PY, HGO list) or ISO-8601 `createdAt`/`updatedAt`"
        " (HGO environment fixture)",
    ),
)
FORM_OPTIONS_BY_NAME: dict[str, FormOption] = {option.name: option for option in FORM_OPTIONS}


class FormError(ValueError):
    """A form setting names no documented form; the message lists the choices."""


@dataclass(frozen=True)
class ServedForms:
    """Which documented form each newer endpoint serves (see ``FORM_OPTIONS``)."""

    attributes_envelope: str = "objects"
    attribute_data_type: str = "upper"
    large_segments_envelope: str = "array"
    environment_large_segments_envelope: str = "array"
    large_segment_tags: str = "names"
    large_segments_plan: str = "included"
    rule_based_segments_envelope: str = "array"
    rule_based_segment_definitions_envelope: str = "array"
    rule_based_segment_traffic_type: str = "id"
    rule_based_segment_timestamps: str = "epoch"
    rule_based_segment_matchers: str = "flag"

    def __post_init__(self) -> None:
        for option in FORM_OPTIONS:
            value = getattr(self, option.name)
            if value not in option.choices:
                raise FormError(
                    f"{option.name} must be one of {', '.join(option.choices)}, got {value!r}"
                )

    @property
    def large_segments_paywalled(self) -> bool:
        return self.large_segments_plan == "paywalled"

    def with_changes(self, changes: Mapping[str, Any]) -> ServedForms:
        return dataclasses.replace(self, **{name: str(value) for name, value in changes.items()})

    def public(self) -> dict[str, str]:
        return dataclasses.asdict(self)
