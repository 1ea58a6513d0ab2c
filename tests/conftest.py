"""Every test runs isolated: no OPSCTL_* variables, config and state under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsctl import redact

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "opsctl.example.yaml"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("OPSCTL_") and not name.startswith("OPSCTL_TEST_"):
            monkeypatch.delenv(name)
    for name in ("NO_COLOR", "TRACEPARENT", "VAULT_TOKEN", "VAULT_ADDR"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "200")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    redact.forget_all()
    return tmp_path


@pytest.fixture
def example_config() -> Path:
    return EXAMPLE
