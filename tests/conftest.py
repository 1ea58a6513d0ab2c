"""Every test runs isolated: no OPSCTL_* variables, config and state under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsctl import redact
from tests.fakes.moto import aws_env, moto_url  # noqa: F401  (fixtures: moto's server)
from tests.fakes.prometheus import prom, prometheus  # noqa: F401  (fixtures: the real Prometheus)
from tests.fakes.redis_cluster import cluster, redis_cluster  # noqa: F401  (fixtures: a real Redis Cluster)
from tests.migrate.replica import replica_pair  # noqa: F401  (fixture: a primary and a streaming standby)
from tests.migrate.world import world  # noqa: F401  (fixture: a scratch database and a config on it)

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


@pytest.fixture(scope="session")
def pd_tls(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway CA and server certificate for the PagerDuty fake (one per session)."""
    from tests.fakes.tls import make_tls_material

    return make_tls_material(tmp_path_factory.mktemp("pd-tls"))


@pytest.fixture
def pd(pd_tls):
    """The stateful PagerDuty REST fake over real HTTPS on loopback."""
    from tests.fakes.pagerduty import PagerDutyFake

    with PagerDutyFake(tls=pd_tls) as fake:
        yield fake


class FakeClock:
    """An injected clock: ``clock()`` is now; ``advance(minutes=5)`` moves it; ``sleep(s)`` is the
    context's sleep (it moves the clock instead of waiting, and counts what was asked)."""

    def __init__(self, start):
        self.now = start
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    def advance(self, **delta):
        from datetime import timedelta

        self.now = self.now + timedelta(**delta)
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds=seconds)


def pagerduty_config(example_text: str, pd, token_file: Path, timeout: str = "4s", request_timeout: str = "2s") -> str:
    """The example config pointed at the fake: token from a file, its base URL and CA bundle."""
    token_file.write_text(pd.token + "\n")
    block = (
        "  pagerduty:\n"
        f"    token: file:{token_file}\n"
        "    from: oncall@example.com\n"
        f"    base_url: {pd.base_url}\n"
        f"    ca_bundle: {pd.ca_path}\n"
        f"    timeout: {timeout}\n"
        f"    request_timeout: {request_timeout}\n"
    )
    start = example_text.index("  pagerduty:\n")
    end = example_text.index("  prometheus:\n")
    return example_text[:start] + block + example_text[end:]


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
