"""A primary and a streaming standby of our own (initdb + pg_basebackup on free ports), for the
backfill's replica-lag throttle: the system cluster is left alone."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def _bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql (scripts/test.sh installs them)"
        )
    return versions[-1].parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)


@dataclass
class Pair:
    base: Path
    primary_port: int
    standby_port: int

    @property
    def primary(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/postgres"

    @property
    def standby(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.standby_port}/postgres"

    def pause_replay(self) -> None:
        self._standby_sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self._standby_sql("SELECT pg_wal_replay_resume()")

    def detach_standby(self) -> None:
        """Cut the standby off its primary (no more WAL arrives), as a network partition would."""
        self._standby_sql("ALTER SYSTEM SET primary_conninfo = ''")
        self._standby_sql("SELECT pg_reload_conf()")

    def stop_standby(self) -> None:
        _as_postgres(str(_bin() / "pg_ctl"), "-D", str(self.base / "standby"), "-m", "immediate", "-w", "stop")

    def _standby_sql(self, query: str) -> None:
        import psycopg

        with psycopg.connect(self.standby, autocommit=True) as conn:
            conn.execute(query)


def _start(bin_dir: Path, data: Path, port: int, log: Path) -> None:
    _as_postgres(
        str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", f"-p {port}", "-w", "-t", "60", "start"
    )


@contextmanager
def make_pair() -> Iterator[Pair]:
    """A primary and a streaming standby on free ports, removed afterwards (tests and bench/)."""
    bin_dir = _bin()
    base = Path(tempfile.mkdtemp(prefix="opsctl-pair-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    pair = Pair(base, _port(), _port())
    primary, standby = base / "primary", base / "standby"
    try:
        _as_postgres(str(bin_dir / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust", "--no-sync")
        with open(primary / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\nwal_level = replica\n"
                "max_wal_senders = 4\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 32MB\nwal_receiver_status_interval = 1s\n"
            )
        with open(primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n")
        _start(bin_dir, primary, pair.primary_port, base / "primary.log")
        _as_postgres(str(bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres",
                     "-D", str(standby), "-R", "-X", "stream", "--no-sync")  # fmt: skip
        _start(bin_dir, standby, pair.standby_port, base / "standby.log")
        deadline = time.monotonic() + 30
        import psycopg

        while time.monotonic() < deadline:
            with psycopg.connect(pair.primary, autocommit=True) as conn:
                if conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()[0]:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("the standby never started streaming")
        yield pair
    finally:
        for data in (standby, primary):
            if (data / "postmaster.pid").exists():
                subprocess.run(
                    [*(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []),
                     str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    capture_output=True, timeout=60,
                )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def replica_pair() -> Iterator[Pair]:
    with make_pair() as pair:
        yield pair
