"""Attributes, rule-based segments and large segments: built and evolved (contract §3.4–§3.6).

They are drawn from random streams of their own, after everything else of a generation, so
adding them left the organisation the other 13 endpoints serve exactly as it was. Ids come
from the builder's per-kind serials (new kinds, so no other id moves).
"""

from __future__ import annotations

import base64
import hashlib
import random

from analytics_assets.sandbox.generate import DAY_MS, OrganisationBuilder
from analytics_assets.sandbox.model import (
    Attribute,
    Environment,
    LargeSegment,
    LargeSegmentDefinition,
    Record,
    RuleBasedSegment,
    RuleBasedSegmentDefinition,
    TrafficType,
)

ATTRIBUTE_STEMS: tuple[tuple[str, str], ...] = (
    ("age", "NUMBER"),
    ("country", "STRING"),
    ("plan", "STRING"),
    ("signup_date", "DATETIME"),
    ("interests", "SET"),
    ("orders", "NUMBER"),
    ("email", "STRING"),
    ("account-tier", "STRING"),
    ("last_seen", "DATETIME"),
    ("beta_programs", "SET"),
)
SUGGESTED_VALUES: dict[str, tuple[str, ...]] = {
    # contract §3.4: datetime values are epoch-ms strings, set values comma-separated strings.
    "STRING": ("Zürich", "São Paulo", "O'Hare", "free", "pro", "enterprise"),
    "NUMBER": ("18", "21", "65", "100"),
    "DATETIME": ("1704067200000", "1735689600000"),
    "SET": ("ios,android", "web", "sports,music"),
}
RULE_BASED_SEGMENT_NAMES = (
    "qa_account_users",
    "high_spenders",
    "beta_cohort",
    "internal_staff",
    "eu_residents",
    "power_users",
    "trial_accounts",
    "churned_last_30d",
)
LARGE_SEGMENT_NAMES = (
    "loyalty_members",
    "crm_export",
    "holdout_accounts",
    "fraud_blocklist",
    "b2b_contacts",
    "newsletter_optins",
)
LARGE_SEGMENT_DESCRIPTIONS = ("Nightly CSV export from the CRM", "", "Zoë's upload — don't edit")
RULE_BASED_DESCRIPTIONS = (
    "",
    "Accounts QA uses",
    "Users over 30 outside the beta",
    "Łukasz's list",
)


