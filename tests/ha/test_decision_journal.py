"""The decision journal records a change of the vote within one verdict (a split after an outage
seen by no observer is still a HOLD), but not every change of a reason's age or detail."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover import controller
from failover import daemon as daemon_mod
from failover.config import loader, runtime
from failover.store import sqlite
from tests.ha.test_daemon_faults import config


def hold(sentence: str) -> daemon_mod.CycleResult:
    return daemon_mod.CycleResult(sentence, controller.Decision(controller.Verdict.HOLD, sentence, source="a"))


async def test_a_changed_vote_is_journaled_a_changed_age_is_not(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path / "state"))
    store = sqlite.SqliteStore(tmp_path / "j.db")
    d = daemon_mod.Daemon(runtime.resolve(loader.load(config(tmp_path))), store=store, holder="journal-test")
    try:
        for sentence in ("a down for 0 of 3 observers (obs-a healthy; obs-b healthy; obs-c healthy); no quorum",
                         "a down for 1 of 3 observers (obs-a down: refused; obs-b healthy; obs-c healthy); no quorum",
                         "a down for 1 of 3 observers (obs-a down: refused; obs-b stale: verdict 16s old; obs-c "
                         "healthy); no quorum"):
            await d._log(hold(sentence))
        assert [r.sentence[:30] for r in store.decisions(limit=10)] == ["a down for 1 of 3 observers (o",
                                                                        "a down for 0 of 3 observers (o"]
    finally:
        await d.services.aclose()
        store.close()
