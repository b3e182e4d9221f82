"""Deterministic generation of a sandbox organisation from (seed, size, generation).

Generation 0 is built from the size profile; generation N is generation 0 evolved N times
(:mod:`analytics_assets.sandbox.evolve`). Everything is drawn from string-seeded
``random.Random`` instances and hash-derived ids, so the same inputs give the same
organisation in every process, and no wall-clock time is ever read.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections import Counter

from analytics_assets.sandbox.keys import KeySequence
from analytics_assets.sandbox.model import (
    ChangeRequest,
    Environment,
    Flag,
    FlagDefinition,
    FlagSet,
    Group,
    Organisation,
    Record,
    RolloutStatus,
    Segment,
    SegmentActivation,
    TrafficType,
    User,
    Workspace,
)
from analytics_assets.sandbox.sizes import (
    SIZES,
    EnvironmentPlan,
    SizeProfile,
    WorkspacePlan,
)

DAY_MS = 86_400_000
BASE_TIME_MS = 1_672_531_200_000
"""2023-01-01T00:00:00Z: generation-0 objects are created in the two years after it."""
GENERATION_0_TIME_MS = BASE_TIME_MS + 730 * DAY_MS
GENERATION_STEP_MS = 7 * DAY_MS
"""Each generation is one simulated week after the previous one."""


def generation_time(generation: int) -> int:
    """The simulated 'now' (epoch ms) of a generation."""
    return GENERATION_0_TIME_MS + generation * GENERATION_STEP_MS


# --- name and text pools: unicode and apostrophes on purpose ------------------------------

WORKSPACE_NAMES = (
    "Default",
    "Mobile Apps — São Paulo",
    "Partner's Portal",
    "Data Science",
    "Checkout & Payments",
    "Zürich Platform",
    "Growth Experiments",
    "Ops Tooling",
    "Search & Discovery",
    "Identity",
    "Billing",
    "Android",
    "iOS",
    "Web Storefront",
    "Internal Tools",
    "Logistics 物流",
    "Marketing Site",
    "Customer Success",
)
ENVIRONMENT_NAMES = (
    "Production",
    "Staging",
    "QA",
    "Development",
    "Sandbox",
    "Canary",
    "UAT",
    "Load-Test",
)
ROLLOUT_STATUSES = (
    ("Pre-Production", "Flags that are not yet serving traffic in production"),
    (
        "Ramping",
        "Splits that are turned on for a small percentage of users to make sure no "
        "performance issues or larger issues come up",
    ),
    (
        "Experimenting",
        "Splits that have are ramped for max power in an experiment to get results as "
        "quickly as possible",
    ),
    ("Released 100%", "Fully released; the flag can be cleaned up"),
    ("Killed", "Turned off because something went wrong"),
    ("Removed from code", "The flag's code references are gone"),
)
FLAG_AREAS = (
    "checkout",
    "search",
    "onboarding",
    "pricing",
    "mobile",
    "recs",
    "payments",
    "profile",
    "notifications",
    "ads",
    "cart",
    "inbox",
)
FLAG_FEATURES = (
    "new_flow",
    "dark_mode",
    "v2",
    "banner",
    "ranking",
    "redesign",
    "cache",
    "beta",
    "rate_limit",
    "experiment",
    "one_click",
    "tooltip",
)
SEGMENT_NAMES = (
    "beta_accounts",
    "employees",
    "vip_customers",
    "qa_testers",
    "eu_users",
    "churn_risk",
    "early_adopters",
    "partners",
    "blocked_ids",
    "internal_devices",
    "high_value",
    "new_signups",
)
TAGS = (
    "backend",
    "frontend",
    "mobile",
    "experiment",
    "ops",
    "kill-switch",
    "q3-launch",
    "légacy",
    "team:payments",
)
DESCRIPTIONS = (
    "Controls the new checkout flow for Zoë's team",
    "Don't remove: the iOS app still reads this",
    "Rollout of the naïve ranking model",
    "Temporary switch for the São Paulo launch",
    "",
    "Kill switch — turn off if error rates spike",
    'Experiment: "one-click" purchase vs. classic',
    "Owned by Łukasz's squad; ask before editing",
)
TREATMENT_SETS = (
    ("on", "off"),
    ("on", "off"),
    ("v1", "v2", "v3"),
    ("red", "blue", "green"),
    ("enabled", "disabled"),
)
FIRST_NAMES = (
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Siobhán", "siobhan"),
    ("Ana María", "ana.maria"),
    ("Łukasz", "lukasz"),
    ("Annie", "annie"),
    ("Bob", "bob"),
    ("Chloé", "chloe"),
    ("Dmitri", "dmitri"),
    ("Åsa", "asa"),
    ("Nguyễn", "nguyen"),
    ("Priya", "priya"),
    ("陈", "chen"),
    ("Kwame", "kwame"),
)
LAST_NAMES = (
    ("O'Neil", "oneil"),
    ("Müller", "mueller"),
    ("García", "garcia"),
    ("Dvořák", "dvorak"),
    ("Smith", "smith"),
    ("D'Angelo", "dangelo"),
    ("Björk", "bjork"),
    ("Tanaka", "tanaka"),
    ("Okafor", "okafor"),
    ("Ferreira", "ferreira"),
)
GROUP_NAMES = (
    "Administrators",
    "Data Science",
    "Zoë's Squad",
    "Équipe Paris",
    "Mobile Devs",
    "QA",
    "Product Managers",
    "Release Captains",
    "Support",
    "SRE on-call",
    "Growth",
    "Security",
)
CHANGE_REQUEST_TITLES = (
    "Adding new beta accounts",
    "Ramp to 50% for Zoë's experiment",
    "Kill it — errors in São Paulo",
    "Don't forget: restore after the incident",
    "Quarterly clean-up of stale flags",
    'Approve the "one-click" rollout',
)
TIMEZONES = ("America/Sao_Paulo", "Europe/Zurich", "Asia/Tokyo", "America/New_York")
MATCHER_ATTRIBUTES = (
    ("country", ("Zürich", "São Paulo", "O'Hare", "東京", "Reykjavík")),
    ("plan", ("free", "pro", "enterprise")),
    ("device", ("ios", "android", "web")),
)


def _uuid_from(text: str) -> str:
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


class OrganisationBuilder:
    """Builds and evolves one organisation; holds the counters that make ids unique.

    The builder keeps state across generations (id serials, workspaces that must stay
    without flags), so :func:`build_organisation` runs it from generation 0 upwards.
    """

    def __init__(self, seed: int, profile: SizeProfile) -> None:
        self.seed = seed
        self.profile = profile
        self.org = Organisation(
            seed=seed,
            size=profile.name,
            generation=0,
            organization_id=_uuid_from(f"{seed}:organization"),
        )
        self.rng = random.Random(f"sandbox:{seed}:{profile.name}:base")
        self.now = generation_time(0)
        self._serials: Counter[str] = Counter()
        self._names_in_workspace: dict[str, set[str]] = {}
        self.flagless_workspaces: set[str] = set()
        """Workspaces evolution left without flags; they must stay that way."""

    # --- identities ------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        """A UUID-like id, a pure function of (seed, kind, serial)."""
        self._serials[kind] += 1
        return _uuid_from(f"{self.seed}:{kind}:{self._serials[kind]}")

    def next_seq(self, kind: str) -> int:
        """A strictly increasing number per kind: the order of marker pagination."""
        self._serials[f"seq:{kind}"] += 1
        return self._serials[f"seq:{kind}"]

    def past_time(self, days_back: float = 700.0) -> int:
        """A creation time up to ``days_back`` days before the current generation's 'now'."""
        return self.now - int(self.rng.uniform(0.0, days_back) * DAY_MS)

    def unique_name(self, workspace_id: str, stem: str, kind: str) -> str:
        taken = self._names_in_workspace.setdefault(f"{kind}:{workspace_id}", set())
        name, counter = stem, 1
        while name in taken:
            counter += 1
            name = f"{stem}_{counter}"
        taken.add(name)
        return name

    # --- text helpers ----------------------------------------------------------------------

    def description(self, null_share: float = 0.2) -> str | None:
        if self.rng.random() < null_share:
            return None
        return self.rng.choice(DESCRIPTIONS)

    def tags(self) -> list[str] | None:
        roll = self.rng.random()
        if roll < 0.4:
            return None
        if roll < 0.5:
            return []
        return sorted(self.rng.sample(TAGS, self.rng.randint(1, 3)))

    # --- workspace-scoped objects ----------------------------------------------------------

    def add_workspace(self, plan: WorkspacePlan) -> Workspace:
        """Create a workspace with its traffic types, statuses, flag sets, flags and segments."""
        org = self.org
        workspace = Workspace(
            id=self.new_id("workspace"),
            name=plan.name,
            requires_title_and_comments=self.rng.random() < 0.3,
        )
        org.workspaces.append(workspace)
        ws = workspace.id
        org.traffic_types[ws] = [
            TrafficType(self.new_id("traffic_type"), "user", "name", ws),
            TrafficType(self.new_id("traffic_type"), "account", None, ws),
        ]
        if self.rng.random() < 0.5:
            org.traffic_types[ws].append(
                TrafficType(self.new_id("traffic_type"), "device", "deviceId", ws)
            )
        org.rollout_statuses[ws] = [
            RolloutStatus(self.new_id("rollout_status"), name, description, ws)
            for name, description in ROLLOUT_STATUSES
        ]
        org.flag_sets[ws] = []
        for _ in range(plan.flag_sets):
            self.create_flag_set(ws)
        org.environments[ws] = []
        org.flags[ws] = []
        org.segments[ws] = []
        self.refresh()
        flags = [self.create_flag(ws) for _ in range(plan.flags)]
        segments = [self.create_segment(ws) for _ in range(plan.segments)]
        for environment_plan in plan.environments:
            environment = self.create_environment(ws, environment_plan)
            self.refresh()
            defined = sorted(self.rng.sample(range(len(flags)), environment_plan.defined_flags))
            for index in defined:
                self.define_flag(flags[index], environment)
            active = sorted(self.rng.sample(range(len(segments)), environment_plan.active_segments))
            for index in active:
                self.activate_segment(segments[index], environment, key_count=0)
        return workspace

    def create_environment(self, workspace_id: str, plan: EnvironmentPlan) -> Environment:
        environment = Environment(
            id=self.new_id("environment"),
            name=plan.name,
            production=plan.production,
            workspace_id=workspace_id,
        )
        self.org.environments[workspace_id].append(environment)
        self.org.definitions[environment.id] = []
        self.org.activations[environment.id] = []
        return environment

    def create_flag_set(self, workspace_id: str) -> FlagSet:
        stem = f"{self.rng.choice(FLAG_AREAS)}.{self.rng.choice(('web', 'mobile', 'core'))}"
        flag_set = FlagSet(
            id=self.new_id("flag_set"),
            seq=self.next_seq("flag_set"),
            name=self.unique_name(workspace_id, stem, "flag_set"),
            description=self.rng.choice(("", "Flags evaluated by the mobile SDKs", "Core")),
            workspace_id=workspace_id,
            created_at=self.past_time() + self.rng.randint(0, 999),
        )
        self.org.flag_sets.setdefault(workspace_id, []).append(flag_set)
        return flag_set

    def create_flag(self, workspace_id: str) -> Flag:
        org = self.org
        stem = f"{self.rng.choice(FLAG_AREAS)}_{self.rng.choice(FLAG_FEATURES)}"
        traffic_types = org.traffic_types[workspace_id]
        statuses = org.rollout_statuses[workspace_id]
        created = self.past_time()
        owners: list[tuple[str, str]] = []
        for _ in range(self.rng.choice((0, 1, 1, 2))):
            if org.groups and self.rng.random() < 0.4:
                owners.append((self.rng.choice(org.groups).id, "group"))
            elif org.users:
                owners.append((self.rng.choice(org.users).id, "user"))
        flag = Flag(
            id=self.new_id("flag"),
            name=self.unique_name(workspace_id, stem, "flag"),
            workspace_id=workspace_id,
            description=self.description(),
            traffic_type_id=(traffic_types[0] if self.rng.random() < 0.7 else traffic_types[1]).id,
            creation_time=created,
            rollout_status_id=self.rng.choice(statuses).id,
            rollout_status_timestamp=min(self.now, created + self.rng.randint(0, 30) * DAY_MS),
            tags=self.tags(),
            owners=owners,
            legacy=self.rng.random() < 0.05,
        )
        org.flags[workspace_id].append(flag)
        org.flag_by_id[flag.id] = flag
        return flag

    def define_flag(self, flag: Flag, environment: Environment) -> FlagDefinition:
        """Define ``flag`` in ``environment`` with a random but plausible targeting body."""
        rng = self.rng
        treatments = list(rng.choice(TREATMENT_SETS))
        created = max(flag.creation_time, self.past_time(300))
        definition = FlagDefinition(
            flag_id=flag.id,
            environment_id=environment.id,
            killed=rng.random() < 0.08,
            treatments=[self.treatment(name) for name in treatments],
            default_treatment=treatments[-1],
            baseline_treatment=treatments[-1],
            traffic_allocation=rng.choice((100, 100, 100, 50, 10)),
            rules=[self.rule(flag.workspace_id, treatments) for _ in range(rng.randint(0, 3))],
            default_rule=self.buckets(treatments),
            creation_time=created,
            last_update_time=min(self.now, created + rng.randint(0, 60) * DAY_MS),
            last_traffic_received_at=None
            if rng.random() < 0.25
            else self.now - rng.randint(0, 9) * DAY_MS,
            impressions_disabled=rng.random() < 0.1,
            flag_set_ids=self.flag_sets_for(flag),
        )
        self.org.definitions[environment.id].append(definition)
        return definition

    def flag_sets_for(self, flag: Flag) -> list[str]:
        """Flag sets are per flag, identical in every environment: draw them from the id."""
        flag_sets = self.org.flag_sets.get(flag.workspace_id, [])
        if not flag_sets:
            return []
        chooser = random.Random(f"{self.seed}:flag-sets:{flag.id}")
        count = chooser.choice((0, 0, 1, 1, 2))
        return [flag_set.id for flag_set in chooser.sample(flag_sets, min(count, len(flag_sets)))]

    def treatment(self, name: str) -> Record:
        rng = self.rng
        treatment: Record = {
            "name": name,
            "configurations": (
                json.dumps({"color": rng.choice(("#ff0000", "#00ff00")), "label": "Zoë's pick"})
                if rng.random() < 0.3
                else None
            ),
            "description": rng.choice((None, f"Serve {name}", "Treatment for O'Neil's cohort")),
        }
        # Individually targeted keys and segments are optional in the record.
        if rng.random() < 0.3:
            treatment["keys"] = [
                f"user_{rng.randint(1, 99999):05d}" for _ in range(rng.randint(1, 3))
            ]
        if rng.random() < 0.2:
            treatment["segments"] = [rng.choice(SEGMENT_NAMES)]
        return treatment

    def buckets(self, treatments: list[str]) -> list[Record]:
        if len(treatments) == 1 or self.rng.random() < 0.5:
            return [{"treatment": self.rng.choice(treatments), "size": 100}]
        first = self.rng.choice((10, 25, 50, 90))
        return [
            {"treatment": treatments[0], "size": first},
            {"treatment": treatments[1], "size": 100 - first},
        ]

    def matcher(self, workspace_id: str) -> Record:
        rng = self.rng
        kind = rng.random()
        segments = self.org.segments.get(workspace_id, [])
        if kind < 0.35 and segments:
            return {"type": "IN_SEGMENT", "string": rng.choice(segments).name}
        if kind < 0.7:
            attribute, values = rng.choice(MATCHER_ATTRIBUTES)
            return {
                "type": "IN_LIST_STRING",
                "attribute": attribute,
                "strings": sorted(rng.sample(values, rng.randint(1, min(3, len(values))))),
            }
        if kind < 0.85:
            return {
                "type": "GREATER_THAN_OR_EQUAL_NUMBER",
                "attribute": "age",
                "number": rng.randint(13, 65),
            }
        return {
            "type": "BETWEEN_NUMBER",
            "attribute": "orders",
            "between": {"from": 1, "to": rng.randint(5, 50)},
        }

    def rule(self, workspace_id: str, treatments: list[str]) -> Record:
        matchers = [self.matcher(workspace_id) for _ in range(self.rng.randint(1, 2))]
        return {
            "condition": {"combiner": "AND", "matchers": matchers},
            "buckets": self.buckets(treatments),
        }

    def create_segment(self, workspace_id: str) -> Segment:
        traffic_types = self.org.traffic_types[workspace_id]
        segment = Segment(
            name=self.unique_name(workspace_id, self.rng.choice(SEGMENT_NAMES), "segment"),
            workspace_id=workspace_id,
            description=self.description(null_share=0.3),
            traffic_type_id=(traffic_types[0] if self.rng.random() < 0.75 else traffic_types[1]).id,
            creation_time=self.past_time(),
            tags=self.tags(),
        )
        self.org.segments[workspace_id].append(segment)
        self.org.segment_by_key[(workspace_id, segment.name)] = segment
        return segment

    def activate_segment(
        self, segment: Segment, environment: Environment, key_count: int
    ) -> SegmentActivation:
        activation = SegmentActivation(
            segment_name=segment.name,
            workspace_id=segment.workspace_id,
            environment_id=environment.id,
            creation_time=max(segment.creation_time, self.past_time(300)),
            keys=KeySequence(f"{self.seed}/{environment.id}/{segment.name}", 0, key_count),
        )
        self.org.activations[environment.id].append(activation)
        return activation

    # --- organisation-scoped objects -------------------------------------------------------

    def create_group(self) -> Group:
        taken = {group.name for group in self.org.groups}
        stem = self.rng.choice(GROUP_NAMES)
        name, counter = stem, 1
        while name in taken:  # contract §2.10: group names are unique per account
            counter += 1
            name = f"{stem} {counter}"
        group = Group(
            id=self.new_id("group"),
            name=name,
            description=self.rng.choice(
                ("", "", "Grants access to advanced administrative features", "Zoë's on-call rota")
            ),
        )
        self.org.groups.append(group)
        return group

    def create_user(self, status: str) -> User:
        rng = self.rng
        first, first_ascii = rng.choice(FIRST_NAMES)
        last, last_ascii = rng.choice(LAST_NAMES)
        seq = self.next_seq("user")
        group_ids: list[str] | None = None
        if self.org.groups and rng.random() < 0.6:
            group_ids = [
                group.id
                for group in rng.sample(
                    self.org.groups, min(len(self.org.groups), rng.randint(1, 2))
                )
            ]
        user = User(
            id=self.new_id("user"),
            seq=seq,
            name=f"{first} {last}",
            email=f"{first_ascii}.{last_ascii}.{seq}@example.com",
            status=status,
            two_factor=rng.random() < 0.35,
            group_ids=group_ids,
        )
        self.org.users.append(user)
        return user

    def create_change_request(self, status: str) -> ChangeRequest | None:
        """A change request on a random flag definition or active segment (§2.11)."""
        org = self.org
        rng = self.rng
        candidates = [
            ws
            for ws in org.workspaces
            if any(
                org.definitions[env.id] or org.activations[env.id]
                for env in org.environments_of(ws.id)
            )
        ]
        if not candidates:
            return None
        workspace = rng.choice(candidates)
        environments = [
            env
            for env in org.environments_of(workspace.id)
            if org.definitions[env.id] or org.activations[env.id]
        ]
        environment = rng.choice(environments)
        definitions = org.definitions[environment.id]
        activations = org.activations[environment.id]
        request_id = self.new_id("change_request")
        created = self.past_time(200)
        submitter = rng.choice([user.email for user in org.users[:50]] or ["admin-api-key"])
        comments: list[Record] = [
            {
                "comment": rng.choice(("Processed via Admin API", "Please review — Zoë", "LGTM?")),
                "user": submitter,
                "role": "SUBMITTER",
                "timestamp": created,
            }
        ]
        if status in ("APPROVED", "REJECTED", "PUBLISHED"):
            comments.append(
                {
                    "comment": "Looks good" if status != "REJECTED" else "Not yet, sorry",
                    "user": "admin-api-key",
                    "role": "APPROVER",
                    "timestamp": created + 3_600_000,
                }
            )
        split: Record | None = None
        segment: Record | None = None
        rollout_status: Record | None = None
        rollout_status_timestamp: int | None = None
        if definitions and (not activations or rng.random() < 0.7):
            definition = rng.choice(definitions)
            split = definition.record(org)
            split["openChangeRequestId"] = (
                request_id if status in ("REQUESTED", "SCHEDULE_REQUESTED") else None
            )
            operation = rng.choice(("CREATE", "UPDATE", "UPDATE", "KILL", "RESTORE", "ARCHIVE"))
            if rng.random() < 0.6:
                status_object = rng.choice(org.rollout_statuses[workspace.id])
                rollout_status = {
                    "id": status_object.id,
                    "type": "rolloutStatus",
                    "name": status_object.name,
                }
                rollout_status_timestamp = created
        else:
            activation = rng.choice(activations)
            keys = activation.keys.page(0, 3) or ["San Francisco", "Clark's Mountain"]
            segment = {
                "name": activation.segment_name,
                "keys": keys,
                "environment": environment.reference(),
            }
            operation = rng.choice(("CREATE", "ARCHIVE"))
        request = ChangeRequest(
            id=request_id,
            seq=self.next_seq("change_request"),
            status=status,
            title=rng.choice(CHANGE_REQUEST_TITLES),
            comment=rng.choice(
                (None, "Needed for the São Paulo launch", "Don't merge before Friday")
            ),
            operation_type=operation,
            workspace_id=workspace.id,
            environment_id=environment.id,
            approvers=sorted(
                {
                    rng.choice(["admin-api-key", *(user.email for user in org.users[:20])])
                    for _ in range(rng.randint(1, 2))
                }
            ),
            comments=comments,
            rollout_status=rollout_status,
            rollout_status_timestamp=rollout_status_timestamp,
            split=split,
            segment=segment,
        )
        if status == "SCHEDULE_REQUESTED":
            request.scheduled_for = self.now + rng.randint(1, 30) * DAY_MS
            request.scheduled_for_timezone = rng.choice(TIMEZONES)
        org.change_requests.append(request)
        return request

    # --- whole-organisation steps ----------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild indexes so new objects can be looked up while building."""
        self.org.freeze()

    def random_plans(self) -> list[WorkspacePlan]:
        profile, rng = self.profile, self.rng
        plans = []
        for index in range(profile.workspace_count):
            name = WORKSPACE_NAMES[index % len(WORKSPACE_NAMES)]
            if index >= len(WORKSPACE_NAMES):
                name = f"{name} {index // len(WORKSPACE_NAMES) + 1}"
            flags = rng.randint(*profile.flags_per_workspace)
            segments = rng.randint(*profile.segments_per_workspace)
            environments = []
            for position in range(rng.randint(*profile.environments_per_workspace)):
                production = position == 0
                defined_share = 0.95 if production else rng.uniform(0.4, 0.9)
                active_share = 0.85 if production else rng.uniform(0.3, 0.8)
                environments.append(
                    EnvironmentPlan(
                        name=ENVIRONMENT_NAMES[position % len(ENVIRONMENT_NAMES)],
                        production=production,
                        defined_flags=round(flags * defined_share),
                        active_segments=round(segments * active_share),
                    )
                )
            plans.append(
                WorkspacePlan(
                    name=name,
                    environments=tuple(environments),
                    flags=flags,
                    segments=segments,
                    flag_sets=rng.randint(*profile.flag_sets_per_workspace),
                )
            )
        return plans

    def distribute_keys(self, activations: list[SegmentActivation], total: int) -> None:
        """Give ``activations`` about ``total`` keys, skewed (a few big segments, many small)."""
        fixed = self.profile.fixed_key_counts
        for activation, count in zip(activations, fixed, strict=False):
            activation.keys = KeySequence(activation.keys.salt, 0, count)
        rest = activations[len(fixed) :]
        weights = [self.rng.paretovariate(1.2) for _ in rest]
        for activation, count in zip(
            rest, spread(total, weights, self.profile.max_keys_per_segment), strict=True
        ):
            activation.keys = KeySequence(activation.keys.salt, 0, count)

    def build_generation_zero(self) -> None:
        profile = self.profile
        for _ in range(profile.groups):
            self.create_group()
        # Users are created status by status but interleaved, so every status spans the list.
        statuses = [status for status, count in profile.users.items() for _ in range(count)]
        self.rng.shuffle(statuses)
        for status in statuses:
            self.create_user(status)
        for plan in profile.workspace_plans or self.random_plans():
            self.add_workspace(plan)
        activations = [
            act for _, env in self.org.iter_environments() for act in self.org.activations[env.id]
        ]
        self.distribute_keys(activations, profile.segment_keys_total)
        self.refresh()
        request_statuses = [
            status for status, count in profile.change_requests.items() for _ in range(count)
        ]
        self.rng.shuffle(request_statuses)
        for status in request_statuses:
            self.create_change_request(status)
        # A few activations have a pending change request on them (contract §2.6 envelope).
        segment_requests = [
            r for r in self.org.change_requests if r.segment and r.status == "REQUESTED"
        ]
        for request in segment_requests[:3]:
            activation = self.org.activation_by_key.get(
                (request.environment_id or "", request.segment["name"] if request.segment else "")
            )
            if activation is not None:
                activation.open_change_request_id = request.id
        self.refresh()