class TargetingBuilder:
    """Creates, edits and deletes the objects of §3.4–§3.6 in one organisation."""

    def __init__(self, builder: OrganisationBuilder, stream: str) -> None:
        self.builder = builder
        self.org = builder.org
        self.profile = builder.profile.targeting
        self.rng = random.Random(f"sandbox:{builder.seed}:{builder.profile.name}:{stream}")

    def past_time(self, days_back: float = 600.0) -> int:
        return self.builder.now - int(self.rng.uniform(0.0, days_back) * DAY_MS)

    def tags(self) -> list[str] | None:
        roll = self.rng.random()
        if roll < 0.5:
            return None
        if roll < 0.6:
            return []
        return sorted(self.rng.sample(("crm", "ops", "légacy", "team:growth"), 2))

    # --- attributes (§3.4) -----------------------------------------------------------------

    def create_attribute(self, traffic_type: TrafficType) -> Attribute:
        rng = self.rng
        stem, data_type = rng.choice(ATTRIBUTE_STEMS)
        attribute_id = self.builder.unique_name(traffic_type.id, stem, "attribute")
        implicit = rng.random() < 0.25  # created by saving identities: no type, no text
        attribute = Attribute(
            id=attribute_id,
            seq=self.builder.next_seq("attribute"),
            workspace_id=traffic_type.workspace_id,
            traffic_type_id=traffic_type.id,
            display_name=None if implicit else attribute_id.replace("_", " ").title(),
            description=None if implicit else rng.choice((None, "Sent by the mobile SDKs")),
            data_type=None if implicit else data_type,
            is_searchable=not implicit and rng.random() < 0.5,
            suggested_values=[]
            if implicit
            else sorted(rng.sample(SUGGESTED_VALUES[data_type], rng.randint(0, 2))),
        )
        self.org.attributes.setdefault(traffic_type.id, []).append(attribute)
        return attribute

    def edit_attribute(self, attribute: Attribute) -> None:
        stem_types = dict(ATTRIBUTE_STEMS)
        data_type = next(
            (t for stem, t in stem_types.items() if attribute.id.startswith(stem)), "STRING"
        )
        attribute.data_type = data_type
        attribute.display_name = self.rng.choice((None, attribute.id.upper(), "Renamed — v2"))
        attribute.suggested_values = sorted(
            self.rng.sample(SUGGESTED_VALUES[data_type], self.rng.randint(1, 2))
        )

    # --- rule-based segments (§3.6) --------------------------------------------------------

    def create_rule_based_segment(self, workspace_id: str) -> RuleBasedSegment:
        rng = self.rng
        traffic_types = self.org.traffic_types[workspace_id]
        created = self.past_time()
        digest = hashlib.blake2b(f"{self.builder.seed}:{created}".encode(), digest_size=16)
        segment = RuleBasedSegment(
            id=self.builder.new_id("rule_based_segment"),
            name=self.builder.unique_name(
                workspace_id, rng.choice(RULE_BASED_SEGMENT_NAMES), "rule_based_segment"
            ),
            workspace_id=workspace_id,
            traffic_type_id=(traffic_types[0] if rng.random() < 0.7 else traffic_types[1]).id,
            description=rng.choice(RULE_BASED_DESCRIPTIONS),
            # A Harness principal id, like `0MR8DysRQ6WymBsEb_-t3A` in HGO's fixture.
            creator_id=base64.urlsafe_b64encode(digest.digest()).decode()[:22],
            creation_time=created,
            update_time=created,
            tags=self.tags(),
        )
        self.org.rule_based_segments.setdefault(workspace_id, []).append(segment)
        return segment

    def matcher(self, segment: RuleBasedSegment) -> Record:
        rng = self.rng
        segments = self.org.segments.get(segment.workspace_id, [])
        attributes = self.org.attributes.get(segment.traffic_type_id, [])
        roll = rng.random()
        if roll < 0.3 and segments:
            return {"type": "IN_SEGMENT", "string": rng.choice(segments).name}
        attribute = rng.choice(attributes).id if attributes else "age"
        if roll < 0.65:
            return {"type": "GREATER_THAN_OR_EQUAL_NUMBER", "attribute": attribute, "number": 30}
        return {
            "type": "IN_LIST_STRING",
            "attribute": attribute,
            "negate": rng.random() < 0.2,
            "strings": sorted(rng.sample(SUGGESTED_VALUES["STRING"], 2)),
        }

    def rules(self, segment: RuleBasedSegment) -> list[Record]:
        # An enabled but not yet edited definition is empty (contract §3.6, enablerbsinenv).
        return [
            {
                "condition": {
                    "combiner": "AND",
                    "matchers": [self.matcher(segment) for _ in range(self.rng.randint(1, 2))],
                }
            }
            for _ in range(self.rng.choice((0, 1, 1, 2)))
        ]

    def excluded_segments(self, segment: RuleBasedSegment) -> list[Record]:
        rng = self.rng
        excluded: list[Record] = []
        standard = self.org.segments.get(segment.workspace_id, [])
        if standard and rng.random() < 0.4:
            excluded.append({"name": rng.choice(standard).name, "type": "standard_segment"})
        others = [
            other
            for other in self.org.rule_based_segments.get(segment.workspace_id, [])
            if other.id != segment.id
        ]
        if others and rng.random() < 0.3:
            excluded.append({"name": rng.choice(others).name, "type": "rule_based_segment"})
        return excluded

    def define_rule_based_segment(
        self, segment: RuleBasedSegment, environment: Environment
    ) -> RuleBasedSegmentDefinition:
        created = max(segment.creation_time, self.past_time(300))
        definition = RuleBasedSegmentDefinition(
            segment_id=segment.id,
            workspace_id=segment.workspace_id,
            environment_id=environment.id,
            rules=self.rules(segment),
            excluded_keys=[
                f"user_{self.rng.randint(1, 99999):05d}" for _ in range(self.rng.randint(0, 3))
            ],
            excluded_segments=self.excluded_segments(segment),
            creation_time=created,
            update_time=min(self.builder.now, created + self.rng.randint(0, 30) * DAY_MS),
        )
        self.org.rule_based_definitions.setdefault(environment.id, []).append(definition)
        return definition

    # --- large segments (§3.5) -------------------------------------------------------------

    def create_large_segment(self, workspace_id: str) -> LargeSegment:
        rng = self.rng
        traffic_types = self.org.traffic_types[workspace_id]
        roll = rng.random()
        segment = LargeSegment(
            id=self.builder.new_id("large_segment"),
            name=self.builder.unique_name(
                workspace_id, rng.choice(LARGE_SEGMENT_NAMES), "large_segment"
            ),
            workspace_id=workspace_id,
            description=None if roll < 0.3 else rng.choice(LARGE_SEGMENT_DESCRIPTIONS),
            description_absent=roll < 0.15,
            traffic_type_id=(traffic_types[0] if rng.random() < 0.8 else traffic_types[1]).id,
            creation_time=self.past_time(),
            tags=self.tags(),
        )
        self.org.large_segments.setdefault(workspace_id, []).append(segment)
        return segment

    def define_large_segment(
        self, segment: LargeSegment, environment: Environment
    ) -> LargeSegmentDefinition:
        definition = LargeSegmentDefinition(
            segment_name=segment.name,
            workspace_id=segment.workspace_id,
            environment_id=environment.id,
            creation_time=max(segment.creation_time, self.past_time(300)),
        )
        self.org.large_segment_definitions.setdefault(environment.id, []).append(definition)
        return definition

    # --- whole scopes ----------------------------------------------------------------------

    def fill_workspace(self, workspace_id: str, position: int | None) -> None:
        """Attributes per traffic type, then the workspace's rule-based and large segments.

        ``position`` is the workspace's place in generation 0 (None later): the first
        scopes get the profile's fixed counts.
        """
        profile, org = self.profile, self.org
        for traffic_type in org.traffic_types[workspace_id]:
            count = None
            if position is not None:
                count = self._count(
                    profile.fixed_attribute_counts, self._traffic_type_position(traffic_type)
                )
            if count is None:
                count = self.rng.randint(*profile.attributes_per_traffic_type)
            org.attributes.setdefault(traffic_type.id, [])
            for _ in range(count):
                self.create_attribute(traffic_type)
        org.rule_based_segments.setdefault(workspace_id, [])
        org.large_segments.setdefault(workspace_id, [])
        fixed = None if position is None else self._count(profile.fixed_segment_counts, position)
        rule_based = (
            fixed
            if fixed is not None
            else self.rng.randint(*profile.rule_based_segments_per_workspace)
        )
        large = (
            fixed if fixed is not None else self.rng.randint(*profile.large_segments_per_workspace)
        )
        for _ in range(rule_based):
            self.create_rule_based_segment(workspace_id)
        for _ in range(large):
            self.create_large_segment(workspace_id)
        self.builder.refresh()

    def fill_environment(self, environment: Environment, position: int | None) -> None:
        """Define some of the workspace's segments (exactly the fixed count for the first)."""
        org = self.org
        org.rule_based_definitions.setdefault(environment.id, [])
        org.large_segment_definitions.setdefault(environment.id, [])
        fixed = (
            None
            if position is None
            else self._count(self.profile.fixed_definition_counts, position)
        )
        rule_based = org.rule_based_segments.get(environment.workspace_id, [])
        large = org.large_segments.get(environment.workspace_id, [])
        for index in self._chosen(len(rule_based), fixed):
            self.define_rule_based_segment(rule_based[index], environment)
        for index in self._chosen(len(large), fixed):
            self.define_large_segment(large[index], environment)

    def _chosen(self, available: int, fixed: int | None) -> list[int]:
        """Which of ``available`` segments an environment defines, in creation order."""
        wanted = (
            min(fixed, available)
            if fixed is not None
            else round(available * self.rng.uniform(0.3, 0.9))
        )
        return sorted(self.rng.sample(range(available), wanted))

    def _traffic_type_position(self, traffic_type: TrafficType) -> int:
        ordered = [tt.id for ws in self.org.workspaces for tt in self.org.traffic_types[ws.id]]
        return ordered.index(traffic_type.id)

    @staticmethod
    def _count(fixed: tuple[int, ...], position: int) -> int | None:
        return fixed[position] if position < len(fixed) else None


