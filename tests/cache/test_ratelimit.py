"""Rate-limit counters on the real Redis: both layouts read at fixed instants (the injected clock),
and `ratelimit show|reset` through the real CLI."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from opsctl.cache import ratelimit
from opsctl.context import Context
from opsctl.errors import UsageError
from opsctl.output import Output
from tests.cache.conftest import URL
from tests.cli.conftest import Runner

NOW = datetime(2026, 11, 27, 12, 0, 30, tzinfo=UTC)

CONFIG = """\
version: 1
environments:
  production: {{}}
  staging:
    ratelimit: {{layout: fixed-window, limits: {{login: 3}}}}
default_env: production
teams: {{platform: {{}}}}
ratelimit:
  redis_url: "{url}"
  key: "{prefix}{{scope}}:{{id}}"
  window: 60s
"""


def context(tmp: Path, prefix: str, env: str = "production", at: datetime = NOW) -> Context:
    path = tmp / "opsctl.yaml"
    path.write_text(CONFIG.format(url=URL, prefix=prefix))
    return Context(config_path=str(path), env_name=env, clock=lambda: at,
                   output=Output("json", stdout=io.StringIO(), stderr=io.StringIO()), state_dir=tmp / "state")  # fmt: skip


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_a_sliding_log_counts_the_last_window_only(r: redis.Redis, prefix: str, tmp_path: Path) -> None:
    key = f"{prefix}user:42"
    inside = [NOW - timedelta(seconds=s) for s in (59.5, 30, 10, 0)]
    outside = [NOW - timedelta(seconds=s) for s in (60, 61, 300)]  # exactly a window old: out
    r.zadd(key, {f"req-{i}": ms(at) for i, at in enumerate(inside + outside)})
    shown = ratelimit.show(context(tmp_path, prefix), "user:42")
    assert shown["count"] == 4 and shown["limit"] == 300 and shown["remaining"] == 296
    assert shown["reset_at"].startswith("2026-11-27T12:00:30")  # the oldest request leaves the window in 0.5 s
    assert shown["reset_in_seconds"] == pytest.approx(0.5) and shown["window"] == 60
    later = ratelimit.show(context(tmp_path, prefix, at=NOW + timedelta(seconds=1)), "user:42")
    assert later["count"] == 3  # the 59.5 s old request has left the window


def test_a_fixed_window_counter_and_its_reset_time(r: redis.Redis, prefix: str, tmp_path: Path) -> None:
    start = int(NOW.timestamp()) // 60 * 60
    r.set(f"{prefix}login:alice:{start}", 5)
    r.set(f"{prefix}login:alice:{start - 60}", 9)  # the previous window: not counted
    shown = ratelimit.show(context(tmp_path, prefix, "staging"), "login:alice")
    assert shown["layout"] == "fixed-window" and shown["count"] == 5 and shown["limit"] == 3
    assert shown["remaining"] == 0 and shown["limited"] is True
    assert shown["reset_at"] == "2026-11-27T12:01:00+00:00" and shown["reset_in_seconds"] == 30
    empty = ratelimit.show(context(tmp_path, prefix, "staging"), "login:bob")
    assert empty["count"] == 0 and empty["remaining"] == 3


def test_bad_keys_are_usage_errors(prefix: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, prefix)
    for bad in ("user", "nope:1", ":1", "user:", "user:a\x1bb"):
        with pytest.raises(UsageError):
            ratelimit.show(ctx, bad)


def test_reset_through_the_cli_is_confirmed_audited_and_forgets_the_window(
    r: redis.Redis, prefix: str, isolated: Path
) -> None:
    cli = Runner(dict(os.environ))
    path = isolated / "opsctl.yaml"
    path.write_text(CONFIG.format(url=URL, prefix=prefix))
    now = datetime.now(UTC)
    r.zadd(f"{prefix}ip:1.2.3.4", {f"r{i}": ms(now - timedelta(seconds=i)) for i in range(12)})
    shown = cli("--config", str(path), "-o", "json", "ratelimit", "show", "ip:1.2.3.4")
    assert shown.code == 0 and shown.json()["count"] == 12 and shown.json()["remaining"] == 988, shown.stderr
    unconfirmed = cli("--config", str(path), "ratelimit", "reset", "ip:1.2.3.4")
    assert unconfirmed.code == 3 and r.zcard(f"{prefix}ip:1.2.3.4") == 12
    dry = cli("--config", str(path), "--dry-run", "-o", "json", "ratelimit", "reset", "ip:1.2.3.4")
    assert dry.code == 0 and dry.json()["before"]["count"] == 12 and r.zcard(f"{prefix}ip:1.2.3.4") == 12
    done = cli("--config", str(path), "--yes", "-o", "json", "ratelimit", "reset", "ip:1.2.3.4")
    assert done.code == 0, done.stderr
    assert done.json()["before"]["count"] == 12 and done.json()["after"]["count"] == 0
    assert not r.exists(f"{prefix}ip:1.2.3.4")
    audit = cli("--config", str(path), "-o", "json", "audit").json()
    assert [(a["command"], a["outcome"]) for a in audit if not a["dry_run"]][-2:] == [
        ("ratelimit reset", "started"),
        ("ratelimit reset", "ok"),
    ]
    assert "1.2.3.4" in str(audit[-1]["args"])
