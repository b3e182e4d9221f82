select
    workspace_id,
    id as rollout_status_id,
    name as rollout_status_name,
    description as rollout_status_description
from {{ source('split', 'rollout_statuses') }}
