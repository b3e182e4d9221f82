select
    workspace_id,
    name as segment_name,
    description as segment_description,
    traffic_type__id as traffic_type_id,
    traffic_type__name as traffic_type_name,
    {{ epoch_ms_to_timestamp('creation_time') }} as created_at
from {{ source('split', 'segments') }}
