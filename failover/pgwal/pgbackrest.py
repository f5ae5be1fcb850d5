"""pgBackRest as the daemon (and the lab) drive it: its configuration, and running it safely.

One repository per standby: ``repoN`` is the standby's bucket, reached over TLS (pgBackRest 2.45
speaks only https to S3) with the certificate verified against ``ca_file``. ``archive-push`` writes
every segment to every repository; a segment pushed again with the same content is accepted and one
with different content is refused (pgBackRest's checksum guard), so a re-archived segment after a
crash never overwrites history.

Commands run as the database's OS user (``setpriv`` when the daemon is root; pgBackRest and
``initdb``/``pg_ctl`` refuse root) with ``--pdeathsig KILL``, so a daemon killed with ``-9``
leaves no restore running behind its back; every call is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from failover.core import errors, secrets


@dataclass(frozen=True)
class Repo:
    """One repository: a bucket as pgBackRest reaches it."""

    host: str
    port: int
    bucket: str
    region: str
    path: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    verify_tls: bool = True
    ca_file: Path | None = None


@dataclass(frozen=True)
class Cluster:
    """The PostgreSQL cluster pgBackRest backs up or restores into."""

    data_dir: Path
    port: int
    socket_dir: Path


def render(*, stanza: str, repos: Sequence[Repo], cluster: Cluster, log_dir: Path, lock_dir: Path,
           spool_dir: Path | None = None, prefetch: bool = False, push_async: bool = False) -> str:
    """The ``pgbackrest.conf`` text (it holds the repositories' keys: write it 0600).

    ``prefetch`` (a restore): ``archive-get`` runs asynchronously, fetching the next segments in
    parallel into the spool directory while PostgreSQL replays (one TLS round trip per segment
    otherwise makes replay time grow with the archive). ``push_async`` (the archiving source):
    ``archive-push`` hands the segment to one background process that pushes every ready segment
    to every repository in parallel; PostgreSQL still hears success only once it is in all of them."""
    lines = ["[global]"]
    for n, repo in enumerate(repos, start=1):
        secrets.register(repo.secret_key)
        lines += [f"repo{n}-type=s3", f"repo{n}-s3-endpoint={repo.host}", f"repo{n}-storage-port={repo.port}",
                  f"repo{n}-storage-verify-tls={'y' if repo.verify_tls else 'n'}",
                  f"repo{n}-s3-uri-style=path", f"repo{n}-s3-bucket={repo.bucket}",
                  f"repo{n}-s3-region={repo.region}", f"repo{n}-s3-key={repo.access_key}",
                  f"repo{n}-s3-key-secret={repo.secret_key}", f"repo{n}-path={repo.path}",
                  f"repo{n}-bundle=y", f"repo{n}-retention-full=2"]
        if repo.ca_file is not None:
            lines.append(f"repo{n}-storage-ca-file={repo.ca_file}")
    lines += [f"log-path={log_dir}", f"lock-path={lock_dir}", "log-level-console=warn", "log-level-file=info",
              "compress-type=lz4", "start-fast=y", "archive-timeout=30", "io-timeout=10", "db-timeout=60"]
    if spool_dir is not None:
        lines.append(f"spool-path={spool_dir}")
    if (prefetch or push_async) and spool_dir is not None:
        lines += ["archive-async=y", "archive-get-queue-max=256MB", "process-max=4"]
    lines += ["", f"[{stanza}]", f"pg1-path={cluster.data_dir}", f"pg1-port={cluster.port}",
              f"pg1-socket-path={cluster.socket_dir}", ""]
    return "\n".join(lines)


def write_private(path: Path, text: str, *, owner: str) -> None:
    """Write ``text`` 0600, owned by ``owner`` when we are root (the file carries keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    chown(path, owner)


def chown(path: Path, owner: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def as_user(argv: Sequence[str], user: str) -> list[str]:
    """``argv`` run as ``user`` (via setpriv when we are root), killed when its parent dies."""
    if os.geteuid() != 0 or user == "root":
        return list(argv)
    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
            "--pdeathsig", "KILL", *argv]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 6) -> str:
        text = (self.stderr.strip() or self.stdout.strip())
        return secrets.redact("\n".join(text.splitlines()[-lines:]))


async def run(argv: Sequence[str], *, user: str, timeout: float, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> Result:
    """Run ``argv`` as ``user``; TemporaryError when it does not end within ``timeout`` (it is killed)."""
    full = as_user(argv, user)
    if shutil.which(full[0]) is None and not Path(full[0]).exists():
        raise errors.PermanentError(f"{full[0]} is not installed")
    process = await asyncio.create_subprocess_exec(
        *full, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(cwd or "/"), env={**os.environ, **(env or {})})
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return Result(int(process.returncode or 0), out.decode(errors="replace"), err.decode(errors="replace"))


async def pgbackrest(config: Path, stanza: str, command: str, *options: str, user: str,
                     timeout: float) -> Result:
    """``pgbackrest --config=C --stanza=S [options] command``; PermanentError with its output tail on failure."""
    try:
        result = await run(["pgbackrest", f"--config={config}", f"--stanza={stanza}", *options, command],
                           user=user, timeout=timeout)
    except TimeoutError:
        raise errors.TemporaryError(f"pgbackrest {command} did not finish within {timeout:g}s") from None
    if result.returncode != 0:
        raise errors.PermanentError(f"pgbackrest {command} failed ({result.returncode}): {result.tail()}")
    return result
