select
    workspace_id,
    id as flag_set_id,
    name as flag_set_name,
    description as flag_set_description,
    cast(created_at as {{ type_timestamptz() }}) as created_at
from {{ source('split', 'flag_sets') }}
