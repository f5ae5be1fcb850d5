"""The ``failover`` command line: one entry point, one module per command family.

Exit codes are part of the contract (DESIGN §6): 0 ok, 1 operation failed, 2 bad input (usage,
config, playbook). Every read command takes ``--json``. Errors are printed as sentences that
name the file, line and fix; tracebacks are only shown with ``--debug``.

Start-up is part of the contract too: ``--help``, ``status``, ``history`` and ``config validate``
answer in well under 0.3 s, so nothing heavy (asyncio, rich, pydantic, HTTP clients, the daemon,
the engine, providers) is imported at module level here or in a command module's ``register``;
commands import what they need when they run (``tests/cli/test_fast.py`` guards this).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from failover import __version__
from failover.core import errors, secrets

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2

#: modules that each define ``register(subparsers)``; order is the order of ``--help``
COMMAND_MODULES = (
    "failover.cli.ops_cmd",
    "failover.cli.drill_cmd",
    "failover.cli.config_cmd",
    "failover.lab.cli",  # the lab registers its own command; the product never imports it
    "failover.cli.completion",
    "failover.cli.runbook_cmd",
    "failover.cli.audit_cmd",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="failover", description="Keep the sovereign emergency workplace alive.")
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $FAILOVER_CONFIG or the embedded lab config)")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    parser.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="log lines as text (default) or one JSON object per line (for log shippers)")
    parser.add_argument("--version", action="version", version=f"failover {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def setup_logging(debug: bool, log_format: str = "text") -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if log_format == "json":
        from failover.cli.logformat import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    if not debug:
        for noisy in ("aiohttp.access", "botocore", "aiobotocore", "urllib3", "httpx", "kubernetes_asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    secrets.install_log_filter()


def _print_issues(exc: errors.InputError) -> None:
    for issue in exc.issues:
        print(f"error: {secrets.redact(str(issue))}", file=sys.stderr)
    if len(exc.issues) > 1:
        print(f"{len(exc.issues)} problems found; nothing was changed.", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["__complete"]:  # shell completion: an unfinished command line, not one to parse
        from failover.cli import completion

        return completion.answer_words(words[1:])
    parser = build_parser()
    args = parser.parse_args(words)
    setup_logging(args.debug, args.log_format)
    func = args.func
    try:
        result = func(args)
        if hasattr(result, "__await__"):  # an async command: only those pay for importing asyncio
            import asyncio

            result = asyncio.run(result)
        return int(result or 0)
    except errors.InputError as exc:
        _print_issues(exc)
        return EXIT_INPUT
    except errors.FailoverError as exc:
        if args.debug:
            logging.getLogger("failover").exception("operation failed")
        print(f"error: {secrets.redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
