select
    workspace_id,
    id as traffic_type_id,
    name as traffic_type_name,
    display_attribute_id
from {{ source('split', 'traffic_types') }}
