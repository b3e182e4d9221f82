"""analytics_assets: the Split (Harness FME) Admin API in your warehouse, with dlt and Dagster.

Layout:
- ``split_source``: the dlt source (no Dagster imports); runs on its own.
- ``dagster_layer`` and ``definitions``: the Dagster asset graph over that source.
- ``sandbox``: a local, faithful fake of the Admin API for demos, tests and benchmarks.
"""