def build_targeting(builder: OrganisationBuilder) -> None:
    """Generation 0: fill every workspace and environment."""
    targeting = TargetingBuilder(builder, "targeting:base")
    for position, workspace in enumerate(builder.org.workspaces):
        targeting.fill_workspace(workspace.id, position)
    for position, (_, environment) in enumerate(builder.org.iter_environments()):
        targeting.fill_environment(environment, position)
    builder.refresh()
    target_rule_based_segments(builder)


def target_rule_based_segments(builder: OrganisationBuilder) -> None:
    """Generation 0: some flag rules also match a rule-based segment defined in their
    environment, as `{"type": "IN_RULE_BASED_SEGMENT", "string": <name>}` (contract §3.6:
    "these definitions can be used in feature flags"). A stream of its own: nothing else moves.
    """
    org = builder.org
    rng = random.Random(f"sandbox:{builder.seed}:{builder.profile.name}:rule-based-matchers")
    for environment_id, definitions in org.definitions.items():
        defined = [
            org.rule_based_segment_by_id[d.segment_id].name
            for d in org.rule_based_definitions.get(environment_id, [])
        ]
        for definition in definitions:
            if not defined or not definition.rules or rng.random() >= 0.3:
                continue
            rule = rng.choice(definition.rules)
            matcher = {"type": "IN_RULE_BASED_SEGMENT", "string": rng.choice(defined)}
            rule["condition"]["matchers"] = [*rule["condition"]["matchers"], matcher]


