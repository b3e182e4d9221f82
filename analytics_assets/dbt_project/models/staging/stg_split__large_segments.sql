-- One row per large segment of a workspace (metadata; members are not exportable, §3.5).
select
    workspace_id,
    name as large_segment_name,
    id as large_segment_id,
    description as large_segment_description,
    traffic_type__id as traffic_type_id,
    traffic_type__name as traffic_type_name,
    {{ epoch_ms_to_timestamp('creation_time') }} as created_at
from {{ source('split', 'large_segments') }}
