"""Evolution: generation N+1 of an organisation is generation N plus one week of changes.

Every step adds, edits and deletes objects of every kind, drawn from a generation-seeded
random stream so that a generation is reproducible. Generation 1 also reshapes the
workspaces: one is left with no flags at all (and stays so), one new workspace is added and
another one is deleted. Every generation renames one workspace and one environment of another
workspace (their ids stay), as teams do. These are the changes an incremental sync has to
notice.
"""

from __future__ import annotations

import random
import re

from analytics_assets.sandbox.generate import (
    DAY_MS,
    ENVIRONMENT_NAMES,
    OrganisationBuilder,
    generation_time,
)
from analytics_assets.sandbox.sizes import EnvironmentPlan, WorkspacePlan
from analytics_assets.sandbox.targeting import evolve_targeting

NEW_WORKSPACE_NAME = "Experimentation Lab ('25)"


def _share(total: int, share: float, minimum: int = 1) -> int:
    """``share`` of ``total``, at least ``minimum`` but never more than ``total``."""
    return min(total, max(minimum, round(total * share)))


def evolve(builder: OrganisationBuilder, generation: int) -> None:
    """Apply the changes that turn generation ``generation - 1`` into ``generation``."""
    org = builder.org
    org.generation = generation
    builder.now = generation_time(generation)
    builder.rng = random.Random(f"sandbox:{builder.seed}:{org.size}:generation:{generation}")
    builder.refresh()
    existing = {ws.id for ws in org.workspaces}
    if generation == 1:
        _reshape_workspaces(builder)
    _delete_objects(builder)
    _edit_objects(builder)
    _add_objects(builder)
    builder.refresh()
    # Last, from streams of their own: the other kinds evolve exactly as before.
    evolve_targeting(builder, generation)
    _rename(builder, generation, existing)


def _rename(builder: OrganisationBuilder, generation: int, existing: set[str]) -> None:
    """One workspace that existed before this week gets a name with parentheses, one
    environment of another workspace a name with a comma: names people give, which a consumer
    must not take apart."""
    org = builder.org
    rng = random.Random(f"sandbox:{builder.seed}:{org.size}:renames:{generation}")
    renamable = [ws for ws in org.workspaces if ws.id in existing]
    if not renamable:
        return
    workspace = rng.choice(renamable)
    workspace.name = re.sub(r" \(week \d+\)$", "", workspace.name) + f" (week {generation})"
    others = [ws for ws in org.workspaces if ws.id != workspace.id and org.environments_of(ws.id)]
    if others:
        environment = rng.choice(org.environments_of(rng.choice(others).id))
        environment.name = re.sub(r", week \d+$", "", environment.name) + f", week {generation}"


# --- deletions shared by the steps ---------------------------------------------------------


def delete_flags(builder: OrganisationBuilder, flag_ids: set[str]) -> None:
    """Delete flags and, with them, their definitions in every environment."""
    org = builder.org
    for ws in org.flags:
        org.flags[ws] = [flag for flag in org.flags[ws] if flag.id not in flag_ids]
    for env in org.definitions:
        org.definitions[env] = [d for d in org.definitions[env] if d.flag_id not in flag_ids]


def delete_segments(builder: OrganisationBuilder, keys: set[tuple[str, str]]) -> None:
    """Delete segments (workspace id, name) and their activations (and so their keys)."""
    org = builder.org
    for ws in org.segments:
        org.segments[ws] = [seg for seg in org.segments[ws] if (ws, seg.name) not in keys]
    for env in org.activations:
        org.activations[env] = [
            act for act in org.activations[env] if (act.workspace_id, act.segment_name) not in keys
        ]


def delete_environment(
    builder: OrganisationBuilder, workspace_id: str, environment_id: str
) -> None:
    """Delete an environment with its flag definitions and segment activations."""
    org = builder.org
    org.environments[workspace_id] = [
        env for env in org.environments[workspace_id] if env.id != environment_id
    ]
    org.definitions.pop(environment_id, None)
    org.activations.pop(environment_id, None)
    org.rule_based_definitions.pop(environment_id, None)
    org.large_segment_definitions.pop(environment_id, None)


