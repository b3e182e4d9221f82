"""The Dagster UI, driven end to end in headless Chromium (``pytest -m browser``)."""
