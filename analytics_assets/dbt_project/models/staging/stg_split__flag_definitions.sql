-- The current definition of each flag in each environment (dlt scd2: _dlt_valid_to is null).
-- The JSON documents stay here for the rule, matcher, bucket and treatment models.
select
    environment_id,
    workspace_id,
    id as flag_id,
    name as flag_name,
    {{ json_text('traffic_type', 'id') }} as traffic_type_id,
    killed,
    default_treatment,
    baseline_treatment,
    traffic_allocation,
    impressions_disabled,
    {{ epoch_ms_to_timestamp('creation_time') }} as created_at,
    {{ epoch_ms_to_timestamp('last_update_time') }} as last_updated_at,
    {{ epoch_ms_to_timestamp('last_traffic_received_at') }} as last_traffic_at,
    {{ json_array_length('rules') }} as targeting_rule_count,
    rules,
    default_rule,
    treatments,
    flag_sets
from {{ source('split', 'feature_flag_definitions') }}
where _dlt_valid_to is null
