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
