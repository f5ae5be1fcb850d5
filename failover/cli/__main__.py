"""``python -m failover.cli`` (used by the demo to drive the lab exactly as an operator would)."""

from failover.cli import main

raise SystemExit(main())
