-- One row per matcher of a rule-based segment's rule, in the flag dialect or the docs
-- example's attribute/operator/value (contract §3.6), read into the same columns.
with rules as (
    select * from {{ ref('stg_split__rule_based_segment_rules') }}
),

matchers as (
    select
        rules.environment_id,
        rules.workspace_id,
        rules.rule_based_segment_name,
        rules.rule_index,
        matcher_index.idx as matcher_index,
        {{ json_element('rules.matchers', 'matcher_index.idx') }} as matcher
    from rules
    {{ join_json_array_indexes('rules.matchers', 'matcher_index') }}
)

select
    environment_id,
    workspace_id,
    rule_based_segment_name,
    rule_index,
    matcher_index,
    {{ matcher_columns('matcher') }}
from matchers
