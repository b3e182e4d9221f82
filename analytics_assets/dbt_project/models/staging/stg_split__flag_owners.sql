-- Owners are users or groups (contract §2.4: `owners[{id, type}]`), resolved to a name and,
-- for users, an email. An owner listed twice on one flag is one owner (the list is a set).
with owners as (
    select distinct _dlt_parent_id, id, type
    from {{ optional_child_relation(source('split', 'feature_flags'), 'owners',
        {'_dlt_parent_id': dbt.type_string(), 'id': dbt.type_string(), 'type': dbt.type_string()}) }} as o
)

select distinct
    flags.workspace_id,
    flags.id as flag_id,
    lower(owners.type) as owner_type,
    owners.id as owner_id,
    coalesce(users.name, groups.name) as owner_name,
    users.email as owner_email
from owners
inner join {{ source('split', 'feature_flags') }} as flags
    on owners._dlt_parent_id = flags._dlt_id
left join {{ source('split', 'users') }} as users
    on lower(owners.type) = 'user' and owners.id = users.id
left join {{ source('split', 'groups') }} as groups
    on lower(owners.type) = 'group' and owners.id = groups.id
