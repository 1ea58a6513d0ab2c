"""`drill status`: the schedule at fixed instants (the injected clock), from run records in the real
state store; and the report's result and Markdown from a stored record."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsctl.context import Context
from opsctl.drills import report, schedule
from opsctl.drills.measure import rpo
from opsctl.output import Output
from opsctl.state.base import Event, RunRecord

CONFIG = """\
version: 1
environments: [production, staging]
default_env: production
teams: {platform: {}}
policy:
  drills: {restore: monthly, failover: quarterly}
services:
  - name: billing
    tier: 0
    owner: platform
    database:
      dsn: env:DSN
      backup: {provider: pgbackrest, stanza: billing}
      replica_dsn: env:REPLICA
  - name: jobs
    tier: 2
    owner: platform
    drills: {restore: 2w, failover: never}
    database:
      dsn: env:DSN
      backup: {provider: rds, instance: jobs-prod}
      replica: jobs-dr
  - name: web
    tier: 2
    owner: platform
"""


def context(tmp: Path, now: datetime) -> Context:
    path = tmp / "opsctl.yaml"
    path.write_text(CONFIG)
    return Context(config_path=str(path), output=Output("json", stdout=io.StringIO(), stderr=io.StringIO()),
                   clock=lambda: now, state_dir=tmp / "state")  # fmt: skip


def drill(ctx: Context, ident: str, kind: str, service: str, at: datetime, *, state: str = "succeeded",
          rto: bool = True, rpo_met: bool = True, conditions: list[str] | None = None) -> RunRecord:  # fmt: skip
    run = RunRecord(
        id=ident, kind=f"drill {kind}", service=service, env="production", state=state, driver_user="ana",
        driver_host="laptop", driver_pid=42, token="t", lease_seconds=60, started_at=at, heartbeat_at=at,
        finished_at=at + timedelta(minutes=20), params={"scenario": "region", "tier": 0},
        plan=[{"name": "promote", "action": "pg_promote()", "target": "db2"}, {"name": "measure", "action": "x"}],
        data={"rto": {"target_seconds": 900.0, "actual_seconds": 12.5, "met": rto},
              "rpo": {"target_seconds": 0.0, "actual_seconds": 0.0 if rpo_met else 2.0, "met": rpo_met},
              "conditions": conditions or [], "observations": ["the | pipe \x1b[31mred\x1b[0m stays text"]},
        message="",
    )  # fmt: skip
    ctx.store.create_run(run)
    return run


def rows(ctx: Context) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["service"], r["drill"]): r for r in schedule.status(ctx)}


def test_never_drilled_services_are_overdue_and_services_without_a_database_are_not_listed(tmp_path: Path) -> None:
    ctx = context(tmp_path, datetime(2026, 11, 27, 12, tzinfo=UTC))
    found = rows(ctx)
    assert set(found) == {("billing", "restore"), ("billing", "failover"), ("jobs", "restore"), ("jobs", "failover")}
    assert found["billing", "restore"]["overdue"] and found["billing", "restore"]["next_due"] is None
    assert found["jobs", "failover"]["cadence"] == "never" and found["jobs", "failover"]["overdue"] is False
    assert found["jobs", "restore"]["cadence"] == "2w"


def test_a_calendar_month_ends_on_the_last_day_and_overdue_starts_after_the_due_instant(tmp_path: Path) -> None:
    at = datetime(2026, 1, 31, 10, tzinfo=UTC)
    before = context(tmp_path, datetime(2026, 2, 28, 9, 59, tzinfo=UTC))
    drill(before, "RUN-A", "restore", "billing", at)
    row = rows(before)["billing", "restore"]
    assert row["next_due"] == "2026-02-28T10:00:00+00:00" and row["overdue"] is False
    assert row["last_result"] == "passed" and row["last_id"] == "RUN-A"
    after = context(tmp_path, datetime(2026, 2, 28, 10, 1, tzinfo=UTC))
    assert rows(after)["billing", "restore"]["overdue"] is True


def test_a_failed_drill_is_the_last_run_but_the_due_date_runs_from_the_last_passing_one(tmp_path: Path) -> None:
    ctx = context(tmp_path, datetime(2026, 11, 27, 12, tzinfo=UTC))
    drill(ctx, "RUN-Q", "failover", "billing", datetime(2026, 8, 20, tzinfo=UTC), conditions=["async"])
    drill(ctx, "RUN-F", "failover", "billing", datetime(2026, 11, 10, tzinfo=UTC), rpo_met=False)
    drill(ctx, "RUN-J", "restore", "jobs", datetime(2026, 11, 20, tzinfo=UTC))
    found = rows(ctx)
    failover = found["billing", "failover"]
    assert failover["last_id"] == "RUN-F" and failover["last_result"] == "failed"
    assert (
        failover["last_passed"] == "2026-08-20T00:00:00+00:00" and failover["next_due"] == "2026-11-20T00:00:00+00:00"
    )
    assert failover["overdue"] is True
    jobs = found["jobs", "restore"]
    assert jobs["next_due"] == "2026-12-04T00:00:00+00:00" and jobs["overdue"] is False
    assert report.result_of(ctx.store.get_run("RUN-Q")) == "passed_with_conditions"  # type: ignore[arg-type]


@pytest.mark.parametrize(("start", "months", "expected"), [
    (datetime(2026, 1, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
    (datetime(2024, 1, 31, tzinfo=UTC), 1, datetime(2024, 2, 29, tzinfo=UTC)),
    (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),
    (datetime(2026, 12, 15, 8, 30, tzinfo=UTC), 12, datetime(2027, 12, 15, 8, 30, tzinfo=UTC)),
])  # fmt: skip
def test_add_months(start: datetime, months: int, expected: datetime) -> None:
    assert schedule.add_months(start, months) == expected


def test_a_stored_drill_makes_a_report_with_its_timeline_and_markdown(tmp_path: Path) -> None:
    ctx = context(tmp_path, datetime(2026, 11, 27, 12, tzinfo=UTC))
    at = datetime(2026, 11, 27, 11, tzinfo=UTC)
    run = drill(ctx, "RUN-R", "failover", "billing", at, state="rolled_back", rto=False)
    for offset, kind, data in [
        (0, "step_started", {"index": 0}),
        (5, "step_failed", {"index": 0, "error": "boom"}),
        (6, "compensating", {"index": 0}),
        (8, "compensated", {"index": 0}),
    ]:
        ctx.store.add_event(Event("run", run.id, at + timedelta(seconds=offset), "ana", kind, data))
    built = report.build(ctx, ctx.store.get_run("RUN-R"))  # type: ignore[arg-type]
    assert built["result"] == "failed" and built["type"] == "failover" and built["ran_by"]["user"] == "ana"
    assert [(t["step"], t["outcome"], t["seconds"]) for t in built["timeline"]] == [
        ("promote", "failed, rolled back", 5.0),
        ("measure", "not run", None),
        ("rollback: promote", "done", 2.0),
    ]
    assert built["timeline"][0]["error"] == "boom"
    assert "fix what stopped the drill and run it again" in built["follow_ups"]
    md = report.markdown(built)
    assert "**Failed**" in md and "| promote |" in md and "\x1b" not in md and "the \\| pipe" in md


def test_rpo_from_markers() -> None:
    t0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
    written = [{"seq": n, "at": (t0 + timedelta(seconds=n)).isoformat()} for n in range(1, 6)]
    failure = t0 + timedelta(seconds=5.5)
    assert rpo(written, [1, 2, 3, 4, 5], failure)["actual_seconds"] == 0.0
    partial = rpo(written, [1, 2, 3], failure)
    assert partial["lost"] == [4, 5] and partial["actual_seconds"] == 2.5 and not partial["lower_bound"]
    none = rpo(written, [], failure, recovered_to=t0 - timedelta(seconds=10))
    assert none["actual_seconds"] == 15.5 and none["basis"].endswith("recovery point")
    bound = rpo(written, [], failure)
    assert bound["actual_seconds"] == 4.5 and bound["lower_bound"]
