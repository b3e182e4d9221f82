-- One row per current (environment, flag): who owns it, when it last changed and saw
-- traffic, whether it serves one treatment to everyone, and whether it is stale.
{% set stale_after_days = var('stale_after_days') | int %}

with definitions as (
    select * from {{ ref('stg_split__flag_definitions') }}
),

default_buckets as (
    select
        environment_id,
        flag_id,
        count(*) as bucket_count,
        max(treatment_name) as treatment_name,
        max(size) as size
    from {{ ref('stg_split__default_rule_buckets') }}
    group by environment_id, flag_id
),

rule_buckets as (
    select
        environment_id,
        flag_id,
        rule_index,
        count(*) as bucket_count,
        max(treatment_name) as treatment_name,
        max(size) as size
    from {{ ref('stg_split__rule_buckets') }}
    group by environment_id, flag_id, rule_index
),

-- Targeting rules that serve something other than the default rule's single treatment at 100
-- (a rule without buckets serves nothing different).
divergent_rules as (
    select rule_buckets.environment_id, rule_buckets.flag_id, count(*) as rule_count
    from rule_buckets
    left join default_buckets
        on rule_buckets.environment_id = default_buckets.environment_id
        and rule_buckets.flag_id = default_buckets.flag_id
    where not (
        rule_buckets.bucket_count = 1
        and rule_buckets.size = 100
        and rule_buckets.treatment_name = default_buckets.treatment_name
    )
    group by rule_buckets.environment_id, rule_buckets.flag_id
),

owners as (
    select
        workspace_id,
        flag_id,
        {{ ordered_string_agg('coalesce(owner_name, owner_id)') }} as owners
    from {{ ref('stg_split__flag_owners') }}
    group by workspace_id, flag_id
),

tags as (
    select workspace_id, flag_id, {{ ordered_string_agg('tag_name') }} as tags
    from {{ ref('stg_split__flag_tags') }}
    group by workspace_id, flag_id
),

health as (
    select
        definitions.environment_id,
        definitions.flag_id,
        definitions.workspace_id,
        workspaces.workspace_name,
        environments.environment_name,
        coalesce(environments.is_production, false) as is_production,
        definitions.flag_name,
        owners.owners,
        tags.tags,
        definitions.killed,
        definitions.last_updated_at as last_changed_at,
        definitions.last_traffic_at,
        {{ days_between('definitions.last_updated_at', as_of()) }} as days_since_change,
        {{ days_between('definitions.last_traffic_at', as_of()) }} as days_since_traffic,
        (
            default_buckets.bucket_count = 1
            and default_buckets.size = 100
            and divergent_rules.rule_count is null
        ) as serves_single_treatment,
        default_buckets.treatment_name as default_treatment_name,
        definitions.targeting_rule_count
    from definitions
    left join {{ ref('stg_split__workspaces') }} as workspaces
        on definitions.workspace_id = workspaces.workspace_id
    left join {{ ref('stg_split__environments') }} as environments
        on definitions.environment_id = environments.environment_id
    left join default_buckets
        on definitions.environment_id = default_buckets.environment_id
        and definitions.flag_id = default_buckets.flag_id
    left join divergent_rules
        on definitions.environment_id = divergent_rules.environment_id
        and definitions.flag_id = divergent_rules.flag_id
    left join owners
        on definitions.workspace_id = owners.workspace_id and definitions.flag_id = owners.flag_id
    left join tags
        on definitions.workspace_id = tags.workspace_id and definitions.flag_id = tags.flag_id
)

select
    environment_id,
    flag_id,
    workspace_id,
    workspace_name,
    environment_name,
    is_production,
    flag_name,
    owners,
    tags,
    killed,
    last_changed_at,
    last_traffic_at,
    days_since_change,
    days_since_traffic,
    coalesce(serves_single_treatment, false) as serves_single_treatment,
    case when serves_single_treatment then default_treatment_name end as single_treatment,
    targeting_rule_count,
    (
        coalesce(serves_single_treatment, false)
        and last_changed_at < {{ as_of() }} - interval '{{ stale_after_days }} days'
        and (last_traffic_at is null or last_traffic_at < {{ as_of() }} - interval '{{ stale_after_days }} days')
    ) as is_stale
from health
