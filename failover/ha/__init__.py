"""High availability: several daemon instances, one leader, a quorum of observers.

* :mod:`failover.ha.quorum` — the observers' votes per site, and when they confirm an outage (pure);
* :mod:`failover.ha.coordinator` — one instance's duties: publish its verdicts, keep or take the
  leader lease, take office (raise the fencing epoch, adopt the run a dead leader left);
* :mod:`failover.ha.backend` — which store a config asks for (local SQLite or etcd).
"""
