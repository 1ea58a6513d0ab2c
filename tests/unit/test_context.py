"""The confirmation rule and the lazily built parts of the context."""

from __future__ import annotations

import io

import pytest

from opsctl.context import Context
from opsctl.errors import RefusedError, UsageError
from opsctl.output import Output
from tests.conftest import EXAMPLE


def make(env: str = "production", **kw) -> Context:
    out = Output("table", stdout=io.StringIO(), stderr=io.StringIO())
    return Context(config_path=str(EXAMPLE), env_name=env, output=out, **kw)


def test_confirmation_refused_without_terminal_for_tier0_and_production():
    for env, service in (("production", "jobs"), ("staging", "auth")):
        ctx = make(env, is_tty=lambda: False)
        with pytest.raises(RefusedError) as info:
            ctx.confirm("roll out v2", service=ctx.service(service))
        assert info.value.exit_code == 3 and "--yes" in (info.value.hint or "")


def test_no_confirmation_needed_for_tier2_in_staging():
    ctx = make("staging", is_tty=lambda: False)
    ctx.confirm("roll out v2", service=ctx.service("jobs"))  # no rule matches: goes ahead


def test_yes_and_dry_run_skip_the_question():
    make(is_tty=lambda: False, yes=True).confirm("x", service=None, always=True)
    make(is_tty=lambda: False, dry_run=True).confirm("x", service=None, always=True)


@pytest.mark.parametrize(("answer", "refused"), [("y\n", False), ("n\n", True), ("\n", True)])
def test_terminal_prompt(monkeypatch, answer, refused):
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    ctx = make(is_tty=lambda: True)
    if refused:
        with pytest.raises(RefusedError, match="not confirmed"):
            ctx.confirm("break the lock", service=ctx.service("auth"))
    else:
        ctx.confirm("break the lock", service=ctx.service("auth"))


def test_unknown_environment_and_service():
    with pytest.raises(UsageError, match="unknown environment 'qa'"):
        _ = make("qa").env
    with pytest.raises(UsageError, match="unknown service 'biling'") as info:
        make().service("biling")
    assert info.value.hint is not None and info.value.hint.startswith("did you mean billing")


def test_nothing_heavy_is_built_until_asked(tmp_path):
    ctx = make(state_dir=tmp_path)
    assert ctx.settings.services  # reading config builds no store, no clients
    assert "store" not in ctx.__dict__ and "pagerduty" not in ctx.__dict__
    assert ctx.pagerduty is None  # no token in the example: local incidents
    assert ctx.store.backend == "sqlite"
    ctx.close()
