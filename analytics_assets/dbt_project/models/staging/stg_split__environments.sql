select
    id as environment_id,
    workspace_id,
    name as environment_name,
    production as is_production
from {{ source('split', 'environments') }}