def spread(total: int, weights: list[float], cap: int) -> list[int]:
    """Split ``total`` proportionally to ``weights``, no share above ``cap``."""
    counts = [0] * len(weights)
    open_positions = list(range(len(weights)))
    remaining = total
    while open_positions and remaining > 0:
        weight_sum = sum(weights[i] for i in open_positions)
        over = [i for i in open_positions if remaining * weights[i] / weight_sum > cap]
        if not over:
            for i in open_positions:
                counts[i] = int(remaining * weights[i] / weight_sum)
            leftover = remaining - sum(counts[i] for i in open_positions)
            for i in open_positions[:leftover]:
                counts[i] += 1
            break
        for i in over:
            counts[i] = cap
            remaining -= cap
        capped = set(over)
        open_positions = [i for i in open_positions if i not in capped]
    return counts


def build_organisation(seed: int = 42, size: str = "tiny", generation: int = 0) -> Organisation:
    """The organisation for ``seed`` and ``size`` as it is at ``generation``.

    Same arguments, same organisation, in any process. Generation N is generation N-1 with
    one more week of changes applied (see :mod:`analytics_assets.sandbox.evolve`).
    """
    from analytics_assets.sandbox.evolve import evolve  # evolve imports this module
    from analytics_assets.sandbox.targeting import build_targeting  # so does targeting

    if size not in SIZES:
        raise ValueError(f"unknown sandbox size {size!r}; choose one of {', '.join(SIZES)}")
    if generation < 0:
        raise ValueError(f"generation must be 0 or more, got {generation}")
    builder = OrganisationBuilder(seed, SIZES[size])
    builder.build_generation_zero()
    # Last, from a stream of its own: the other kinds stay exactly as before.
    build_targeting(builder)
    for step in range(1, generation + 1):
        evolve(builder, step)
    return builder.org.freeze()
