-- Per workspace and rollout status: how many flags, and how many of them are stale.
with flag_staleness as (
    select
        workspace_id,
        flag_id,
        count(*) as environment_count,
        sum(case when is_stale then 1 else 0 end) as stale_environment_count
    from {{ ref('flag_health') }}
    group by workspace_id, flag_id
)

select
    flags.workspace_id,
    workspaces.workspace_name,
    flags.rollout_status_id,
    flags.rollout_status_name,
    count(*) as flag_count,
    sum(case when flag_staleness.stale_environment_count > 0
        and flag_staleness.stale_environment_count = flag_staleness.environment_count
        then 1 else 0 end) as stale_flag_count,
    sum(case when flag_staleness.stale_environment_count > 0 then 1 else 0 end)
        as stale_in_any_environment_flag_count,
    sum(case when flag_staleness.flag_id is null then 1 else 0 end) as undefined_flag_count
from {{ ref('stg_split__flags') }} as flags
left join {{ ref('stg_split__workspaces') }} as workspaces
    on flags.workspace_id = workspaces.workspace_id
left join flag_staleness
    on flags.workspace_id = flag_staleness.workspace_id and flags.flag_id = flag_staleness.flag_id
group by flags.workspace_id, workspaces.workspace_name, flags.rollout_status_id, flags.rollout_status_name
