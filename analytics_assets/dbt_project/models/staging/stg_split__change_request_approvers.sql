-- Approvers of each change request: emails, or "admin-api-key".
with approvers as (
    select _dlt_parent_id, value
    from {{ optional_child_relation(source('split', 'change_requests'), 'approvers',
        {'_dlt_parent_id': dbt.type_string(), 'value': dbt.type_string()}) }} as a
)

select distinct
    change_requests.id as change_request_id,
    approvers.value as approver
from approvers
inner join {{ source('split', 'change_requests') }} as change_requests
    on approvers._dlt_parent_id = change_requests._dlt_id
