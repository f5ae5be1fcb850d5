"""`failover audit verify` names each kind of tampering: a changed, a deleted and a reordered entry,
in the state database and in an exported file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from failover import audit
from failover.store import sqlite
from tests.runbook.conftest import World


def fill(world: World) -> Path:
    store = world.store()
    for i in range(1, 7):
        store.append_audit(actor="alice" if i % 2 else "bob", action="step.confirm", run="1", subject=f"s{i}",
                           details={"evidence": {"n": i}})
    store.append_decision("ionos-de-fra healthy; no action")  # decisions are chained too
    store.close()
    return world.state / "failover.db"


def verify(world: World, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, object]]:
    rc, doc, err = world.cli("audit", "verify", "--json", *extra, capsys=capsys)
    assert isinstance(doc, dict), err
    return rc, doc


def test_an_intact_log_verifies_and_its_export_too(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fill(world)
    rc, doc = verify(world, capsys)
    assert rc == 0 and doc["intact"] is True and doc["entries"] == 7
    rc, text, _ = world.cli("audit", "show", capsys=capsys)
    assert rc == 0 and "decision" in str(text) and "ionos-de-fra healthy" in str(text)
    export = world.root / "audit.jsonl"
    assert world.cli("audit", "export", "-o", str(export), capsys=capsys)[0] == 0
    rc, doc = verify(world, capsys, "--file", str(export))
    assert rc == 0 and doc["entries"] == 7


@pytest.mark.parametrize(("tamper", "kind", "seq"), [
    ("UPDATE audit SET body = replace(body, '\"n\":3', '\"n\":30') WHERE seq = 3", "changed", 3),
    ("DELETE FROM audit WHERE seq = 4", "deleted", 5),
    # entries 3 and 4 change places (each with its own hash)
    ("UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4;"
     " UPDATE audit SET seq = 4 WHERE seq = -3", "reordered", 3),
])
def test_verify_names_the_tampered_entry(world: World, capsys: pytest.CaptureFixture[str], tamper: str, kind: str,
                                         seq: int) -> None:
    db = fill(world)
    with sqlite3.connect(db) as conn:
        conn.executescript(tamper)
    rc, doc = verify(world, capsys)
    problems = doc["problems"]
    assert rc == 1 and doc["intact"] is False and isinstance(problems, list)
    assert (problems[0]["kind"], problems[0]["seq"]) == (kind, seq), problems
    rc, text, _ = world.cli("audit", "verify", capsys=capsys)
    assert rc == 1 and f"TAMPERED: entry {4 if kind == 'deleted' else seq}" in str(text)


def test_a_recomputed_hash_is_caught_by_the_next_link(world: World) -> None:
    db = fill(world)
    entries = sqlite.SqliteStore(db).audit_records()
    forged = entries[1].body | {"actor": "mallory"}
    from failover.store import audit_hash

    entries[1] = type(entries[1])(seq=2, body=forged, prev=entries[1].prev, hash=audit_hash(entries[1].prev, forged))
    problems = audit.verify(entries)
    assert [(p.kind, p.seq) for p in problems] == [("changed", 2)]


def test_lines_swapped_in_an_export_are_reported_as_reordered(world: World,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    fill(world)
    export = world.root / "audit.jsonl"
    world.cli("audit", "export", "-o", str(export), capsys=capsys)
    lines = export.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    export.write_text("\n".join(lines) + "\n")
    rc, doc = verify(world, capsys, "--file", str(export))
    assert rc == 1 and {p["kind"] for p in doc["problems"]} == {"reordered"}  # type: ignore[union-attr]
    assert json.loads(lines[2])["seq"] == 4
    export.write_text("not json\n")
    rc, _, err = world.cli("audit", "verify", "--file", str(export), capsys=capsys)
    assert rc == 2 and f"{export}:1:" in err
