"""The repository guard sees a file opened outside the repository (then forgets it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import repo_guard


def test_guard_records_an_open_outside_the_repository() -> None:
    # beside the repository is not always outside: a clone in /tmp sits in an allowed place
    outside = Path("/failover-guard-probe-does-not-exist")
    assert not repo_guard._inside(str(outside))
    with pytest.raises(FileNotFoundError):
        outside.open(encoding="utf-8")
    assert str(outside) in repo_guard.OUTSIDE
    repo_guard.OUTSIDE.discard(str(outside))  # this one was on purpose


def test_guard_allows_the_repository_and_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    before = set(repo_guard.OUTSIDE)
    (repo_guard.ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path_factory.mktemp("guard") / "x").write_text("x", encoding="utf-8")
    assert repo_guard.OUTSIDE == before
