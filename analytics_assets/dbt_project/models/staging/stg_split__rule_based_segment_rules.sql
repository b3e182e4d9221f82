-- One row per rule of a current rule-based segment definition (rules[i].condition; these
-- rules have no buckets, unlike flag rules).
with definitions as (
    select * from {{ ref('stg_split__rule_based_segment_definitions') }}
),

rules as (
    select
        definitions.environment_id,
        definitions.workspace_id,
        definitions.rule_based_segment_name,
        rule_index.idx as rule_index,
        {{ json_element('definitions.rules', 'rule_index.idx') }} as rule
    from definitions
    {{ join_json_array_indexes('definitions.rules', 'rule_index') }}
)

select
    environment_id,
    workspace_id,
    rule_based_segment_name,
    rule_index,
    {{ json_text(json_value('rule', 'condition'), 'combiner') }} as combiner,
    {{ json_array_length(json_value(json_value('rule', 'condition'), 'matchers')) }} as matcher_count,
    {{ json_value(json_value('rule', 'condition'), 'matchers') }} as matchers
from rules
