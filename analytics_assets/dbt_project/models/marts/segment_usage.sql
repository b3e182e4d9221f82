-- One row per (environment, flag, segment, where it is used) for current definitions:
-- `rule` (an IN_SEGMENT matcher) or `treatment` (a treatment's segments list). A segment
-- without rows here is used by no flag ("can I delete this segment?").
with rule_usage as (
    select environment_id, workspace_id, flag_id, segment_name, 'rule' as used_in, count(*) as reference_count
    from {{ ref('stg_split__rule_matchers') }}
    where segment_name is not null
    group by environment_id, workspace_id, flag_id, segment_name
),

treatment_segments as (
    select
        treatments.environment_id,
        treatments.workspace_id,
        treatments.flag_id,
        {{ json_text_element('treatments.targeted_segments', 'segment_index.idx') }} as segment_name
    from {{ ref('stg_split__treatments') }} as treatments
    {{ join_json_array_indexes('treatments.targeted_segments', 'segment_index') }}
),

treatment_usage as (
    select environment_id, workspace_id, flag_id, segment_name, 'treatment' as used_in, count(*) as reference_count
    from treatment_segments
    where segment_name is not null
    group by environment_id, workspace_id, flag_id, segment_name
),

usage as (
    select * from rule_usage
    union all
    select * from treatment_usage
)

select
    usage.environment_id,
    usage.flag_id,
    usage.segment_name,
    usage.used_in,
    usage.workspace_id,
    definitions.flag_name,
    usage.reference_count,
    (environment_segments.segment_name is not null) as segment_active_in_environment
from usage
inner join {{ ref('stg_split__flag_definitions') }} as definitions
    on usage.environment_id = definitions.environment_id and usage.flag_id = definitions.flag_id
left join {{ ref('stg_split__environment_segments') }} as environment_segments
    on usage.environment_id = environment_segments.environment_id
    and usage.segment_name = environment_segments.segment_name
