"""Shell completion: ``failover completion bash|zsh`` and the hidden ``failover __complete``.

The scripts are thin (the way kubectl and every cobra tool do it): on <Tab> the shell runs
``failover __complete WORD… CURRENT`` and offers the lines it prints. This side walks the very
argparse parser the command line uses, so commands and options can never drift from the
completion, and fills in what only the installation knows:

* site names from the config (``--to``, ``--from``, ``unfence SITE``, ``lab break|heal SITE``),
* playbook names from the playbook directories (``run PLAYBOOK``),
* run ids from the store (``approve RUN``),
* file names for path options (``--config``): the line ``:file`` asks the shell to complete files.

A value is completed by what :func:`complete_with` attached to the argparse action, or else by
the action's ``dest`` (:data:`BY_DEST`), or its ``choices``. ``__complete`` must answer faster than a
person notices: it reads the config as plain YAML (no validation, no pydantic) and the store only
if it already exists; any problem means no candidates, never an error message in the prompt.

Install (one line): ``echo 'eval "$(failover completion bash)"' >> ~/.bashrc`` (zsh: ``zsh`` and
``~/.zshrc``, after ``compinit``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from failover.config import paths

FILES = ":file"
#: how an argument's value is completed when the command did not say (:func:`complete_with`)
BY_DEST = {"to": "sites", "source": "sites", "site": "sites", "playbook": "playbooks", "run_id": "runs"}

BASH = r"""# bash completion for failover; install: echo 'eval "$(failover completion bash)"' >> ~/.bashrc
_failover_complete() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out IFS=$'\n'
    out=$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
    if [[ "$out" == ":file" ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$out" -- "$cur"))
    fi
}
complete -F _failover_complete failover
"""

ZSH = r"""# zsh completion for failover; install: echo 'eval "$(failover completion zsh)"' >> ~/.zshrc (after compinit)
_failover_complete() {
    local out
    out=$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    [[ -n "$out" ]] || return 1
    if [[ "$out" == ":file" ]]; then
        _files
    else
        local -a candidates
        candidates=("${(@f)out}")
        compadd -a candidates
    fi
}
compdef _failover_complete failover
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH}


def complete_with(action: argparse.Action, kind: str) -> argparse.Action:
    """Mark ``action``'s value as completed by ``kind``: sites, playbooks, runs or files."""
    action.completer = kind  # type: ignore[attr-defined]
    return action


def register(sub: Any) -> None:
    p = sub.add_parser("completion", help="print the shell completion script (bash or zsh)",
                       description='Install: echo \'eval "$(failover completion bash)"\' >> ~/.bashrc '
                                   "(zsh: the same with zsh and ~/.zshrc, after compinit)")
    p.add_argument("shell", choices=sorted(SCRIPTS))
    p.set_defaults(func=script)
    hidden = sub.add_parser("__complete")  # no help=: not listed in --help
    hidden.add_argument("words", nargs=argparse.REMAINDER)
    hidden.set_defaults(func=answer)


def script(args: argparse.Namespace) -> int:
    sys.stdout.write(SCRIPTS[args.shell])
    return 0


def answer(args: argparse.Namespace) -> int:
    config = ["--config", str(args.config)] if args.config else []  # `failover --config X __complete …`
    return answer_words([*config, *args.words])


def answer_words(words: Sequence[str]) -> int:
    """Print the candidates for ``words`` (``main`` calls this before parsing: the words are
    an incomplete command line, which argparse would reject)."""
    from failover.cli import build_parser

    try:
        candidates = complete(build_parser(), list(words) or [""])
    except Exception:  # a completion never prints a traceback into the prompt
        return 0
    sys.stdout.write("".join(f"{c}\n" for c in candidates))
    return 0


# --- walking the parser ------------------------------------------------------------------------------

def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _visible_commands(sub: argparse._SubParsersAction[Any]) -> list[str]:
    listed = {a.dest for a in sub._choices_actions}  # only parsers added with help=
    return [name for name in sub.choices if name in listed]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def complete(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """Candidates for the last of ``words`` (the words after the program name)."""
    *before, cur = words
    current, position, config = parser, 0, None
    pending: argparse.Action | None = None
    for word in before:
        if pending is not None:
            if "--config" in pending.option_strings:
                config = Path(word)
            pending = None
            continue
        if word.startswith("-") and word != "-":
            action = _options(current).get(word.split("=", 1)[0])
            if action is not None and _takes_value(action) and "=" not in word:
                pending = action
            elif action is not None and "--config" in action.option_strings and "=" in word:
                config = Path(word.split("=", 1)[1])
            continue
        sub = _subparsers(current)
        if sub is not None and word in sub.choices:
            current, position = sub.choices[word], 0
        else:
            position += 1
    sources = _Sources(config)
    if pending is not None:
        return _values(pending, cur, sources)
    if cur.startswith("--") and "=" in cur:
        name, _, prefix = cur.partition("=")
        action = _options(current).get(name)
        return [] if action is None else [f"{name}={v}" for v in _values(action, prefix, sources)]
    if cur.startswith("-"):
        return sorted(s for s in _options(current) if s.startswith(cur))
    sub = _subparsers(current)
    if sub is not None:
        return [c for c in _visible_commands(sub) if c.startswith(cur)]
    positionals = _positionals(current)
    if position < len(positionals):
        return _values(positionals[position], cur, sources)
    return []


def _values(action: argparse.Action, prefix: str, sources: _Sources) -> list[str]:
    kind = getattr(action, "completer", None) or BY_DEST.get(action.dest)
    if kind is None and action.type is Path:
        kind = "files"
    if kind == "files":
        return [FILES]
    if kind is None:
        values = [str(c) for c in action.choices or ()]
    else:
        values = sources.get(kind)
    return [v for v in values if v.startswith(prefix)]


class _Sources:
    """The dynamic parts, read as cheaply as possible, each only when asked for."""

    def __init__(self, config: Path | None) -> None:
        self.path = (config or paths.default_config_path()).expanduser().resolve()
        self._raw: dict[str, Any] | None = None

    def get(self, kind: str) -> list[str]:
        readers: dict[str, Callable[[], list[str]]] = {
            "sites": self.sites, "playbooks": self.playbooks, "runs": self.runs}
        reader = readers.get(kind)
        return reader() if reader is not None else []

    @property
    def raw(self) -> dict[str, Any]:
        if self._raw is None:
            from failover.cli import configcache

            self._raw = configcache.raw_config(self.path)
        return self._raw

    def sites(self) -> list[str]:
        return [str(s["name"]) for s in self.raw.get("sites") or [] if isinstance(s, dict) and "name" in s]

    def playbooks(self) -> list[str]:
        from failover.core import resources

        names: list[str] = []
        for directory in (self.path.parent.parent / "playbooks", resources.playbooks_dir()):
            if directory.is_dir():
                names += [f.stem for f in sorted(directory.iterdir()) if f.suffix in (".yaml", ".yml")]
        return list(dict.fromkeys(names))

    def runs(self) -> list[str]:
        from failover.store import queries, sqlite

        db = paths.state_dir(self.raw.get("state_dir"), self.path) / queries.DB_NAME
        if not db.exists():
            return []
        store = sqlite.SqliteStore(db)
        try:
            return [str(r.id) for r in store.list_runs(limit=50)]
        finally:
            store.close()
