select
    environment_id,
    workspace_id,
    segment_name,
    {{ adapter.quote('key') }} as segment_key
from {{ optional_source('segments_keys', {'environment_id': dbt.type_string(), 'workspace_id': dbt.type_string(),
    'segment_name': dbt.type_string(), 'key': dbt.type_string()}) }} as segments_keys