def _drop_deleted_rule_based_matchers(builder: OrganisationBuilder) -> None:
    """Flag rules stop matching a rule-based segment no longer defined in their environment
    (the flag changes then), so no flag names a deleted segment."""
    org = builder.org
    for environment_id, definitions in org.definitions.items():
        defined = {
            org.rule_based_segment_by_id[d.segment_id].name
            for d in org.rule_based_definitions.get(environment_id, [])
            if d.segment_id in org.rule_based_segment_by_id
        }
        for definition in definitions:
            changed = False
            for rule in definition.rules:
                matchers = rule["condition"]["matchers"]
                kept = [
                    m
                    for m in matchers
                    if m["type"] != "IN_RULE_BASED_SEGMENT" or m["string"] in defined
                ]
                if len(kept) != len(matchers):
                    rule["condition"]["matchers"], changed = kept, True
            if changed:
                definition.rules = [r for r in definition.rules if r["condition"]["matchers"]]
                definition.last_update_time = builder.now


def _share(total: int, share: float) -> int:
    return min(total, max(1, round(total * share)))


def evolve_targeting(builder: OrganisationBuilder, generation: int) -> None:
    """One week of changes: new scopes filled; objects added, edited and deleted."""
    org = builder.org
    targeting = TargetingBuilder(builder, f"targeting:generation:{generation}")
    rng = targeting.rng
    for workspace in org.workspaces:
        if workspace.id not in org.rule_based_segments:
            targeting.fill_workspace(workspace.id, position=None)
    for _, environment in org.iter_environments():
        if environment.id not in org.rule_based_definitions:
            targeting.fill_environment(environment, position=None)
    # Deletions: a few segments everywhere, one definition of each kind in one environment.
    rule_based = [s for segments in org.rule_based_segments.values() for s in segments]
    if rule_based:
        doomed = {s.id for s in rng.sample(rule_based, _share(len(rule_based), 0.05))}
        for ws, segments in org.rule_based_segments.items():
            org.rule_based_segments[ws] = [s for s in segments if s.id not in doomed]
        for env, definitions in org.rule_based_definitions.items():
            org.rule_based_definitions[env] = [d for d in definitions if d.segment_id not in doomed]
    large = [s for segments in org.large_segments.values() for s in segments]
    if large:
        doomed_large = {
            (s.workspace_id, s.name) for s in rng.sample(large, _share(len(large), 0.05))
        }
        for ws, segments in org.large_segments.items():
            org.large_segments[ws] = [s for s in segments if (ws, s.name) not in doomed_large]
        for env, large_definitions in org.large_segment_definitions.items():
            org.large_segment_definitions[env] = [
                d for d in large_definitions if (d.workspace_id, d.segment_name) not in doomed_large
            ]
    for env, definitions in org.rule_based_definitions.items():
        if definitions and rng.random() < 0.2:
            victim = rng.choice(definitions)
            org.rule_based_definitions[env] = [d for d in definitions if d is not victim]
    for traffic_type_id, attributes in org.attributes.items():
        if attributes and rng.random() < 0.2:
            victim_attribute = rng.choice(attributes)
            org.attributes[traffic_type_id] = [a for a in attributes if a is not victim_attribute]
    builder.refresh()
    _drop_deleted_rule_based_matchers(builder)
    # Edits.
    all_attributes = [a for attributes in org.attributes.values() for a in attributes]
    for attribute in (
        rng.sample(all_attributes, _share(len(all_attributes), 0.05)) if all_attributes else []
    ):
        targeting.edit_attribute(attribute)
    rule_based = [s for segments in org.rule_based_segments.values() for s in segments]
    for segment in rng.sample(rule_based, _share(len(rule_based), 0.1)) if rule_based else []:
        segment.description = rng.choice(RULE_BASED_DESCRIPTIONS)
        segment.update_time = builder.now
    definitions = [d for ds in org.rule_based_definitions.values() for d in ds]
    for definition in rng.sample(definitions, _share(len(definitions), 0.1)) if definitions else []:
        segment = org.rule_based_segment_by_id[definition.segment_id]
        if rng.random() < 0.6:
            definition.rules = targeting.rules(segment)
        else:
            definition.excluded_keys = [*definition.excluded_keys, f"user_{generation:03d}99"]
        definition.update_time = builder.now - rng.randint(0, 6 * 24) * 3_600_000
    large = [s for segments in org.large_segments.values() for s in segments]
    for large_segment in rng.sample(large, _share(len(large), 0.1)) if large else []:
        large_segment.description = rng.choice(LARGE_SEGMENT_DESCRIPTIONS)
        large_segment.description_absent = False
        large_segment.tags = targeting.tags()
    # Additions.
    if org.workspaces:
        for _ in range(_share(len(rule_based), 0.04)):
            workspace = rng.choice(org.workspaces)
            segment = targeting.create_rule_based_segment(workspace.id)
            builder.refresh()
            for environment in org.environments_of(workspace.id):
                if rng.random() < 0.6:
                    targeting.define_rule_based_segment(segment, environment)
        for _ in range(_share(len(large), 0.04)):
            workspace = rng.choice(org.workspaces)
            large_segment = targeting.create_large_segment(workspace.id)
            builder.refresh()
            for environment in org.environments_of(workspace.id):
                if rng.random() < 0.5:
                    targeting.define_large_segment(large_segment, environment)
        workspace = rng.choice(org.workspaces)
        for traffic_type in org.traffic_types[workspace.id]:
            targeting.create_attribute(traffic_type)
    builder.refresh()
