"""The incident lifecycle through the engine, on the local backend and on PagerDuty (the HTTPS fake).

Both backends run the same tests; where PagerDuty is involved, every request opsctl sent
is checked against the official OpenAPI contract.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsctl.context import Context
from opsctl.errors import ExitCode, RefusedError
from opsctl.incidents import engine, lifecycle, views
from opsctl.output import Output
from tests.conftest import EXAMPLE, FakeClock, pagerduty_config

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # Thursday 11:00 in Berlin: business hours


@dataclass
class World:
    backend: str
    pd: Any
    clock: FakeClock
    config: Path
    state: Path

    def ctx(self, **kw: Any) -> Context:
        out = Output("json", stdout=io.StringIO(), stderr=io.StringIO())
        return Context(config_path=str(self.config), clock=self.clock, output=out, state_dir=self.state, **kw)

    def pd_incidents(self) -> list[dict[str, Any]]:
        return self.pd.incidents() if self.pd else []


@pytest.fixture(params=["local", "pagerduty"])
def world(request, tmp_path: Path) -> World:
    text = EXAMPLE.read_text()
    pd = None
    if request.param == "pagerduty":
        pd = request.getfixturevalue("pd")
        text = pagerduty_config(text, pd, tmp_path / "pd-token")
    config = tmp_path / "opsctl.yaml"
    config.write_text(text)
    return World(request.param, pd, FakeClock(T0), config, tmp_path / "state")


def paged_expected(world: World) -> bool:
    return world.backend == "pagerduty"


def test_sev1_full_lifecycle(world: World):
    ctx = world.ctx()
    declared = engine.declare(
        ctx, "auth", sev=1, title="Login fails for all users", details="5xx on /login", commander="alice"
    ).incident
    assert declared.status == "triggered" and declared.urgency == "high"
    assert declared.paged is paged_expected(world)
    assert declared.backend == world.backend
    assert declared.ack_due_at == T0 + timedelta(minutes=15)
    assert declared.next_update_due_at == T0 + timedelta(minutes=30)
    assert declared.postmortem_due_at is None
    if world.pd:
        [remote] = world.pd_incidents()
        assert remote["incident_key"] == declared.incident_key and remote["urgency"] == "high"
        assert remote["priority"]["summary"] == "P1" or remote["priority"]["name"] == "P1"
        assert remote["escalation_policy"]["id"] == "PESC001"
        assert declared.pagerduty_id == remote["id"] and declared.delivery == "delivered"

    world.clock.advance(minutes=5)
    acked = lifecycle.acknowledge(world.ctx(), declared.id).incident
    assert acked.status == "acknowledged" and acked.acknowledged_at == T0 + timedelta(minutes=5)

    world.clock.advance(minutes=20)
    updated = lifecycle.update(world.ctx(), declared.id, message="rolled back v42", status="identified").incident
    assert updated.next_update_due_at == T0 + timedelta(minutes=55)
    assert updated.update_status == "identified"

    world.clock.advance(minutes=10)
    resolved = lifecycle.resolve(world.ctx(), declared.id, resolution="rollback to v41").incident
    assert resolved.status == "resolved" and resolved.resolved_at == T0 + timedelta(minutes=35)
    assert resolved.postmortem_due_at == T0 + timedelta(minutes=35, hours=48)
    assert resolved.next_update_due_at is None

    if world.pd:
        [remote] = world.pd_incidents()
        assert remote["status"] == "resolved"
        assert [u["message"] for u in world.pd.status_updates(remote["id"])] == ["[identified] rolled back v42"]
        assert any("rolled back v42" in n["content"] for n in world.pd.notes(remote["id"]))
        assert world.pd.contract_violations() == []

    shown = views.show(world.ctx(), declared.id.lower())
    events = [e["event"] for e in shown["timeline"]]
    assert events == ["declared", "paged" if world.pd else "recorded", "acknowledged", "status_update", "resolved"]
    assert all(e["author"] for e in shown["timeline"])
    assert shown["timeline"][3]["at"] == "2026-11-26T10:25:00+00:00"

    markdown = views.postmortem(world.ctx(), declared.id)
    assert markdown.startswith("# Post-mortem: Login fails for all users")
    assert "**Time to acknowledge:** 5m" in markdown and "**Time to resolve:** 35m" in markdown
    assert "2026-11-28T10:35:00+00:00" in markdown
    assert "status update: [identified] rolled back v42" in markdown
    assert "## Action items" in markdown and "## Impact" in markdown and "5xx on /login" in markdown


def test_declare_is_idempotent(world: World):
    first = engine.declare(world.ctx(), "billing", sev=2, title="Checkout slow", details=None, commander=None)
    world.clock.advance(minutes=3)
    again = engine.declare(world.ctx(), "billing", sev=2, title="checkout  SLOW ", details=None, commander=None)
    assert again.created is False and again.incident.id == first.incident.id
    assert "nobody was paged twice" in again.notices[0]
    assert len(views.list_incidents(world.ctx(), include_resolved=True, service=None)) == 1
    if world.pd:
        assert len(world.pd_incidents()) == 1
        assert len(world.pd.requests_to("POST", "/incidents")) == 1
    # a different severity is a different incident
    other = engine.declare(world.ctx(), "billing", sev=1, title="Checkout slow", details=None, commander=None)
    assert other.incident.id != first.incident.id


def test_sev3_pages_only_in_business_hours(world: World):
    # auth belongs to the identity team (Europe/Berlin, 09:00-18:00): 10:00 UTC is 11:00 there
    inside = engine.declare(
        world.ctx(), "auth", sev=3, title="typo in error page", details=None, commander=None
    ).incident
    assert inside.urgency == "low" and inside.paged is paged_expected(world)
    assert inside.ack_due_at is None and inside.next_update_due_at is None
    # api belongs to the platform team (America/New_York, 09:00-17:00): 10:00 UTC is 05:00 there
    outside = engine.declare(world.ctx(), "api", sev=3, title="slow CSV export", details=None, commander=None).incident
    assert outside.urgency == "low" and outside.paged is False and outside.backend == "local"
    assert "outside business hours" in outside.page_reason
    assert len(world.pd_incidents()) == (1 if world.pd else 0)
    world.clock.now = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # 10:00 in New York, 16:00 in Berlin
    later = engine.declare(world.ctx(), "api", sev=3, title="slow CSV export", details=None, commander=None)
    assert later.created is False  # the same open incident: not paged late, not twice


def test_sev4_is_a_ticket(world: World):
    ticket = engine.declare(world.ctx(), "admin", sev=4, title="logo misaligned", details=None, commander=None).incident
    assert (ticket.status, ticket.urgency, ticket.paged) == ("ticket", "none", False)
    assert ticket.ack_due_at is None and ticket.next_update_due_at is None
    assert world.pd_incidents() == []
    resolved = lifecycle.resolve(world.ctx(), ticket.id, resolution=None).incident
    assert resolved.postmortem_due_at is None


def test_dry_run_records_and_sends_nothing(world: World):
    outcome = engine.declare(world.ctx(dry_run=True), "auth", sev=1, title="db down", details=None, commander=None)
    assert views.list_incidents(world.ctx(), include_resolved=True, service=None) == []
    if world.pd:
        assert [(c["method"], c["path"]) for c in outcome.planned_calls] == [("POST", "/incidents")]
        assert outcome.planned_calls[0]["body"]["incident"]["incident_key"] == outcome.incident.incident_key
        assert not world.pd.requests_to("POST", "/incidents")
    audit = world.ctx().store.list_audit()
    assert [(a.command, a.dry_run, a.outcome) for a in audit] == [("incident declare", True, "ok")]


def test_list_flags_overdue_timers(world: World):
    incident = engine.declare(
        world.ctx(), "signaling", sev=2, title="calls drop", details=None, commander=None
    ).incident
    world.clock.advance(minutes=10)
    [row] = views.list_incidents(world.ctx(), include_resolved=False, service=None)
    assert row["ack_in"] == "5m" and row["ack_overdue"] is False
    world.clock.advance(minutes=21)
    [row] = views.list_incidents(world.ctx(), include_resolved=False, service="signaling")
    assert row["ack_overdue"] is True and row["update_overdue"] is True
    assert row["ack_in"] == "overdue 16m" and row["update_in"] == "overdue 1m"
    lifecycle.resolve(world.ctx(), incident.id, resolution="fixed")
    assert views.list_incidents(world.ctx(), include_resolved=False, service=None) == []
    assert len(views.list_incidents(world.ctx(), include_resolved=True, service=None)) == 1


def test_resolved_incidents_refuse_ack_and_update(world: World):
    incident = engine.declare(world.ctx(), "jobs", sev=2, title="queue stuck", details=None, commander=None).incident
    lifecycle.resolve(world.ctx(), incident.id, resolution=None)
    with pytest.raises(RefusedError) as info:
        lifecycle.acknowledge(world.ctx(), incident.id)
    assert info.value.exit_code == ExitCode.REFUSED
    with pytest.raises(RefusedError):
        lifecycle.update(world.ctx(), incident.id, message="late", status=None)
    again = lifecycle.resolve(world.ctx(), incident.id, resolution=None)
    assert "already resolved" in again.notices[0]


def test_a_declaration_that_died_half_way_is_delivered_once(pd, tmp_path):
    """PagerDuty created the incident but every answer was lost: opsctl keeps it pending locally;
    the next declare finds it at PagerDuty by its key instead of paging again."""
    config = tmp_path / "opsctl.yaml"
    config.write_text(pagerduty_config(EXAMPLE.read_text(), pd, tmp_path / "token", timeout="3s", request_timeout="1s"))
    world = World("pagerduty", pd, FakeClock(T0), config, tmp_path / "state")
    pd.inject_status(502, method="POST", path="/incidents", process=True, times=1)
    pd.inject_status(503, path="/incidents", times=100)  # then /incidents stays unreachable for this attempt
    with pytest.raises(engine.NotPagedError) as info:
        engine.declare(world.ctx(), "billing", sev=1, title="payments fail", details=None, commander=None)
    assert info.value.exit_code == ExitCode.UPSTREAM
    assert len(pd.incidents()) == 1  # it did reach PagerDuty
    [pending] = views.list_incidents(world.ctx(), include_resolved=False, service="billing")
    assert (pending["delivery"], pending["paged"]) == ("pending", False)

    pd.clear_faults()
    again = engine.declare(world.ctx(), "billing", sev=1, title="payments fail", details=None, commander=None)
    assert again.created is False and again.incident.id == pending["id"]
    assert again.incident.paged is True and again.incident.pagerduty_id == pd.incidents()[0]["id"]
    assert len(pd.incidents()) == 1


def test_audit_never_holds_secret_values(world: World, tmp_path):
    from opsctl import redact

    secret = "hunter2-super-secret"
    redact.register(secret)
    engine.declare(world.ctx(), "auth", sev=2, title=f"leaked {secret} in logs", details=secret, commander=None)
    entries = world.ctx().store.list_audit()
    assert [e.outcome for e in entries] == ["started", "ok"]
    text = repr(entries)
    assert secret not in text and all("***" in e.args["title"] for e in entries)
    store = world.ctx().store
    runs = store.list_runs()
    assert len(runs) == 1 and secret not in repr(runs) + repr(store.list_events("run", runs[0].id))
