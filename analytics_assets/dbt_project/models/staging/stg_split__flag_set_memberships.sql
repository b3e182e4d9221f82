-- Which flag sets each flag belongs to, per environment (definitions carry `flagSets[{id}]`).
with definitions as (
    select * from {{ ref('stg_split__flag_definitions') }}
),

memberships as (
    select
        definitions.environment_id,
        definitions.workspace_id,
        definitions.flag_id,
        {{ json_text(json_element('definitions.flag_sets', 'member.idx'), 'id') }} as flag_set_id
    from definitions
    {{ join_json_array_indexes('definitions.flag_sets', 'member') }}
)

select distinct
    memberships.environment_id,
    memberships.workspace_id,
    memberships.flag_id,
    memberships.flag_set_id,
    flag_sets.flag_set_name
from memberships
left join {{ ref('stg_split__flag_sets') }} as flag_sets
    on memberships.workspace_id = flag_sets.workspace_id
    and memberships.flag_set_id = flag_sets.flag_set_id
