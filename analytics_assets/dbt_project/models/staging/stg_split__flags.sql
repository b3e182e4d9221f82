select
    workspace_id,
    id as flag_id,
    name as flag_name,
    description as flag_description,
    traffic_type__id as traffic_type_id,
    traffic_type__name as traffic_type_name,
    rollout_status__id as rollout_status_id,
    rollout_status__name as rollout_status_name,
    {{ epoch_ms_to_timestamp('rollout_status_timestamp') }} as rollout_status_updated_at,
    {{ epoch_ms_to_timestamp('creation_time') }} as created_at
from {{ source('split', 'feature_flags') }}
