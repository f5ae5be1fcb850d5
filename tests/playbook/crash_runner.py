"""Run (or resume) the crash playbook against a SQLite store; killed -9 by the test actions.

usage: crash_runner.py DB EFFECTS_DB CRASH_FILE PLAYBOOK
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for tests.playbook

from failover.playbook import engine
from failover.store import sqlite
from tests.playbook import pb_actions

RUN_ID = "crash-1"


async def main(db: Path, effects: Path, crash_file: Path, playbook: Path) -> int:
    store = sqlite.SqliteStore(db)
    services = pb_actions.Services(effects_db=effects, crash_file=crash_file)
    eng = engine.Engine(store=store, services=services, observers=[pb_actions.CrashAfterJournal(services)],
                        retry_base_delay=0.01)
    if store.get_run(RUN_ID) is None:
        from failover.playbook import loader

        await eng.start(loader.load_playbook(playbook), params={}, run_id=RUN_ID, kind="drill")
    run = await eng.execute(RUN_ID)
    print(run.phase.value)
    return 0 if run.phase.value == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*(Path(a) for a in sys.argv[1:5]))))
