"""`opsctl drill failover|restore|status|report`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from opsctl.commands._common import context, duration, plan_table
from opsctl.output import Column

if TYPE_CHECKING:
    from opsctl.context import Context

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

_SERVICE = typer.Argument(..., metavar="SERVICE", help="The service whose database to drill.")
_MARKERS = typer.Option(
    None, "--markers", metavar="DURATION", help="How long to write markers (one a second) before the failure."
)
_RESULT_COLOURS = {"passed": "green", "passed_with_conditions": "yellow", "failed": "bold red"}
_TIMELINE = [
    Column("step"),
    Column("started_at", "STARTED"),
    Column("finished_at", "FINISHED"),
    Column("seconds", "SECONDS"),
    Column("outcome", color=lambda v: "red" if "fail" in str(v) or "interrupted" in str(v) else None),
]


def _duration(text: str | None) -> Any:
    return duration(text, "--markers", most=3600)


def _secs(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}s"


def _show(c: Context, report: dict[str, Any]) -> None:
    if c.output.format != "table":
        c.output.data(report)
        return
    rto, rpo = report["rto"], report["rpo"]
    c.output.data({
        "drill": report["id"], "type": report["type"], "service": f"{report['service']}@{report['env']}",
        "result": report["result"],
        "rto": f"{_secs(rto['actual_seconds'])} of {_secs(rto['target_seconds'])} ({'met' if rto['met'] else 'MISSED'})",
        "rpo": f"{_secs(rpo['actual_seconds'])} of {_secs(rpo['target_seconds'])} ({'met' if rpo['met'] else 'MISSED'})",
    })  # fmt: skip
    c.output.data(report["timeline"], columns=_TIMELINE)
    for line in report["observations"]:
        c.output.info(f"observation: {line}")
    for line in report["follow_ups"]:
        c.output.warn(f"follow-up: {line}")


def _finish(c: Context, outcome: Any) -> None:
    from opsctl.errors import FailedError

    if outcome.dry_run:
        plan_table(c, outcome.report["plan"])
        return
    report = outcome.report
    _show(c, report)
    if outcome.error is not None:
        raise outcome.error
    if report["result"] == "failed":
        missed = [k.upper() for k in ("rto", "rpo") if not report[k]["met"]]
        raise FailedError(f"drill {report['id']} failed: " + (" and ".join(missed) + " missed" if missed else
                                                                report.get("message") or "see the report"))  # fmt: skip
    c.output.success(f"drill {report['id']}: {report['result'].replace('_', ' ')}")


@app.command("failover")
def failover(
    ctx: typer.Context,
    service: str = _SERVICE,
    scenario: str = typer.Option("region", "--scenario", metavar="region", help="What fails (region)."),
    failback: bool = typer.Option(
        False, "--failback", help="Afterwards rebuild the old primary as a replica and return."
    ),
    markers: str | None = _MARKERS,
) -> None:
    """Fail the database over to its replica for real: every step timed, RTO/RPO measured, rollback on failure."""
    from opsctl.drills.failover import Options
    from opsctl.drills.failover import failover as run

    c = context(ctx)
    _finish(c, run(c, service, Options(scenario, failback, _duration(markers))))


@app.command("restore")
def restore(
    ctx: typer.Context,
    service: str = _SERVICE,
    to: str = typer.Option("latest", "--to", metavar="TIME|latest", help="The point to restore (default: latest)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the scratch instance."),
    target: str | None = typer.Option(None, "--target", metavar="NAME", help="Name of the scratch instance."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, metavar="N", help="Port (pgBackRest)."),
    verify_sql: str | None = typer.Option(None, "--verify-sql", metavar="SQL", help="A query that must be true."),
    markers: str | None = _MARKERS,
) -> None:
    """The restore drill: PITR into a scratch instance, verified, RTO/RPO measured, torn down."""
    from opsctl.drills.restore_drill import Options
    from opsctl.drills.restore_drill import restore_drill as run

    c = context(ctx)
    _finish(c, run(c, service, Options(to, keep, target, port, verify_sql, _duration(markers))))


@app.command("status")
def status(
    ctx: typer.Context,
    service: str | None = typer.Argument(None, metavar="[SERVICE]", help="One service (default: all)."),
) -> None:
    """Last drills, results, next due dates; exit 1 when any drill is overdue (cron-able)."""
    from opsctl.drills.schedule import status as view
    from opsctl.errors import FailedError

    c = context(ctx)
    rows = view(c, service=service)
    if c.output.format != "table":
        c.output.data(rows)
    elif rows:
        c.output.data(rows, columns=[
            Column("service"), Column("drill"), Column("cadence"), Column("last_run", "LAST RUN"),
            Column("last_result", "RESULT", color=lambda v: _RESULT_COLOURS.get(str(v))),
            Column("next_due", "NEXT DUE"),
            Column("overdue", color=lambda v: "bold red" if v else None, fmt=lambda v: "OVERDUE" if v else "-"),
        ])  # fmt: skip
    else:
        c.output.info("no service has a database with backups or a replica: no drill is due")
    overdue = [r for r in rows if r["overdue"]]
    if overdue:
        raise FailedError(f"{len(overdue)} drill(s) overdue: " + ", ".join(f"{r['service']} {r['drill']}"
                                                                          for r in overdue[:10]))  # fmt: skip


@app.command("report")
def report(
    ctx: typer.Context,
    drill_id: str | None = typer.Argument(None, metavar="[ID]", help="The drill's run id."),
    last: bool = typer.Option(False, "--last", help="The most recent drill."),
    fmt: str | None = typer.Option(None, "--format", metavar="md|json", help="Default: md, or json with -o json."),
) -> None:
    """The drill's report for the DR file: timeline, RTO/RPO per system, result, follow-ups."""
    from opsctl.drills import report as reports
    from opsctl.errors import UsageError

    c = context(ctx)
    if fmt not in (None, "md", "json"):
        raise UsageError(f"--format {fmt!r}: md or json")
    found = reports.build(c, reports.find(c, drill_id, last=last))
    if (fmt or ("md" if c.output.format == "table" else "json")) == "md":
        c.output.text(reports.markdown(found))
    elif c.output.format == "table":
        c.output.json_line(found)
    else:
        c.output.data(found)
