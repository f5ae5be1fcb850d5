"""The failover daemon: watch, replicate, decide, act — one cycle at a time, safe to kill at any point.

Loops (each a named task under a :class:`~failover.core.tasks.Supervisor`, restarted with backoff
when it dies and shown in ``status --json`` as ``daemon.tasks``):

* **watchers** — one per site (``health/watcher.py``), probing on the configured interval;
* **replicator** — copies new complete backups from the active site to every standby;
* **controller** — every interval: renew the lease, build one immutable snapshot, ``decide``,
  act, and log the decision's sentence once when it changes (Patroni's ``run_cycle``); a cycle
  that raises becomes that cycle's sentence ("cycle failed: …; holding"), is counted, and the
  next cycle runs;
* **run** — at most one playbook run at a time, executed by the engine while the controller keeps
  renewing the lease; losing the lease cancels it (the journal lets the next holder resume it).

Nothing here keeps state that matters only in memory: roles, the active site, the fencing epoch,
runs and their journals live in the store, so after ``kill -9`` a restarted daemon resumes the
unfinished run and completes it exactly once. With ``coordination.backend: etcd`` several instances
share that store (:mod:`failover.ha`): all observe and vote, one leads; only the leader replicates,
re-fences and runs playbooks.
"""

from failover.daemon.base import CycleResult as CycleResult
from failover.daemon.chaos import CrashAfterSteps as CrashAfterSteps
from failover.daemon.core import Daemon as Daemon
from failover.daemon.state import active_of as active_of
from failover.daemon.state import failed_streak as failed_streak
from failover.daemon.state import open_store as open_store
from failover.daemon.state import playbook_dirs as playbook_dirs
from failover.daemon.state import roles_of as roles_of
from failover.daemon.state import status_document as status_document

# re-exported: the CLI's read commands use them without importing the daemon
from failover.store.queries import TERMINAL as TERMINAL
from failover.store.queries import current_run as current_run
from failover.store.queries import run_document as run_document
