-- One row per (environment, user of a segment, segment, where it is used), for current
-- definitions. The users are flags and rule-based segments:
--   flags: `rule` (an IN_SEGMENT matcher), `treatment` (a treatment's segments list),
--          `rule_based_segment` (an IN_RULE_BASED_SEGMENT matcher naming a rule-based segment);
--   rule-based segments: `rule_based_segment_rule` (an IN_SEGMENT or IN_RULE_BASED_SEGMENT
--          matcher of its rules), `rule_based_segment_exclusion` (its excludedSegments).
-- A segment without rows here is used by nothing ("can I delete this segment?").
with flag_rule_usage as (
    select environment_id, workspace_id, flag_id as used_by, 'segment' as segment_type,
        segment_name, 'rule' as used_in, count(*) as reference_count
    from {{ ref('stg_split__rule_matchers') }}
    where segment_name is not null
    group by environment_id, workspace_id, flag_id, segment_name
),

flag_rule_based_usage as (
    select environment_id, workspace_id, flag_id as used_by, 'rule_based_segment' as segment_type,
        matched_rule_based_segment_name as segment_name, 'rule_based_segment' as used_in, count(*) as reference_count
    from {{ ref('stg_split__rule_matchers') }}
    where matched_rule_based_segment_name is not null
    group by environment_id, workspace_id, flag_id, matched_rule_based_segment_name
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
    select environment_id, workspace_id, flag_id as used_by, 'segment' as segment_type,
        segment_name, 'treatment' as used_in, count(*) as reference_count
    from treatment_segments
    where segment_name is not null
    group by environment_id, workspace_id, flag_id, segment_name
),

rule_based_matcher_references as (
    select environment_id, workspace_id, rule_based_segment_name as used_by,
        case when segment_name is not null then 'segment' else 'rule_based_segment' end as segment_type,
        coalesce(segment_name, matched_rule_based_segment_name) as segment_name
    from {{ ref('stg_split__rule_based_segment_matchers') }}
    where segment_name is not null or matched_rule_based_segment_name is not null
),

rule_based_rule_usage as (
    select environment_id, workspace_id, used_by, segment_type, segment_name,
        'rule_based_segment_rule' as used_in, count(*) as reference_count
    from rule_based_matcher_references
    group by environment_id, workspace_id, used_by, segment_type, segment_name
),

rule_based_exclusion_usage as (
    select environment_id, workspace_id, rule_based_segment_name as used_by,
        case when excluded_segment_type = 'rule_based_segment' then 'rule_based_segment' else 'segment' end as segment_type,
        excluded_segment_name as segment_name, 'rule_based_segment_exclusion' as used_in, count(*) as reference_count
    from {{ ref('stg_split__rule_based_segment_excluded_segments') }}
    where excluded_segment_name is not null
    group by environment_id, workspace_id, rule_based_segment_name,
        case when excluded_segment_type = 'rule_based_segment' then 'rule_based_segment' else 'segment' end,
        excluded_segment_name
),

flag_usage as (
    select * from flag_rule_usage
    union all
    select * from flag_rule_based_usage
    union all
    select * from treatment_usage
),

rule_based_usage as (
    select * from rule_based_rule_usage
    union all
    select * from rule_based_exclusion_usage
),

usage as (
    select
        flag_usage.environment_id,
        'flag' as used_by_type,
        flag_usage.used_by,
        flag_usage.used_by as flag_id,
        definitions.flag_name as used_by_name,
        flag_usage.workspace_id,
        flag_usage.segment_type,
        flag_usage.segment_name,
        flag_usage.used_in,
        flag_usage.reference_count
    from flag_usage
    inner join {{ ref('stg_split__flag_definitions') }} as definitions
        on flag_usage.environment_id = definitions.environment_id
        and flag_usage.used_by = definitions.flag_id
    union all
    select
        environment_id,
        'rule_based_segment' as used_by_type,
        used_by,
        cast(null as {{ dbt.type_string() }}) as flag_id,
        used_by as used_by_name,
        workspace_id,
        segment_type,
        segment_name,
        used_in,
        reference_count
    from rule_based_usage
)

select
    usage.environment_id,
    usage.flag_id,
    usage.segment_name,
    usage.used_in,
    usage.used_by_type,
    usage.used_by,
    usage.used_by_name,
    usage.segment_type,
    usage.workspace_id,
    case when usage.used_by_type = 'flag' then usage.used_by_name end as flag_name,
    usage.reference_count,
    (case
        when usage.segment_type = 'segment' then environment_segments.segment_name
        else rule_based_definitions.rule_based_segment_name
    end is not null) as segment_active_in_environment
from usage
left join {{ ref('stg_split__environment_segments') }} as environment_segments
    on usage.segment_type = 'segment'
    and usage.environment_id = environment_segments.environment_id
    and usage.segment_name = environment_segments.segment_name
left join {{ ref('stg_split__rule_based_segment_definitions') }} as rule_based_definitions
    on usage.segment_type = 'rule_based_segment'
    and usage.environment_id = rule_based_definitions.environment_id
    and usage.segment_name = rule_based_definitions.rule_based_segment_name
