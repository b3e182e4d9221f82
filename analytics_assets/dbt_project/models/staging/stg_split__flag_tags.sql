with tags as (
    select _dlt_parent_id, name
    from {{ optional_child_relation(source('split', 'feature_flags'), 'tags',
        {'_dlt_parent_id': dbt.type_string(), 'name': dbt.type_string()}) }} as t
)

select distinct
    flags.workspace_id,
    flags.id as flag_id,
    tags.name as tag_name
from tags
inner join {{ source('split', 'feature_flags') }} as flags
    on tags._dlt_parent_id = flags._dlt_id
