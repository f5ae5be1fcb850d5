"""Append decisions to a SqliteStore forever, printing each id once its commit returned.

usage: wal_writer.py DB  (the test kills it with SIGKILL)
"""

from __future__ import annotations

import sys

from failover.store import sqlite

store = sqlite.SqliteStore(sys.argv[1])
store.set_state("writer", "started")
print("ready", flush=True)
n = 0
while True:
    n += 1
    record = store.append_decision(f"decision {n}", {"n": n, "pad": "x" * 200})
    store.set_state("last", n)
    print(record.id, flush=True)
