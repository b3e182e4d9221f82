-- One row per targeting rule of a current definition (rules[i].condition, in order).
with definitions as (
    select * from {{ ref('stg_split__flag_definitions') }}
),

rules as (
    select
        definitions.environment_id,
        definitions.workspace_id,
        definitions.flag_id,
        rule_index.idx as rule_index,
        {{ json_element('definitions.rules', 'rule_index.idx') }} as rule
    from definitions
    {{ join_json_array_indexes('definitions.rules', 'rule_index') }}
)

select
    environment_id,
    workspace_id,
    flag_id,
    rule_index,
    {{ json_text(json_value('rule', 'condition'), 'combiner') }} as combiner,
    {{ json_array_length(json_value(json_value('rule', 'condition'), 'matchers')) }} as matcher_count,
    {{ json_array_length(json_value('rule', 'buckets')) }} as bucket_count,
    {{ json_value(json_value('rule', 'condition'), 'matchers') }} as matchers,
    {{ json_value('rule', 'buckets') }} as buckets
from rules
