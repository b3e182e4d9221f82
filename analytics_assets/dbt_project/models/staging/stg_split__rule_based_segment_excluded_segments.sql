-- One row per segment a current rule-based segment definition excludes (`excludedSegments
-- [{name, type}]`; type `standard_segment` or `rule_based_segment`, contract §3.6).
with definitions as (
    select * from {{ ref('stg_split__rule_based_segment_definitions') }}
),

excluded as (
    select
        definitions.environment_id,
        definitions.workspace_id,
        definitions.rule_based_segment_name,
        segment_index.idx as excluded_segment_index,
        {{ json_element('definitions.excluded_segments', 'segment_index.idx') }} as excluded_segment
    from definitions
    {{ join_json_array_indexes('definitions.excluded_segments', 'segment_index') }}
)

select
    environment_id,
    workspace_id,
    rule_based_segment_name,
    excluded_segment_index,
    {{ json_text('excluded_segment', 'name') }} as excluded_segment_name,
    {{ json_text('excluded_segment', 'type') }} as excluded_segment_type
from excluded
