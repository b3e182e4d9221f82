"""Named organisation sizes: ``new``, ``tiny``, ``demo``, ``large`` and ``xlarge``.

``new`` is an organisation just signed up: one workspace with one environment and its
default traffic types, one user, and nothing else (no flag, segment or change request), so
most tables are empty.

``tiny`` is laid out by hand so that it holds the pagination edge cases the tests need at
each endpoint's maximum page size (contract §1.5, §5.3): scopes with exactly one full page,
one more than a full page, and none at all. The other sizes are drawn from ranges.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvironmentPlan:
    """An environment to create, and how many of its workspace's flags/segments it uses."""

    name: str
    production: bool
    defined_flags: int
    active_segments: int


@dataclass(frozen=True)
class WorkspacePlan:
    """A workspace to create with exact counts."""

    name: str
    environments: tuple[EnvironmentPlan, ...]
    flags: int
    segments: int
    flag_sets: int


@dataclass(frozen=True)
class TargetingProfile:
    """How many attributes, rule-based and large segments there are (contract §3.4–§3.6).

    The ``fixed_*`` counts go to the first scopes in creation order (traffic types,
    workspaces, environments), for the page-size edge cases; the other scopes draw from the
    ranges. An environment defines a random share of its workspace's segments.
    """

    attributes_per_traffic_type: tuple[int, int] = (0, 12)
    rule_based_segments_per_workspace: tuple[int, int] = (0, 10)
    large_segments_per_workspace: tuple[int, int] = (0, 6)
    fixed_attribute_counts: tuple[int, ...] = ()
    fixed_segment_counts: tuple[int, ...] = ()
    """Rule-based and large segments of the first workspaces."""
    fixed_definition_counts: tuple[int, ...] = ()
    """Rule-based and large segments defined in the first environments."""


@dataclass(frozen=True)
class SizeProfile:
    """How big an organisation is; ``workspace_plans`` fixes the layout, else ranges apply."""

    name: str
    segment_keys_total: int
    users: dict[str, int]
    groups: int
    change_requests: dict[str, int]
    workspace_plans: tuple[WorkspacePlan, ...] = ()
    workspace_count: int = 0
    environments_per_workspace: tuple[int, int] = (2, 4)
    flags_per_workspace: tuple[int, int] = (10, 40)
    segments_per_workspace: tuple[int, int] = (5, 15)
    flag_sets_per_workspace: tuple[int, int] = (0, 5)
    fixed_key_counts: tuple[int, ...] = ()
    """Key counts given to the first activations, in order (tiny's 100 / 101 / 0 cases)."""
    max_keys_per_segment: int = 100_000
    """contract §2.6: at most 100,000 keys per segment."""
    targeting: TargetingProfile = TargetingProfile()


def _statuses(**counts: int) -> dict[str, int]:
    return dict(counts)


