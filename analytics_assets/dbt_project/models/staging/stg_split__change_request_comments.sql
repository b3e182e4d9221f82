-- Comments of each change request, in order, with the commenter's role (SUBMITTER, APPROVER).
with comments as (
    select _dlt_parent_id, _dlt_list_idx, comment, {{ adapter.quote('user') }} as commenter, role, {{ adapter.quote('timestamp') }} as commented_ms
    from {{ optional_child_relation(source('split', 'change_requests'), 'comments',
        {'_dlt_parent_id': dbt.type_string(), '_dlt_list_idx': dbt.type_bigint(), 'comment': dbt.type_string(),
         'user': dbt.type_string(), 'role': dbt.type_string(), 'timestamp': dbt.type_bigint()}) }} as c
)

select
    change_requests.id as change_request_id,
    comments._dlt_list_idx as comment_index,
    comments.comment as comment_text,
    comments.commenter,
    comments.role as commenter_role,
    {{ epoch_ms_to_timestamp('comments.commented_ms') }} as commented_at
from comments
inner join {{ source('split', 'change_requests') }} as change_requests
    on comments._dlt_parent_id = change_requests._dlt_id
