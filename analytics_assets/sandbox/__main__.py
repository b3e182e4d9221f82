"""``python -m analytics_assets.sandbox``: run the sandbox Admin API server."""

from analytics_assets.sandbox.cli import main

raise SystemExit(main())
