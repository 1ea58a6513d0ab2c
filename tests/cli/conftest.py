"""Drive the real ``opsctl`` entry point in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

OPSCTL = Path(sys.executable).with_name("opsctl")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Runner:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
    ) -> Result:
        proc = subprocess.run(
            [str(OPSCTL), *args],
            input=input,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def opsctl(isolated: Path) -> Runner:
    """``opsctl(*args)`` runs the installed console script with the test's isolated environment."""
    assert OPSCTL.exists(), f"{OPSCTL} missing: install the package (pip install -e .[test])"
    return Runner(dict(os.environ))


PG_ADMIN_URL = os.environ.get("OPSCTL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgres"])
def state_config(request, tmp_path: Path, example_config: Path):
    """A config (the example's topology) whose state lives in SQLite or in a fresh PostgreSQL database."""
    text = example_config.read_text()
    if request.param == "postgres":
        import uuid

        import psycopg

        name = f"opsctl_cli_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        text = text.replace("state:\n", f"state:\n  url: {url}\n", 1)
        request.addfinalizer(lambda: _drop_database(name))
    path = tmp_path / f"opsctl-{request.param}.yaml"
    path.write_text(text)
    return path


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
