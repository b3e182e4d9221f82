-- One row per key a current rule-based segment definition excludes (`excludedKeys`).
with definitions as (
    select * from {{ ref('stg_split__rule_based_segment_definitions') }}
)

select
    definitions.environment_id,
    definitions.workspace_id,
    definitions.rule_based_segment_name,
    key_index.idx as key_index,
    {{ json_text_element('definitions.excluded_keys', 'key_index.idx') }} as excluded_key
from definitions
{{ join_json_array_indexes('definitions.excluded_keys', 'key_index') }}
