"""The Dagster layer: assets, partitions, resources, sensors, schedules and checks.

Everything here wraps ``analytics_assets.split_source``; ``analytics_assets.definitions``
composes it into the code location.
"""
