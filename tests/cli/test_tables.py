"""Tables that fit: the status and history tables at 80 and 200 columns (pure rendering)."""

from __future__ import annotations

import re

from failover.cli import tables
from tests.cli.docs import LONG_REASON, SITES, status_doc

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def assert_fits(lines: list[str], width: int) -> None:
    too_long = [line for line in lines if len(ANSI.sub("", line)) > width]
    assert not too_long, too_long


def row_of(lines: list[str], name: str) -> str:
    return next(line for line in lines if line.startswith(name + " "))


def test_status_at_80_columns_keeps_names_whole_and_puts_reasons_under_their_row() -> None:
    lines = tables.status_lines(status_doc(), width=80)
    assert_fits(lines, 80)
    for name in SITES:
        assert row_of(lines, name)  # every name starts a row, in full
    scs = lines.index(row_of(lines, "scs-pco-prod1"))
    assert lines[scs + 1].strip() == "kube: connection refused (127.0.4.1:6443)"
    assert lines[scs + 2].strip() == "critical components down: 9 of 12"
    otc = lines.index(row_of(lines, "otc-eu-de"))
    wrapped = " ".join(line.strip() for line in lines[otc + 1:scs])
    assert wrapped == LONG_REASON  # wrapped between words, nothing lost
    assert "why" not in lines[2]


def test_status_at_200_columns_shows_reasons_in_a_column() -> None:
    lines = tables.status_lines(status_doc(), width=200)
    assert_fits(lines, 200)
    assert row_of(lines, "otc-eu-de").endswith(LONG_REASON)
    assert row_of(lines, "scs-pco-prod1").endswith("kube: connection refused (127.0.4.1:6443); "
                                                   "critical components down: 9 of 12")
    assert len(lines) == 1 + 1 + len(SITES) + 1  # headline, header, one line per site, the run


def test_status_wide_shows_everything_on_one_line_per_site_even_at_80() -> None:
    lines = tables.status_lines(status_doc(), width=80, wide=True)
    header = next(line for line in lines if line.startswith("site "))
    assert "newest backup" in header and "provider state" in header and header.rstrip().endswith("why")
    assert row_of(lines, "otc-eu-de").endswith(LONG_REASON)
    assert "velero-daily-20261130" in row_of(lines, "stackit-eu01")


def test_status_in_a_narrow_terminal_leaves_out_the_provider_not_the_name() -> None:
    lines = tables.status_lines(status_doc(), width=50)
    assert "provider" not in next(line for line in lines if line.startswith("site "))
    for name in SITES:
        assert row_of(lines, name)


def test_colours_do_not_change_the_layout() -> None:
    plain = tables.status_lines(status_doc(), width=80)
    coloured = tables.status_lines(status_doc(), width=80, color=True)
    assert coloured != plain and [ANSI.sub("", line) for line in coloured] == plain


def _history() -> dict[str, object]:
    run = {"id": "12", "playbook": "failover", "phase": "failed", "from": "ionos-de-fra", "to": "scs-pco-prod1",
           "rto_s": None, "data_loss_window_s": None, "started_at": "2026-11-30T03:01:02.123+00:00",
           "error": None, "steps": [{"key": "restore[group=1]", "status": "failed",
                                     "error": "Restore velero/failover-12-g1 PartiallyFailed: 3 errors"}]}
    ok = {**run, "id": "11", "phase": "succeeded", "to": "stackit-eu01", "rto_s": 9.64, "data_loss_window_s": 4.7,
          "steps": []}
    sentence = ("ionos-de-fra down for 3 checks (kube: connection refused); stackit-eu01 ready; "
                "starting failover run 11")
    return {"runs": [run, ok], "decisions": [{"at": "2026-11-30 03:00:58+00:00", "sentence": sentence}]}


def test_history_at_80_and_200_columns() -> None:
    narrow = tables.history_lines(_history(), width=80)
    assert_fits(narrow, 80)
    assert any("ionos-de-fra → scs-pco-prod1" in line for line in narrow)
    assert any(line.strip() == "restore[group=1]: Restore velero/failover-12-g1 PartiallyFailed: 3 errors"
               for line in narrow)
    decision = [line.strip() for line in narrow[narrow.index("decisions (newest first)") + 1:]]
    assert " ".join(decision).endswith("stackit-eu01 ready; starting failover run 11") and len(decision) == 2
    wide = tables.history_lines(_history(), width=200)
    assert_fits(wide, 200)
    assert any(line.startswith("11 ") and "9.6s" in line and "2026-11-30 03:01:02" in line for line in wide)
    assert wide[-1].endswith("starting failover run 11")
