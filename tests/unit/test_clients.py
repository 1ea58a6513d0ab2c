"""The client registry: built lazily per (kind, service, environment), swappable, closed together."""

from __future__ import annotations

import io
import re

import pytest

from opsctl.clients import Clients
from opsctl.context import Context
from opsctl.errors import UsageError
from opsctl.ids import new_id, normalise
from opsctl.output import Output
from tests.conftest import EXAMPLE


class Thing:
    def __init__(self, name: str, closed: list[str], fail: bool = False) -> None:
        self.name, self.closed, self.fail = name, closed, fail

    def close(self) -> None:
        self.closed.append(self.name)
        if self.fail:
            raise RuntimeError("boom")


def make(env: str = "production") -> Context:
    return Context(
        config_path=str(EXAMPLE), env_name=env, output=Output("json", stdout=io.StringIO(), stderr=io.StringIO())
    )


def test_built_once_per_key_and_per_environment():
    ctx = make()
    built: list[tuple[str | None, str | None]] = []
    ctx.clients.register("thing", lambda c, service, env: built.append((service, env)) or object())
    first = ctx.clients.get("thing", service="api")
    assert ctx.clients.get("thing", service="api") is first
    assert ctx.clients.get("thing", service="api", env="staging") is not first
    assert ctx.clients.get("thing") is not first
    assert built == [("api", "production"), ("api", "staging"), (None, "production")]


def test_tests_swap_in_their_own_and_close_is_newest_first_and_complete(tmp_path):
    ctx = make()
    closed: list[str] = []
    ctx.clients.put("pagerduty", Thing("pd", closed))
    ctx.clients.put("thing", Thing("a", closed, fail=True))
    ctx.clients.put("thing", Thing("b", closed), env="staging")
    assert ctx.pagerduty.name == "pd"  # type: ignore[union-attr]
    ctx.close()  # one failing close does not stop the others
    assert closed == ["b", "a", "pd"]


def test_unknown_kind_is_a_usage_error():
    with pytest.raises(UsageError, match="no client of kind 'nope'"):
        Clients(make()).get("nope")


def test_the_store_and_locks_come_from_the_registry(tmp_path):
    ctx = Context(
        config_path=str(EXAMPLE), state_dir=tmp_path, output=Output("json", stdout=io.StringIO(), stderr=io.StringIO())
    )
    assert not ctx.clients.built("state")
    assert ctx.locks.store is ctx.store  # type: ignore[attr-defined]
    assert ctx.clients.built("state") and ctx.pagerduty is None  # no token: local incidents
    ctx.close()
    assert not ctx.clients.built("state")


def test_ids_are_typeable_and_forgiving():
    ids = {new_id("INC") for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"INC-[0-9A-HJKMNP-TV-Z]{8}", i) for i in ids)
    assert normalise(" inc-7k2p9qxm ", "INC") == "INC-7K2P9QXM"
    assert normalise("7K2P9QXM", "INC") == "INC-7K2P9QXM"
    assert normalise("7K2P9QXO", "INC") == "INC-7K2P9QX0"  # O read as zero
