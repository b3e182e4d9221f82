-- Every version of every definition, valid from Split's own lastUpdateTime (not the load
-- time) until the next version's. Versions dlt kept because only other fields changed (e.g.
-- lastTrafficReceivedAt) share a lastUpdateTime: the latest loaded of them stands for it.
with loaded as (
    select
        environment_id,
        workspace_id,
        id as flag_id,
        name as flag_name,
        killed,
        default_treatment,
        traffic_allocation,
        rules,
        default_rule,
        treatments,
        last_update_time,
        _dlt_valid_from,
        _dlt_valid_to,
        row_number() over (
            partition by environment_id, id, last_update_time
            order by _dlt_valid_from desc
        ) as newest_first
    from {{ source('split', 'feature_flag_definitions') }}
),

versions as (
    select
        *,
        lead(last_update_time) over (
            partition by environment_id, flag_id order by last_update_time
        ) as next_update_time
    from loaded
    where newest_first = 1
)

select
    environment_id,
    workspace_id,
    flag_id,
    flag_name,
    row_number() over (partition by environment_id, flag_id order by last_update_time) as version_number,
    {{ epoch_ms_to_timestamp('last_update_time') }} as valid_from,
    -- The next version's start; a definition deleted in Split ends when a sync saw it gone.
    coalesce({{ epoch_ms_to_timestamp('next_update_time') }}, cast(_dlt_valid_to as {{ type_timestamptz() }})) as valid_to,
    (next_update_time is null and _dlt_valid_to is null) as is_current,
    killed,
    default_treatment,
    traffic_allocation,
    {{ json_array_length('rules') }} as targeting_rule_count,
    rules,
    default_rule,
    treatments
from versions
