select
    id as user_id,
    name as user_name,
    email,
    status as user_status,
    _2fa as two_factor_enabled
from {{ source('split', 'users') }}
