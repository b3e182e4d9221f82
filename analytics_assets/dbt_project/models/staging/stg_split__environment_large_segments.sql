-- One row per large segment defined in an environment (metadata, contract §3.5).
select
    environment_id,
    workspace_id,
    name as large_segment_name,
    id as large_segment_id,
    traffic_type__id as traffic_type_id,
    traffic_type__name as traffic_type_name,
    {{ epoch_ms_to_timestamp('creation_time') }} as created_at
from {{ source('split', 'environment_large_segments') }}
