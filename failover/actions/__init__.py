"""The playbook actions: each is idempotent, carries the run's fencing epoch, and says what it did.

Importing this package registers every action with :mod:`failover.playbook.registry`, the runbook's
step gate (:mod:`failover.actions.manual`) and the audit trail's observer (:mod:`failover.audit`).
"""

from failover import audit
from failover.actions import buckets, database, dns, fence, lifecycle, manual, reprotect, restore, volumes

__all__ = ["audit", "buckets", "database", "dns", "fence", "lifecycle", "manual", "reprotect", "restore", "volumes"]
