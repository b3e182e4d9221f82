-- One row per change request: its object, who submitted and approved it, and when each stage
-- happened as far as known. Timestamps the API carries come first (comments by role, the
-- rollout-status timestamp, scheduledFor); otherwise the first sync that saw the status (the
-- snapshot change_request_status_snapshot, kept per sync), which is an upper bound.
with requests as (
    select * from {{ ref('stg_split__change_requests') }}
),

comments as (
    select
        change_request_id,
        min(case when commenter_role = 'SUBMITTER' then commented_at end) as submitted_at,
        min(case when commenter_role = 'APPROVER' then commented_at end) as approver_commented_at
    from {{ ref('stg_split__change_request_comments') }}
    group by change_request_id
),

submitters as (
    select change_request_id, commenter as submitted_by,
        row_number() over (partition by change_request_id order by comment_index) as position
    from {{ ref('stg_split__change_request_comments') }}
    where commenter_role = 'SUBMITTER'
),

approvers as (
    select change_request_id, {{ ordered_string_agg('approver') }} as approvers
    from {{ ref('stg_split__change_request_approvers') }}
    group by change_request_id
),

seen as (
    select
        change_request_id,
        min(case when status in ('REQUESTED', 'SCHEDULE_REQUESTED') then dbt_valid_from end) as first_seen_requested_at,
        min(case when status = 'APPROVED' then dbt_valid_from end) as first_seen_approved_at,
        min(case when status = 'PUBLISHED' then dbt_valid_from end) as first_seen_published_at,
        min(case when status in ('REJECTED', 'WITHDRAWN') then dbt_valid_from end) as first_seen_closed_at
    from {{ ref('change_request_status_snapshot') }}
    group by change_request_id
),

stages as (
    select
        requests.*,
        submitters.submitted_by,
        approvers.approvers,
        coalesce(comments.submitted_at, requests.rollout_status_updated_at,
            cast(seen.first_seen_requested_at as {{ type_timestamptz() }})) as requested_at,
        case when requests.status in ('APPROVED', 'PUBLISHED') then
            coalesce(comments.approver_commented_at, cast(seen.first_seen_approved_at as {{ type_timestamptz() }}))
        end as approved_at,
        -- A scheduled request is published at its scheduledFor time (contract §2.11).
        case when requests.status = 'PUBLISHED' then
            coalesce(requests.scheduled_for_at, cast(seen.first_seen_published_at as {{ type_timestamptz() }}))
        end as published_at,
        case when requests.status in ('REJECTED', 'WITHDRAWN') then
            coalesce(comments.approver_commented_at, cast(seen.first_seen_closed_at as {{ type_timestamptz() }}))
        end as closed_at
    from requests
    left join comments on requests.change_request_id = comments.change_request_id
    left join submitters
        on requests.change_request_id = submitters.change_request_id and submitters.position = 1
    left join approvers on requests.change_request_id = approvers.change_request_id
    left join seen on requests.change_request_id = seen.change_request_id
)

select
    change_request_id,
    workspace_id,
    object_type,
    flag_id,
    flag_name,
    segment_name,
    environment_id,
    environment_name,
    operation_type,
    title,
    submitted_by,
    approvers,
    status,
    requested_at,
    approved_at,
    scheduled_for_at,
    published_at,
    closed_at,
    {{ hours_between('requested_at', 'approved_at') }} as hours_requested_to_approved,
    {{ hours_between('approved_at', 'published_at') }} as hours_approved_to_published,
    {{ hours_between('requested_at', 'published_at') }} as hours_requested_to_published,
    {{ hours_between('requested_at', 'closed_at') }} as hours_requested_to_closed
from stages
