"""A world for migration tests: a scratch PostgreSQL database, a config whose service points at
it (``database.dsn`` as a ``file:`` secret), a migrations folder, and the real CLI."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import OPSCTL, Result
from tests.deploy.conftest import _reset_signals

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

CONFIG = """\
version: 1
environments: [production, staging]
default_env: production
teams:
  platform: {{}}
policy:
  lock_ttl: {ttl}
  migrate: {{lock_timeout: 0.3, retries: {retries}, retry_backoff: 0.1, batch_target: 0.05}}
  confirm: []
services:
  - name: app
    tier: 2
    owner: platform
    database:
      dsn: file:{dsn_file}
      migrations: {migrations}
{replica}"""


@dataclass
class World:
    tmp: Path
    db: str  # the scratch database's name
    dsn: str
    env: dict[str, str]
    migrations: Path = field(init=False)
    config: Path = field(init=False)

    def write_config(
        self, *, ttl: str = "3s", retries: int = 2, migrations: str = "migrations", replica_dsn: str | None = None
    ) -> None:
        self.migrations = self.tmp / migrations
        self.migrations.mkdir(parents=True, exist_ok=True)
        dsn_file = self.tmp / "dsn.secret"
        dsn_file.write_text(self.dsn + "\n")  # a stray newline, as secrets files often have
        self.config = self.tmp / "opsctl.yaml"
        replica = ""
        if replica_dsn is not None:
            (self.tmp / "replica.secret").write_text(replica_dsn + "\n")
            replica = f"      replica: standby\n      replica_dsn: file:{self.tmp / 'replica.secret'}\n"
        self.config.write_text(
            CONFIG.format(ttl=ttl, retries=retries, dsn_file=dsn_file, migrations=migrations, replica=replica)
        )

    def file(self, name: str, text: str) -> Path:
        path = self.migrations / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def opsctl(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [str(OPSCTL), "--config", str(self.config), *args], capture_output=True, text=True,
            env={**self.env, **(env or {})}, timeout=timeout, preexec_fn=_reset_signals,
        )  # fmt: skip
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(OPSCTL), "--config", str(self.config), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**self.env, **(env or {})}, preexec_fn=_reset_signals,
        )  # fmt: skip

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return list(cur.fetchall()) if cur.description else []

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True)


@pytest.fixture
def world(isolated: Path) -> Iterator[World]:
    import psycopg

    name = f"opsctl_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    w = World(isolated, name, ADMIN.rsplit("/", 1)[0] + f"/{name}", dict(os.environ))
    w.write_config()
    try:
        yield w
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
