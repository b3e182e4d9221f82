"""The newer endpoints' tables, and the sandbox form settings that cover every served form.

Shared by the sandbox's tests (each form is served as the contract says) and the source's
(each form is read exactly).
"""

NEW_TABLES = (
    "attributes",
    "rule_based_segments",
    "rule_based_segment_definitions",
    "large_segments",
    "environment_large_segments",
)

# Every choice of every form setting appears in at least one of these (the sandbox's tests
# check that), so the source is tried against each form the contract allows.
VARIANTS: tuple[dict[str, str], ...] = (
    {},
    {
        "attributes_envelope": "data",
        "attribute_data_type": "lower",
        "large_segments_envelope": "offset",
        "environment_large_segments_envelope": "offset",
        "large_segment_tags": "urns",
        "rule_based_segments_envelope": "offset",
        "rule_based_segment_definitions_envelope": "objects",
        "rule_based_segment_traffic_type": "object",
        "rule_based_segment_timestamps": "iso",
    },
    {
        "attributes_envelope": "array",
        "attribute_data_type": "null",
        "large_segment_tags": "null",
        "rule_based_segments_envelope": "objects",
        "rule_based_segment_definitions_envelope": "offset",
        "rule_based_segment_matchers": "docs",
    },
    {"large_segments_plan": "paywalled"},
)
