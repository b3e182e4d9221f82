"""A local sandbox (fake server) of the Split.io / Harness FME Admin API.

Written from ``shared/split-admin-api.md`` alone, independently of the ingestion code, so the
two check each other. Modules:

* :mod:`.endpoints` — the endpoint table (paths, pagination styles, page sizes, keys);
* :mod:`.sizes`, :mod:`.generate`, :mod:`.evolve`, :mod:`.keys`, :mod:`.model` — the
  deterministic organisation per (seed, size, generation), with lazily generated keys;
  :mod:`.targeting` adds attributes, rule-based and large segments (contract §3.4–§3.6);
* :mod:`.forms` — the documented forms of those newer endpoints, each one selectable;
* :mod:`.pagination` — the three envelopes; :mod:`.app` — routes and control endpoints;
* :mod:`.gateway`, :mod:`.ratelimit`, :mod:`.faults`, :mod:`.stats` — cross-cutting behaviour;
* :mod:`.truth` — ground truth and minimal request counts;
* :mod:`.cli`, :mod:`.process` — running it, in the foreground or as a managed subprocess.
"""

from analytics_assets.sandbox.config import FAULT_KINDS, SandboxConfig
from analytics_assets.sandbox.process import SandboxProcess

__all__ = ["FAULT_KINDS", "SandboxConfig", "SandboxProcess"]
