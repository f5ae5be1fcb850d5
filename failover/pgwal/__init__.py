"""Continuous WAL archiving across providers and point-in-time recovery (pgBackRest).

The active site's PostgreSQL pushes every WAL segment to one pgBackRest repository per standby,
each in that standby's bucket on its own provider (:mod:`.pgbackrest` renders the configuration);
the daemon reads each standby's newest archived segment straight from the bucket (:mod:`.archive`:
the database's own RPO, shown in ``status`` and a readiness condition); a failover recovers the
target's database from its repository to the newest archived point (:mod:`.recovery`).
"""
