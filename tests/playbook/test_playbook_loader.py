"""The loader reports every problem of a playbook, each with its file and line, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover.core import errors
from failover.playbook import loader
from tests.playbook import pb_actions  # noqa: F401  (registers the t-* actions)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "playbooks" / "_test"


def issues_of(exc: pytest.ExceptionInfo[errors.PlaybookError]) -> list[tuple[int | None, str]]:
    return [(i.line, i.message) for i in exc.value.issues]


def test_every_error_is_reported_with_its_line() -> None:
    path = FIXTURES / "invalid.yaml"
    with pytest.raises(errors.PlaybookError) as exc:
        loader.load_playbook(path)
    found = issues_of(exc)
    expected = [
        (8, "unknown action 'no-such-action'"),
        (12, "with.colour: unknown parameter"),
        (13, "timeout 'soon'"),
        (16, "duplicate step id 'one'"),
        (18, "{{ params.from }}: unknown parameter"),
        (19, "retries -1"),
        (22, "{{ outputs.nowhere.x }}: unknown step"),
        (22, "step three does not run in an earlier stage"),
        (23, "on_failure 'ignore'"),
    ]
    for line, text in expected:
        assert any(ln == line and text in msg for ln, msg in found), (line, text, found)
    assert len(found) == len(expected), found
    assert all(str(i).startswith(f"{path}:") for i in exc.value.issues)


def test_yaml_syntax_error_names_its_line() -> None:
    with pytest.raises(errors.PlaybookError) as exc:
        loader.load_text("name: x\nstages:\n  - name: a\n    steps: [\n      {id: b\n", "bad.yaml")
    (issue,) = exc.value.issues
    assert issue.file == "bad.yaml" and issue.line is not None and issue.line >= 5
    assert "YAML syntax error" in issue.message


def test_invalid_literal_parameter_type_and_missing_required_are_reported() -> None:
    text = """name: t
stages:
  - name: s
    steps:
      - id: a
        uses: t-echo
        with: {sleep: slow}
      - id: b
        uses: t-effect
        with: {value: 1}
        foreach: "{{ params.nope }}"
        as: item
"""
    with pytest.raises(errors.PlaybookError) as exc:
        loader.load_text(text, "t.yaml")
    found = issues_of(exc)
    assert any(ln == 7 and "with.sleep" in m for ln, m in found), found
    assert any(ln == 11 and "params.nope" in m for ln, m in found), found


def test_item_outside_foreach_is_an_error_and_templated_values_are_not_type_checked() -> None:
    text = """name: t
params:
  n: {type: int, default: 2}
stages:
  - name: s
    steps:
      - {id: a, uses: t-echo, with: {value: "{{ item }}", sleep: "{{ params.n }}"}}
"""
    with pytest.raises(errors.PlaybookError) as exc:
        loader.load_text(text, "t.yaml")
    assert [(ln, "item is only defined" in m) for ln, m in issues_of(exc)] == [(7, True)]


def test_the_product_playbooks_are_valid() -> None:
    for name in ("failover", "switchover"):
        playbook = loader.load_playbook_by_name(name, [REPO / "playbooks"])
        assert playbook.name == name and playbook.stages
        assert "restore" in [s.id for s in playbook.steps()]


def test_unknown_playbook_name_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(errors.PlaybookError, match="no playbook named 'nope'"):
        loader.load_playbook_by_name("nope", [tmp_path])


def test_durations() -> None:
    assert loader.parse_duration("500ms") == 0.5
    assert loader.parse_duration("30s") == 30
    assert loader.parse_duration("5m") == 300
    assert loader.parse_duration(2) == 2
    assert loader.parse_duration("0s") is None and loader.parse_duration("soon") is None
    assert loader.parse_duration(True) is None
