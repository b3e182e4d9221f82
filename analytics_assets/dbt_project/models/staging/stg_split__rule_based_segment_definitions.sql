-- The current definition of each rule-based segment in each environment (dlt scd2:
-- _dlt_valid_to is null). Both served forms (contract §3.6) become the same columns: the
-- traffic type from `trafficTypeId` or `trafficType.id`, times from epoch `creationTime` or
-- ISO `createdAt` / `updatedAt`; the id from the record or, where absent, the workspace list.
with definitions as (
    select * from {{ source('split', 'rule_based_segment_definitions') }}
    where _dlt_valid_to is null
)

select
    definitions.environment_id,
    definitions.workspace_id,
    definitions.name as rule_based_segment_name,
    coalesce(definitions.id, segments.id) as rule_based_segment_id,
    coalesce(definitions.traffic_type_id, {{ json_text('definitions.traffic_type', 'id') }}) as traffic_type_id,
    coalesce({{ epoch_ms_to_timestamp('definitions.creation_time') }}, definitions.created_at) as created_at,
    definitions.updated_at,
    {{ json_array_length('definitions.rules') }} as rule_count,
    {{ json_array_length('definitions.excluded_keys') }} as excluded_key_count,
    {{ json_array_length('definitions.excluded_segments') }} as excluded_segment_count,
    definitions.rules,
    definitions.excluded_keys,
    definitions.excluded_segments
from definitions
left join {{ source('split', 'rule_based_segments') }} as segments
    on definitions.workspace_id = segments.workspace_id and definitions.name = segments.name
