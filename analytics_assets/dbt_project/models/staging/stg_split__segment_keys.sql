select
    environment_id,
    workspace_id,
    segment_name,
    key as segment_key
from {{ source('split', 'segments_keys') }}
