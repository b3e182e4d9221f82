-- Segments active (defined) in each environment.
select
    environment_id,
    workspace_id,
    name as segment_name,
    traffic_type__id as traffic_type_id,
    {{ epoch_ms_to_timestamp('creation_time') }} as activated_at
from {{ source('split', 'environment_segments') }}
