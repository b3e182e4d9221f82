"""Benchmarks of the Split ingestion against the local sandbox: ``python -m benchmarks.run``.

See docs/benchmarks.md for the method, the contenders and the latest results.
"""