def delete_workspace(builder: OrganisationBuilder, workspace_id: str) -> None:
    """Delete a workspace and everything in it, including its change requests."""
    org = builder.org
    for env in list(org.environments_of(workspace_id)):
        delete_environment(builder, workspace_id, env.id)
    org.workspaces = [ws for ws in org.workspaces if ws.id != workspace_id]
    for traffic_type in org.traffic_types.get(workspace_id, []):
        org.attributes.pop(traffic_type.id, None)
    for container in (
        org.environments,
        org.traffic_types,
        org.rollout_statuses,
        org.flag_sets,
        org.flags,
        org.segments,
        org.rule_based_segments,
        org.large_segments,
    ):
        container.pop(workspace_id, None)
    org.change_requests = [cr for cr in org.change_requests if cr.workspace_id != workspace_id]
    builder.flagless_workspaces.discard(workspace_id)


# --- generation 1: the workspace-level changes ---------------------------------------------


def _reshape_workspaces(builder: OrganisationBuilder) -> None:
    org, rng = builder.org, builder.rng
    with_flags = [ws for ws in org.workspaces if org.flags.get(ws.id)]
    emptied = rng.choice(with_flags) if with_flags else None
    if emptied is not None:
        delete_flags(builder, {flag.id for flag in org.flags[emptied.id]})
        builder.flagless_workspaces.add(emptied.id)
    deletable = [ws for ws in org.workspaces if emptied is None or ws.id != emptied.id]
    if len(deletable) > 1:
        delete_workspace(builder, rng.choice(deletable).id)
    flags = rng.randint(5, 12)
    segments = rng.randint(3, 6)
    workspace = builder.add_workspace(
        WorkspacePlan(
            name=NEW_WORKSPACE_NAME,
            environments=(
                EnvironmentPlan("Production", True, defined_flags=flags, active_segments=segments),
                EnvironmentPlan("Staging", False, defined_flags=flags // 2, active_segments=2),
            ),
            flags=flags,
            segments=segments,
            flag_sets=1,
        )
    )
    for env in org.environments_of(workspace.id):
        for activation in org.activations[env.id]:
            activation.keys = activation.keys.moved(0, rng.randint(0, 250))


# --- every generation ----------------------------------------------------------------------


def _delete_objects(builder: OrganisationBuilder) -> None:
    org, rng = builder.org, builder.rng
    all_flags = [flag for flags in org.flags.values() for flag in flags]
    if all_flags:
        doomed = rng.sample(all_flags, _share(len(all_flags), 0.03))
        delete_flags(builder, {flag.id for flag in doomed})
    # A flag may also lose its definition in one environment only.
    for env_id, definitions in org.definitions.items():
        if definitions and rng.random() < 0.2:
            victim = rng.choice(definitions)
            org.definitions[env_id] = [d for d in definitions if d is not victim]
    all_segments = [seg for segs in org.segments.values() for seg in segs]
    if all_segments:
        doomed_segments = rng.sample(all_segments, _share(len(all_segments), 0.03))
        delete_segments(builder, {(seg.workspace_id, seg.name) for seg in doomed_segments})
    for env_id, activations in org.activations.items():
        if activations and rng.random() < 0.2:
            victim_activation = rng.choice(activations)
            org.activations[env_id] = [a for a in activations if a is not victim_activation]
    multi_environment = [ws for ws in org.workspaces if len(org.environments_of(ws.id)) >= 2]
    if multi_environment:
        workspace = rng.choice(multi_environment)
        environment = rng.choice(org.environments_of(workspace.id)[1:])  # keep production
        delete_environment(builder, workspace.id, environment.id)
    with_flag_sets = [ws for ws, flag_sets in org.flag_sets.items() if flag_sets]
    if with_flag_sets:
        ws = rng.choice(with_flag_sets)
        victim_set = rng.choice(org.flag_sets[ws])
        org.flag_sets[ws] = [fs for fs in org.flag_sets[ws] if fs is not victim_set]
        for env in org.environments_of(ws):
            for definition in org.definitions[env.id]:
                if victim_set.id in definition.flag_set_ids:
                    definition.flag_set_ids = [
                        i for i in definition.flag_set_ids if i != victim_set.id
                    ]
    if org.users:
        doomed_users = {user.id for user in rng.sample(org.users, _share(len(org.users), 0.02))}
        org.users = [user for user in org.users if user.id not in doomed_users]
        _forget_owners(builder, doomed_users)
    if len(org.groups) > 2:
        victim_group = rng.choice(org.groups)
        org.groups = [group for group in org.groups if group is not victim_group]
        for user in org.users:
            if user.group_ids and victim_group.id in user.group_ids:
                remaining = [g for g in user.group_ids if g != victim_group.id]
                user.group_ids = remaining or None  # no groups: the key is absent (§2.9)
        _forget_owners(builder, {victim_group.id})


def _forget_owners(builder: OrganisationBuilder, owner_ids: set[str]) -> None:
    for flags in builder.org.flags.values():
        for flag in flags:
            if any(owner in owner_ids for owner, _ in flag.owners):
                flag.owners = [(o, kind) for o, kind in flag.owners if o not in owner_ids]


def _edit_objects(builder: OrganisationBuilder) -> None:
    org, rng, now = builder.org, builder.rng, builder.now
    builder.refresh()
    definitions = [d for defs in org.definitions.values() for d in defs]
    for definition in (
        rng.sample(definitions, _share(len(definitions), 0.08, 2)) if definitions else []
    ):
        flag = org.flag_by_id[definition.flag_id]
        treatments = [t["name"] for t in definition.treatments]
        change = rng.choice(("kill", "rules", "default", "allocation", "treatments"))
        if change == "kill":
            definition.killed = not definition.killed
        elif change == "rules":
            definition.rules = [
                builder.rule(flag.workspace_id, treatments) for _ in range(rng.randint(0, 3))
            ]
        elif change == "default":
            definition.default_rule = builder.buckets(treatments)
            definition.default_treatment = rng.choice(treatments)
        elif change == "allocation":
            definition.traffic_allocation = rng.choice((5, 25, 50, 75, 100))
        else:
            definition.treatments = [builder.treatment(name) for name in treatments]
        definition.last_update_time = now - rng.randint(0, 6 * 24) * 3_600_000
    for definition in definitions:
        if definition.last_traffic_received_at is not None and rng.random() < 0.2:
            definition.last_traffic_received_at = now - rng.randint(0, 6) * DAY_MS
    all_flags = [flag for flags in org.flags.values() for flag in flags]
    for flag in rng.sample(all_flags, _share(len(all_flags), 0.05)) if all_flags else []:
        change = rng.choice(("description", "tags", "status"))
        if change == "description":
            flag.description = builder.description()
        elif change == "tags":
            flag.tags = builder.tags()
        elif not flag.legacy:
            flag.rollout_status_id = rng.choice(org.rollout_statuses[flag.workspace_id]).id
            flag.rollout_status_timestamp = now
    all_segments = [seg for segs in org.segments.values() for seg in segs]
    for segment in (
        rng.sample(all_segments, _share(len(all_segments), 0.05)) if all_segments else []
    ):
        segment.description = builder.description(0.3)
        segment.tags = builder.tags()
    # Segment membership: keys deleted at the front, appended at the back.
    activations = [act for acts in org.activations.values() for act in acts]
    cap = builder.profile.max_keys_per_segment
    for activation in (
        rng.sample(activations, _share(len(activations), 0.15)) if activations else []
    ):
        size = len(activation.keys)
        deleted = rng.randint(0, max(1, size // 10))
        appended = rng.randint(0, max(3, size // 10))
        appended = max(0, min(appended, cap - (size - deleted)))
        activation.keys = activation.keys.moved(deleted, appended)
    for user in org.users:
        roll = rng.random()
        if user.status == "PENDING" and roll < 0.4:
            user.status = "ACTIVE"
        elif user.status == "ACTIVE" and roll < 0.02:
            user.status = "DEACTIVATED"
        elif user.status == "DEACTIVATED" and roll < 0.05:
            user.status = "ACTIVE"
        elif org.groups and roll > 0.97:
            user.group_ids = [rng.choice(org.groups).id]
    if org.groups:
        rng.choice(org.groups).description = rng.choice(("", "Renamed team — Zoë's now", "On-call"))
    for request in org.change_requests:
        roll = rng.random()
        new_status = None
        if request.status == "REQUESTED" and roll < 0.15:
            new_status = rng.choice(("APPROVED", "REJECTED", "WITHDRAWN"))
        elif (request.status == "APPROVED" and roll < 0.4) or (
            request.status == "SCHEDULE_REQUESTED" and roll < 0.5
        ):
            new_status = "PUBLISHED"
        if new_status is not None:
            request.status = new_status
            if request.split is not None:
                request.split["openChangeRequestId"] = None
            request.comments.append(
                {
                    "comment": f"Status changed to {new_status}",
                    "user": "admin-api-key",
                    "role": "APPROVER",
                    "timestamp": now - rng.randint(1, 100) * 3_600_000,
                }
            )


def _add_objects(builder: OrganisationBuilder) -> None:
    org, rng = builder.org, builder.rng
    builder.refresh()
    activations = [act for acts in org.activations.values() for act in acts]
    mean_keys = sum(len(a.keys) for a in activations) // max(1, len(activations))
    flag_count = sum(len(flags) for flags in org.flags.values())
    open_workspaces = [ws for ws in org.workspaces if ws.id not in builder.flagless_workspaces]
    for _ in range(_share(flag_count, 0.04) if open_workspaces else 0):
        workspace = rng.choice(open_workspaces)
        flag = builder.create_flag(workspace.id)
        for env in org.environments_of(workspace.id):
            if rng.random() < 0.7:
                builder.define_flag(flag, env)
    segment_count = sum(len(segs) for segs in org.segments.values())
    for _ in range(_share(segment_count, 0.03) if org.workspaces else 0):
        workspace = rng.choice(org.workspaces)
        segment = builder.create_segment(workspace.id)
        for env in org.environments_of(workspace.id):
            if rng.random() < 0.6:
                builder.activate_segment(segment, env, rng.randint(0, 2 * mean_keys + 1))
    if org.workspaces:
        _add_environment(builder, rng.choice(org.workspaces).id, mean_keys)
    for _ in range(_share(len(org.users), 0.02)):
        builder.create_user("PENDING" if rng.random() < 0.6 else "ACTIVE")
    builder.create_group()
    if org.workspaces:
        builder.create_flag_set(rng.choice(org.workspaces).id)
    builder.refresh()
    for _ in range(_share(len(org.change_requests), 0.05)):
        builder.create_change_request("REQUESTED")
    if rng.random() < 0.5:
        builder.create_change_request("SCHEDULE_REQUESTED")


def _add_environment(builder: OrganisationBuilder, workspace_id: str, mean_keys: int) -> None:
    """A new environment in which some of the workspace's flags and segments are set up."""
    org, rng = builder.org, builder.rng
    taken = {env.name for env in org.environments_of(workspace_id)}
    name = next(
        (n for n in ENVIRONMENT_NAMES if n not in taken), f"Env {org.generation}-{len(taken)}"
    )
    environment = builder.create_environment(
        workspace_id, EnvironmentPlan(name, False, defined_flags=0, active_segments=0)
    )
    builder.refresh()
    for flag in org.flags.get(workspace_id, []):
        if rng.random() < 0.5:
            builder.define_flag(flag, environment)
    for segment in org.segments.get(workspace_id, []):
        if rng.random() < 0.4:
            builder.activate_segment(segment, environment, rng.randint(0, 2 * mean_keys + 1))
