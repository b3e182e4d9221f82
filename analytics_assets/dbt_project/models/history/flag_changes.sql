-- One row per observed change of a definition: which parts changed, and when (Split's time).
with versions as (
    select
        *,
        lag(killed) over w as previous_killed,
        lag({{ json_as_text('rules') }}) over w as previous_rules,
        lag({{ json_as_text('default_rule') }}) over w as previous_default_rule,
        lag({{ json_as_text('treatments') }}) over w as previous_treatments,
        lag(traffic_allocation) over w as previous_traffic_allocation
    from {{ ref('flag_definition_versions') }}
    window w as (partition by environment_id, flag_id order by version_number)
)

select
    environment_id,
    workspace_id,
    flag_id,
    flag_name,
    version_number,
    valid_from as changed_at,
    case
        when version_number = 1 then 'created'
        when killed and not previous_killed then 'killed'
        when previous_killed and not killed then 'restored'
        else 'edited'
    end as change_kind,
    (version_number > 1 and killed <> previous_killed) as kill_state_changed,
    (version_number > 1 and {{ json_as_text('rules') }} <> previous_rules) as rules_changed,
    (version_number > 1 and {{ json_as_text('default_rule') }} <> previous_default_rule) as default_rule_changed,
    (version_number > 1 and {{ json_as_text('treatments') }} <> previous_treatments) as treatments_changed,
    (version_number > 1 and traffic_allocation <> previous_traffic_allocation) as allocation_changed
from versions
