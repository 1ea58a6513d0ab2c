"""A colliding incident id is never a lost declaration: the record takes a fresh id."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime

from opsctl.context import Context
from opsctl.incidents import engine, views
from opsctl.output import Output
from tests.conftest import EXAMPLE, FakeClock


def test_a_colliding_id_is_retried_not_lost(tmp_path):
    clock = FakeClock(datetime(2026, 11, 27, 3, 0, tzinfo=UTC))
    ctx = Context(
        config_path=str(EXAMPLE), clock=clock, sleep=clock.sleep, state_dir=tmp_path,
        output=Output("json", stdout=io.StringIO(), stderr=io.StringIO()),
    )  # fmt: skip
    first = engine.declare(ctx, "api", sev=2, title="first", details=None, commander=None).incident
    clash = replace(first, title="second", incident_key="opsctl/api/production/sev2/other")  # same id
    new_id = engine._record(ctx, clash)
    assert new_id != first.id and new_id.startswith("INC-")
    titles = sorted(i["title"] for i in views.list_incidents(ctx, include_resolved=True, service=None))
    assert titles == ["first", "second"]
