select
    id as workspace_id,
    name as workspace_name,
    requires_title_and_comments
from {{ source('split', 'workspaces') }}
