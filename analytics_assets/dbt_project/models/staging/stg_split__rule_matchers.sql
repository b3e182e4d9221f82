-- One row per matcher of a targeting rule (rules[i].condition.matchers[j]).
with rules as (
    select * from {{ ref('stg_split__definition_rules') }}
),

matchers as (
    select
        rules.environment_id,
        rules.workspace_id,
        rules.flag_id,
        rules.rule_index,
        matcher_index.idx as matcher_index,
        {{ json_element('rules.matchers', 'matcher_index.idx') }} as matcher
    from rules
    {{ join_json_array_indexes('rules.matchers', 'matcher_index') }}
)

select
    environment_id,
    workspace_id,
    flag_id,
    rule_index,
    matcher_index,
    {{ matcher_columns('matcher') }}
from matchers
