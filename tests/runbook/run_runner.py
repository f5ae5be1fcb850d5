"""Execute (or resume) one run in its own process, as the daemon would; the test kills it with -9.

usage: run_runner.py DB PLAYBOOK RUN_ID
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for tests.runbook

from failover.playbook import engine, loader, registry
from failover.runbook import state
from failover.store import sqlite
from tests.runbook import rb_actions  # noqa: F401  (registers rb-note)


async def main(db: Path, playbook: Path, run_id: str) -> int:
    registry.ensure_builtin()  # the manual action, the step gate, the audit trail (the daemon imports them too)
    store = sqlite.SqliteStore(db)
    eng = engine.Engine(store=store, services=None)
    if store.get_run(run_id) is None:
        await eng.start(loader.load_playbook(playbook), params={"from": "act", "to": "stb"}, run_id=run_id)
        state.save_meta(store, run_id, state.RunMeta(requester="alice"))
    run = await eng.execute(run_id)
    print(run.phase.value)
    return 0 if run.phase.value == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])))
