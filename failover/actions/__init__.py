"""The playbook actions: each is idempotent, carries the run's fencing epoch, and says what it did.

Importing this package registers every action with :mod:`failover.playbook.registry`.
"""

from failover.actions import buckets, dns, fence, lifecycle, restore, volumes

__all__ = ["buckets", "dns", "fence", "lifecycle", "restore", "volumes"]