TINY = SizeProfile(
    name="tiny",
    # Users: exactly one maximum page (200) of ACTIVE users. Change requests: exactly one
    # maximum page (100) of REQUESTED ones and none SCHEDULE_REQUESTED.
    users=_statuses(ACTIVE=200, DEACTIVATED=9, PENDING=4),
    groups=6,
    change_requests=_statuses(
        REQUESTED=100, SCHEDULE_REQUESTED=0, APPROVED=6, REJECTED=3, WITHDRAWN=2, PUBLISHED=8
    ),
    segment_keys_total=2_000,
    fixed_key_counts=(100, 101, 0),
    # Attributes page by 200 (§3.4), rule-based and large segments by 50 (§3.5, §3.6): the
    # Default workspace's traffic types have 201 / 200 / 0 attributes (when it has a third),
    # Default and the next workspace 51 / 50 segments, Partner's Portal 0; Default's
    # Production / Staging / Development define 51 / 50 / 0 of them.
    targeting=TargetingProfile(
        attributes_per_traffic_type=(0, 6),
        rule_based_segments_per_workspace=(0, 6),
        large_segments_per_workspace=(0, 4),
        fixed_attribute_counts=(201, 200, 0),
        fixed_segment_counts=(51, 50, 0),
        fixed_definition_counts=(51, 50, 0),
    ),
    workspace_plans=(
        # 51 flags/segments: one full page of 50 plus one; Staging has exactly 50,
        # Development none at all.
        WorkspacePlan(
            name="Default",
            environments=(
                EnvironmentPlan("Production", True, defined_flags=51, active_segments=51),
                EnvironmentPlan("Staging", False, defined_flags=50, active_segments=50),
                EnvironmentPlan("Development", False, defined_flags=0, active_segments=0),
            ),
            flags=51,
            segments=51,
            flag_sets=4,
        ),
        WorkspacePlan(
            name="Mobile Apps — São Paulo",
            environments=(
                EnvironmentPlan("Prod", True, defined_flags=50, active_segments=30),
                EnvironmentPlan("QA", False, defined_flags=20, active_segments=10),
            ),
            flags=50,
            segments=50,
            flag_sets=0,
        ),
        WorkspacePlan(
            name="Partner's Portal",
            environments=(EnvironmentPlan("Production", True, 0, 0),),
            flags=0,
            segments=0,
            flag_sets=2,
        ),
        WorkspacePlan(
            name="Data Science",
            environments=(
                EnvironmentPlan("Production", True, defined_flags=7, active_segments=4),
                EnvironmentPlan("Sandbox", False, defined_flags=3, active_segments=2),
            ),
            flags=7,
            segments=6,
            flag_sets=5,
        ),
    ),
)

DEMO = SizeProfile(
    name="demo",
    workspace_count=4,
    environments_per_workspace=(3, 4),
    flags_per_workspace=(25, 40),
    segments_per_workspace=(10, 14),
    flag_sets_per_workspace=(2, 6),
    segment_keys_total=30_000,
    users=_statuses(ACTIVE=140, DEACTIVATED=30, PENDING=12),
    groups=14,
    targeting=TargetingProfile((3, 30), (5, 20), (0, 6)),
    change_requests=_statuses(
        REQUESTED=45, SCHEDULE_REQUESTED=4, APPROVED=25, REJECTED=9, WITHDRAWN=6, PUBLISHED=120
    ),
)

LARGE = SizeProfile(
    name="large",
    workspace_count=12,
    environments_per_workspace=(3, 6),
    flags_per_workspace=(60, 200),
    segments_per_workspace=(25, 60),
    flag_sets_per_workspace=(3, 30),
    segment_keys_total=1_250_000,
    users=_statuses(ACTIVE=2_000, DEACTIVATED=400, PENDING=150),
    groups=60,
    targeting=TargetingProfile((5, 120), (10, 80), (0, 30)),
    change_requests=_statuses(
        REQUESTED=300, SCHEDULE_REQUESTED=40, APPROVED=250, REJECTED=80, WITHDRAWN=60, PUBLISHED=900
    ),
)

XLARGE = SizeProfile(
    name="xlarge",
    workspace_count=16,
    environments_per_workspace=(3, 6),
    flags_per_workspace=(80, 220),
    segments_per_workspace=(30, 70),
    flag_sets_per_workspace=(3, 30),
    segment_keys_total=3_500_000,
    users=_statuses(ACTIVE=4_000, DEACTIVATED=800, PENDING=300),
    groups=100,
    targeting=TargetingProfile((5, 250), (10, 120), (0, 40)),
    change_requests=_statuses(
        REQUESTED=500,
        SCHEDULE_REQUESTED=60,
        APPROVED=400,
        REJECTED=120,
        WITHDRAWN=90,
        PUBLISHED=1_500,
    ),
)

NEW = SizeProfile(
    name="new",
    users=_statuses(ACTIVE=1),
    groups=0,
    change_requests={},
    segment_keys_total=0,
    workspace_plans=(
        WorkspacePlan(
            name="Default",
            environments=(EnvironmentPlan("Production", True, 0, 0),),
            flags=0,
            segments=0,
            flag_sets=0,
        ),
    ),
    targeting=TargetingProfile((0, 0), (0, 0), (0, 0)),
)

SIZES: dict[str, SizeProfile] = {
    profile.name: profile for profile in (NEW, TINY, DEMO, LARGE, XLARGE)
}
