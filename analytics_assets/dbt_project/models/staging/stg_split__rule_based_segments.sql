-- One row per rule-based segment of a workspace (contract §3.6). The API names the traffic
-- type `trafficTypeId` or `trafficType {id, name}`, and times epoch `creationTime` or ISO
-- `createdAt` / `updatedAt`: both forms become the same columns here.
with segments as (
    select * from {{ source('split', 'rule_based_segments') }}
)

select
    segments.workspace_id,
    segments.id as rule_based_segment_id,
    segments.name as rule_based_segment_name,
    segments.status,
    segments.description as rule_based_segment_description,
    coalesce(segments.traffic_type_id, segments.traffic_type__id) as traffic_type_id,
    coalesce(segments.traffic_type__name, traffic_types.traffic_type_name) as traffic_type_name,
    segments.creator__type as creator_type,
    segments.creator__id as creator_id,
    coalesce({{ epoch_ms_to_timestamp('segments.creation_time') }}, segments.created_at) as created_at,
    segments.updated_at
from segments
left join {{ ref('stg_split__traffic_types') }} as traffic_types
    on coalesce(segments.traffic_type_id, segments.traffic_type__id) = traffic_types.traffic_type_id
