"""A real source cluster archiving WAL into a posix pgBackRest repository of its own, with one full backup.

The fixture ``pgbackrest_source`` initdbs a cluster on a free port under a temp base dir (owned by
postgres), writes a pgBackRest config for one stanza, runs ``stanza-create``, ``check`` and a full
backup, and hands back a :class:`Source`. Everything runs as postgres (``runuser``) when we are root.
The system cluster is left alone. Teardown stops the source and every cluster a test registered
with :meth:`Source.track` (``pg_ctl -m immediate stop``), then removes the base dir.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

STANZA = "opsctl"


def pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql (scripts/test.sh installs them)"
        )
    return versions[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres(*cmd: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as postgres (through runuser when root); a failure raises with the command's stderr."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    done = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=timeout, cwd="/")
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done


def make_dir(path: Path) -> Path:
    """A directory postgres owns (mode 0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    return path


def stop_cluster(data: Path) -> None:
    if (data / "postmaster.pid").exists():
        as_postgres(str(pg_bin() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", timeout=60, check=False)


def write_config(path: Path, *, base: Path, repo: Path, stanza: str, data: Path, port: int) -> None:
    path.write_text(
        "[global]\n"
        f"repo1-path={repo}\n"
        "repo1-retention-full=2\n"
        "log-level-console=warn\n"
        "log-level-file=info\n"
        f"log-path={base / 'log'}\n"
        f"lock-path={base / 'lock'}\n"
        f"spool-path={base / 'spool'}\n"
        "start-fast=y\n"
        "compress-type=none\n"
        "\n"
        f"[{stanza}]\n"
        f"pg1-path={data}\n"
        f"pg1-port={port}\n"
        f"pg1-socket-path={base}\n"
    )
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


@dataclass
class Source:
    base: Path
    data: Path
    port: int
    stanza: str
    config: Path
    repo: Path
    log: Path
    tracked: list[Path] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) on the source; its rows, or [] when it returns none."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def pgbackrest(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return as_postgres("pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", *args, timeout=timeout)

    def switch_wal(self, timeout: float = 60) -> str:
        """Close the current WAL segment and wait until the archiver has pushed it; the segment's name."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            assert row is not None
            segment = str(row[0])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got = conn.execute("SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver").fetchone()
                assert got is not None
                if got[0] is not None and str(got[0])[:24] >= segment:
                    return segment
                time.sleep(0.1)
        raise RuntimeError(f"WAL segment {segment} was not archived within {timeout:g}s (last failed: {got[1]})")

    def backup(self, type: str = "full") -> None:
        self.pgbackrest("backup", f"--type={type}")

    def track(self, data: Path) -> Path:
        """Stop the cluster in ``data`` at teardown (a restored copy a test started)."""
        self.tracked.append(data)
        return data

    def archived_segments(self) -> set[str]:
        """Every file in the repo's WAL archive of this stanza (as root reads it)."""
        archive = self.repo / "archive" / self.stanza
        return {str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file()}


def init_source(source: Source) -> Source:
    """initdb, archive_command into the source's pgBackRest config, start, stanza-create, check, a full backup."""
    bin_dir, data, base, port, config, stanza = (
        pg_bin(),
        source.data,
        source.base,
        source.port,
        source.config,
        source.stanza,
    )
    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n"
            "wal_level = replica\narchive_mode = on\n"
            f"archive_command = 'pgbackrest --config={config} --stanza={stanza} archive-push %p'\n"
            "max_wal_senders = 2\nfsync = off\nsynchronous_commit = off\nshared_buffers = 32MB\n"
            "max_wal_size = 256MB\ncheckpoint_timeout = 30min\n"
        )
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write("host all all 127.0.0.1/32 trust\n")
    as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(source.log), "-w", "-t", "60", "start")
    source.pgbackrest("stanza-create")
    source.pgbackrest("check")
    source.backup("full")
    return source


def start_source(base: Path, stanza: str = STANZA) -> Source:
    data, repo = base / "source", make_dir(base / "repo")
    for name in ("log", "lock", "spool"):
        make_dir(base / name)
    port = free_port()
    config = base / "pgbackrest.conf"
    source = Source(base, data, port, stanza, config, repo, base / "source.log")
    write_config(config, base=base, repo=repo, stanza=stanza, data=data, port=port)
    return init_source(source)


@pytest.fixture
def pgbackrest_source() -> Iterator[Source]:
    base = Path(tempfile.mkdtemp(prefix="opsctl-pgbr-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    base.chmod(0o755)
    source: Source | None = None
    try:
        source = start_source(base)
        yield source
    finally:
        for data in [*(source.tracked if source else []), base / "source"]:
            stop_cluster(data)
        shutil.rmtree(base, ignore_errors=True)
