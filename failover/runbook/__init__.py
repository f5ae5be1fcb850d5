"""The runbook: runs driven by people — step by step, manual steps, four eyes, break glass — and
the printable Notfallhandbuch rendered from the same config and playbooks the engine executes.

* :mod:`~failover.runbook.state` — a run's runbook facts (requester, step mode, break glass) and
  the sign-offs people give (store level, used by the engine's gate and the manual action);
* :mod:`~failover.runbook.operators` — who is acting: operators, roles, secrets (constant time);
* :mod:`~failover.runbook.safety` — the blocking safety rules and their break-glass override;
* :mod:`~failover.runbook.service` — start, next, confirm, skip, abort, approve (each audited);
* :mod:`~failover.runbook.view` — where a run is, what comes next, who must act;
* :mod:`~failover.runbook.handbook` — the Notfallhandbuch (Markdown, HTML, PDF).
"""
