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
    {{ json_text('matcher', 'type') }} as matcher_type,
    coalesce(cast({{ json_text('matcher', 'negate') }} as {{ dbt.type_boolean() }}), false) as negate,
    {{ json_text('matcher', 'attribute') }} as attribute,
    {{ json_text('matcher', 'string') }} as string_value,
    {{ json_value('matcher', 'strings') }} as set_values,
    cast({{ json_text('matcher', 'number') }} as {{ dbt.type_float() }}) as number_value,
    cast({{ json_text(json_value('matcher', 'between'), 'from') }} as {{ dbt.type_float() }}) as between_from,
    cast({{ json_text(json_value('matcher', 'between'), 'to') }} as {{ dbt.type_float() }}) as between_to,
    case when {{ json_text('matcher', 'type') }} = 'IN_SEGMENT'
        then {{ json_text('matcher', 'string') }} end as segment_name,
    {{ json_text(json_value('matcher', 'depends'), 'splitName') }} as depends_on_flag
from matchers
