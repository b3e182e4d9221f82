with memberships as (
    select _dlt_parent_id, id
    from {{ optional_child_relation(source('split', 'users'), 'groups',
        {'_dlt_parent_id': dbt.type_string(), 'id': dbt.type_string()}) }} as m
)

select distinct
    users.id as user_id,
    memberships.id as group_id
from memberships
inner join {{ source('split', 'users') }} as users
    on memberships._dlt_parent_id = users._dlt_id
