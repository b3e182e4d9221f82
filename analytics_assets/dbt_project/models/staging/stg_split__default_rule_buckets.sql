-- One row per bucket of the default rule (what everyone no targeting rule matched gets).
with definitions as (
    select * from {{ ref('stg_split__flag_definitions') }}
),

buckets as (
    select
        definitions.environment_id,
        definitions.workspace_id,
        definitions.flag_id,
        bucket_index.idx as bucket_index,
        {{ json_element('definitions.default_rule', 'bucket_index.idx') }} as bucket
    from definitions
    {{ join_json_array_indexes('definitions.default_rule', 'bucket_index') }}
)

select
    environment_id,
    workspace_id,
    flag_id,
    bucket_index,
    {{ json_text('bucket', 'treatment') }} as treatment_name,
    cast({{ json_text('bucket', 'size') }} as {{ dbt.type_int() }}) as size
from buckets
