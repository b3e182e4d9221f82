-- One row per bucket of a targeting rule: the treatment served to that share of the rule.
with rules as (
    select * from {{ ref('stg_split__definition_rules') }}
),

buckets as (
    select
        rules.environment_id,
        rules.workspace_id,
        rules.flag_id,
        rules.rule_index,
        bucket_index.idx as bucket_index,
        {{ json_element('rules.buckets', 'bucket_index.idx') }} as bucket
    from rules
    {{ join_json_array_indexes('rules.buckets', 'bucket_index') }}
)

select
    environment_id,
    workspace_id,
    flag_id,
    rule_index,
    bucket_index,
    {{ json_text('bucket', 'treatment') }} as treatment_name,
    cast({{ json_text('bucket', 'size') }} as {{ dbt.type_int() }}) as size
from buckets
