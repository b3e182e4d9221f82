-- One row per change request; its object is a flag definition (`split`) or a segment.
select
    id as change_request_id,
    workspace__id as workspace_id,
    status,
    title,
    comment,
    operation_type,
    case
        when split__id is not null or split__name is not null then 'flag'
        when segment__name is not null then 'segment'
    end as object_type,
    split__id as flag_id,
    split__name as flag_name,
    segment__name as segment_name,
    coalesce({{ json_text('split__environment', 'id') }}, {{ json_text('segment__environment', 'id') }}) as environment_id,
    coalesce({{ json_text('split__environment', 'name') }}, {{ json_text('segment__environment', 'name') }}) as environment_name,
    rollout_status__id as rollout_status_id,
    rollout_status__name as rollout_status_name,
    {{ epoch_ms_to_timestamp('rollout_status_timestamp') }} as rollout_status_updated_at,
    {{ epoch_ms_to_timestamp('scheduled_for') }} as scheduled_for_at,
    scheduled_for_timezone
from {{ source('split', 'change_requests') }}
