"""`opsctl audit`, `locks` and `unlock` on both state backends, through the real entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HOLDER = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from opsctl.context import Context
    from opsctl.state.locks import hold, lock_key
    ctx = Context(config_path=sys.argv[1])
    with hold(ctx.locks, lock_key("deploy", "auth", "production"), command="deploy canary auth", ttl=timedelta(seconds=30)):
        print("held", flush=True)
        time.sleep(60)
    """
)


def start_holder(config):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(config)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_unlock_refuses_a_live_holder_and_every_attempt_is_audited(opsctl, state_config):
    cfg = ("-c", str(state_config))
    holder = start_holder(state_config)
    try:
        locks = opsctl(*cfg, "-o", "json", "locks").json()
        assert [(lk["key"], lk["command"], lk["pid"]) for lk in locks] == [
            ("deploy/auth@production", "deploy canary auth", holder.pid)
        ]
        alive = opsctl(*cfg, "--yes", "unlock", "deploy", "auth")  # its holder is alive on this host
        assert alive.code == 3, alive.stderr
        assert "still running on this host" in alive.stderr and "--force" in alive.stderr

        unconfirmed = opsctl(*cfg, "unlock", "deploy", "auth", "--force")  # no terminal, no --yes
        assert unconfirmed.code == 3, unconfirmed.stderr
        assert "confirmation needed" in unconfirmed.stderr and "--yes" in unconfirmed.stderr

        dry = opsctl(*cfg, "--dry-run", "-o", "json", "unlock", "deploy", "auth", "--force")
        assert dry.code == 0, dry.stderr
        assert (
            dry.json()["broken"] is False
            and dry.json()["plan"][0]["action"] == "delete the lock deploy/auth@production"
        )
        assert len(opsctl(*cfg, "-o", "json", "locks").json()) == 1

        done = opsctl(*cfg, "--yes", "-o", "json", "unlock", "deploy", "auth", "--force")
        assert done.code == 0, done.stderr
        assert done.json()["broken"] is True and done.json()["holder"]["pid"] == holder.pid
        assert opsctl(*cfg, "-o", "json", "locks").json() == []

        again = opsctl(*cfg, "--yes", "unlock", "deploy", "auth")
        assert again.code == 3 and "is not locked" in again.stderr
    finally:
        holder.kill()
        holder.wait()

    entries = opsctl(*cfg, "-o", "json", "audit", "--service", "auth").json()
    assert [(e["command"], e["outcome"], e["dry_run"]) for e in entries] == [
        ("unlock", "refused", False),
        ("unlock", "refused", False),
        ("unlock", "ok", True),
        ("unlock", "started", False),
        ("unlock", "ok", False),
        ("unlock", "refused", False),
    ]
    for entry in entries:
        assert entry["user"] and entry["host"] and len(entry["trace_id"]) == 32
        assert entry["args"]["kind"] == "deploy" and entry["args"]["service"] == "auth"
        assert entry["env"] == "production"
    assert entries[0]["exit_code"] == 3
    assert "broke the lock held by" in entries[4]["message"] and entries[4]["run_id"] == entries[3]["run_id"]
    assert len({e["trace_id"] for e in entries}) == 5  # one trace per invocation

    assert opsctl(*cfg, "-o", "json", "audit", "--service", "billing").json() == []
    table = opsctl(*cfg, "audit")
    assert table.code == 0 and "unlock" in table.stdout and "refused" in table.stdout


def test_unlock_breaks_the_lock_of_a_dead_holder_without_force(opsctl, state_config):
    cfg = ("-c", str(state_config))
    holder = start_holder(state_config)
    holder.kill()  # SIGKILL: its lease (30 s) is still current, but nobody holds it any more
    holder.wait()
    [lock] = opsctl(*cfg, "-o", "json", "locks").json()
    assert lock["pid"] == holder.pid
    done = opsctl(*cfg, "--yes", "-o", "json", "unlock", "deploy", "auth")
    assert done.code == 0, done.stderr
    assert done.json()["broken"] is True and opsctl(*cfg, "-o", "json", "locks").json() == []


def test_audit_since_filter_and_bad_since(opsctl, state_config):
    cfg = ("-c", str(state_config))
    refused = opsctl(*cfg, "--dry-run", "unlock", "deploy", "auth")
    assert refused.code == 3 and "is not locked" in refused.stderr
    entries = opsctl(*cfg, "-o", "json", "audit", "--since", "1h").json()
    assert [(e["outcome"], e["dry_run"], e["message"]) for e in entries] == [
        ("refused", True, "deploy/auth@production is not locked")
    ]
    future = opsctl(*cfg, "-o", "json", "audit", "--since", "2099-01-01T00:00:00Z").json()
    assert future == []
    bad = opsctl(*cfg, "audit", "--since", "yesterday-ish")
    assert bad.code == 2 and "--since: bad time" in bad.stderr


def test_lock_held_refuses_with_who_and_since(state_config):
    from datetime import timedelta

    import pytest

    from opsctl.context import Context
    from opsctl.state.locks import LockHeldError, hold, lock_key

    holder = start_holder(state_config)
    ctx = Context(config_path=str(state_config))
    try:
        with (
            pytest.raises(LockHeldError) as info,
            hold(ctx.locks, lock_key("deploy", "auth", "production"), command="x", ttl=timedelta(seconds=5)),
        ):
            pass
        assert info.value.exit_code == 3
        assert f"pid {holder.pid}" in info.value.message and "running 'deploy canary auth'" in info.value.message
    finally:
        ctx.close()
        holder.kill()
        holder.wait()


def test_a_mutating_command_is_refused_while_its_lock_is_held(opsctl, state_config):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.replace('lock_key("deploy"', 'lock_key("incident"'), str(state_config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = opsctl("-c", str(state_config), "incident", "declare", "auth", "--sev", "1", "--title", "x")
        assert result.code == 3, result.stderr
        assert "incident/auth@production is locked by" in result.stderr and f"pid {holder.pid}" in result.stderr
        assert "opsctl --env production unlock incident auth" in result.stderr
        assert opsctl("-c", str(state_config), "-o", "json", "incident", "list").json() == []
    finally:
        holder.kill()
        holder.wait()
    [entry] = opsctl("-c", str(state_config), "-o", "json", "audit").json()
    assert (entry["command"], entry["outcome"], entry["exit_code"]) == ("incident declare", "refused", 3)
