select
    id as group_id,
    name as group_name,
    description as group_description
from {{ source('split', 'groups') }}
