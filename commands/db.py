"""`opsctl db migrate lint|status|plan|run|expand|dual-write|backfill|contract`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from opsctl.commands._common import context, plan_table
from opsctl.output import Column

if TYPE_CHECKING:
    from opsctl.context import Context

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
migrate = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
app.add_typer(
    migrate, name="migrate", help="Forward-only, zero-downtime migrations: lint, status, plan, run, and column changes."
)

_SERVICE = typer.Argument(..., metavar="SERVICE", help="The service whose database to migrate.")
_CHANGE = typer.Argument(..., metavar="CHANGE", help="A column-change YAML file (or its name in the changes folder).")
_DIR = typer.Option(None, "--dir", metavar="PATH", help="The migrations folder (default: database.migrations).")
_SEVERITY = {"forbidden": "bold red", "unsafe": "red", "advice": "yellow"}
_FINDINGS = [
    Column("where", "FILE:LINE"),
    Column("rule"),
    Column("severity", color=lambda v: _SEVERITY.get(str(v))),
    Column("message"),
    Column("recipe", "SAFE RECIPE"),
]


def _dir(path: Path | None) -> Path | None:
    return path.expanduser() if path is not None else None


@migrate.command("lint")
def lint(ctx: typer.Context, path: Path = typer.Argument(..., metavar="PATH", help="A migrations folder.")) -> None:
    """Check every statement against the zero-downtime rules; exit 1 on any finding."""
    from opsctl.errors import FailedError
    from opsctl.migrate.apply import lint_folder

    c = context(ctx)
    folder, findings = lint_folder(path.expanduser())
    if c.output.format != "table":
        c.output.data({"path": str(folder.path), "layout": folder.layout, "files": len(folder.migrations),
                       "findings": [f.to_dict() for f in findings]})  # fmt: skip
    elif findings:
        c.output.data([{"where": f"{f.file}:{f.line}", **f.to_dict()} for f in findings], columns=_FINDINGS)
    if findings:
        counts = {s: sum(1 for f in findings if f.severity == s) for s in ("forbidden", "unsafe", "advice")}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        raise FailedError(f"{len(findings)} finding(s) in {len(folder.migrations)} file(s): {summary}")
    c.output.success(f"{len(folder.migrations)} file(s), no findings ({folder.layout} layout)")


@migrate.command("status")
def status(ctx: typer.Context, service: str = _SERVICE, directory: Path | None = _DIR) -> None:
    """Applied, pending, drift, column changes by phase, INVALID indexes and NOT VALID constraints."""
    from opsctl.migrate.apply import status as get_status

    c = context(ctx)
    data = get_status(c, service, _dir(directory))
    if c.output.format != "table":
        c.output.data(data)
        return
    _status_table(c, data)


def _status_table(c: Context, data: dict[str, Any]) -> None:
    c.output.info(f"{data['service']}@{data['env']} — {data['database']} — {data.get('folder', '-')}"
                  f" ({data.get('layout', '-')})")  # fmt: skip
    rows = [{"id": a["id"], "state": "applied", "when": a.get("applied_at"), "by": a.get("applied_by"),
             "note": a.get("source")} for a in data.get("applied", [])]  # fmt: skip
    rows += [{"id": p["id"], "state": "pending", "when": None, "by": None, "note": p["file"]}
             for p in data.get("pending", [])]  # fmt: skip
    colours = {"applied": "green", "pending": "yellow"}
    if rows:
        c.output.data(rows, columns=[Column("id", "MIGRATION"), Column("state", color=lambda v: colours.get(str(v))),
                                     Column("when", "APPLIED"), Column("by"), Column("note")])  # fmt: skip
    if data.get("drift"):
        c.output.warn(f"drift: {len(data['drift'])} problem(s)")
        c.output.data(data["drift"], columns=[Column("id"), Column("kind", color=lambda _: "red"), Column("reason")])
    if data.get("changes"):
        c.output.data(data["changes"], columns=[
            Column("id", "CHANGE"), Column("table"), Column("column"), Column("phase"),
            Column("backfilled"), Column("remaining"), Column("next"),
        ])  # fmt: skip
    for key, label in (("invalid_indexes", "INVALID index"), ("not_valid_constraints", "NOT VALID constraint")):
        for item in data.get(key, []):
            name = item.get("index") or item.get("constraint")
            c.output.warn(f"{label} {name} on {item['table']}")


@migrate.command("plan")
def plan(ctx: typer.Context, service: str = _SERVICE, directory: Path | None = _DIR) -> None:
    """The pending statements: the lock each takes, the rows of the tables it touches, the timeouts."""
    from opsctl.migrate.apply import RunOptions, plan_view

    c = context(ctx)
    data = plan_view(c, service, RunOptions(directory=_dir(directory)))
    if c.output.format != "table":
        c.output.data(data)
        return
    if not data["statements"]:
        c.output.success("nothing pending")
    else:
        c.output.data(
            [{**s, "where": f"{s['file']}:{s['line']}", "rows": _rows(s["rows"])} for s in data["statements"]],
            columns=[Column("where", "FILE:LINE"), Column("lock"), Column("rows", "ROWS (EST.)"),
                     Column("transaction"), Column("sql", "STATEMENT")],
        )  # fmt: skip
        policy = c.settings.policy.migrate
        c.output.info(f"each statement: lock_timeout {policy.lock_timeout.total_seconds():g}s,"
                      f" statement_timeout {policy.statement_timeout.total_seconds():g}s (none for CONCURRENTLY),"
                      f" up to {policy.retries} retries")  # fmt: skip
    for d in data["drift"]:
        c.output.warn(f"drift: {d['id']}: {d['reason']}")
    for p in data["problems"]:
        c.output.warn(p)


def _rows(rows: dict[str, int | None]) -> str:
    return ", ".join(f"{t}: {'?' if n is None else n}" for t, n in rows.items()) or "-"


@migrate.command("run")
def run(
    ctx: typer.Context,
    service: str = _SERVICE,
    directory: Path | None = _DIR,
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Apply statements the linter calls unsafe."),
    out_of_order: bool = typer.Option(
        False, "--out-of-order", help="Apply a pending file older than an applied one (never skipped silently)."
    ),
) -> None:
    """Apply the pending migrations: lint gate, advisory lock, lock_timeout and bounded retries."""
    from opsctl.migrate.apply import RunOptions
    from opsctl.migrate.apply import run as run_migrations

    c = context(ctx)
    result = run_migrations(c, service, RunOptions(_dir(directory), allow_unsafe, out_of_order))
    _result(c, result)


def _result(c: Context, result: Any) -> None:
    if result.dry_run:
        c.output.info("dry run: nothing was changed")
        if c.output.format != "table":
            c.output.data(result.plan)
            return
        for n, step in enumerate(result.plan, 1):
            c.output.text(f"{n}. {step['name']}: {step['action']} {step['target']}")
            detail = step.get("detail")
            for item in detail if isinstance(detail, list) else ([detail] if detail else []):
                c.output.text("   " + (_one(item) if isinstance(item, dict) else str(item)))
        for note in result.notes:
            c.output.info(note)
        return
    if c.output.format != "table":
        c.output.data({"run_id": result.run_id, "state": result.state, "results": result.results,
                       "notes": result.notes})  # fmt: skip
        return
    for note in result.notes:
        c.output.info(note)
    c.output.success(f"{result.state} ({result.run_id}): {len(result.results)} step(s)")


def _one(item: dict[str, Any]) -> str:
    if "sql" in item:
        sql = " ".join(str(item["sql"]).split())
        return f"line {item.get('line')}: [{item.get('lock')}; {item.get('transaction')}] {sql}"
    return "; ".join(f"{k}: {v}" for k, v in item.items())


_BATCH = typer.Option(None, "--batch-size", min=1, max=1_000_000, metavar="N", help="First batch size.")
_RATE = typer.Option(None, "--max-rate", min=1, metavar="ROWS/S", help="At most this many rows per second.")


@migrate.command("expand")
def expand(ctx: typer.Context, service: str = _SERVICE, change: str = _CHANGE, directory: Path | None = _DIR) -> None:
    """Phase 1: add the column, nullable and without a default."""
    from opsctl.migrate.changes import expand as run_phase

    c = context(ctx)
    _result(c, run_phase(c, service, change, _dir(directory)))


@migrate.command("dual-write")
def dual_write(
    ctx: typer.Context,
    service: str = _SERVICE,
    change: str = _CHANGE,
    directory: Path | None = _DIR,
    verify: bool = typer.Option(False, "--verify", help="Check that rows written since are populated."),
) -> None:
    """Phase 2: a trigger keeps the new column in step, so old and new app versions run side by side."""
    from opsctl.migrate.changes import dual_write as run_phase
    from opsctl.migrate.changes import verify_dual_write

    c = context(ctx)
    if verify:
        data = verify_dual_write(c, service, change, _dir(directory))
        c.output.data(data)
        if not data["ok"]:
            from opsctl.errors import FailedError

            raise FailedError(data["message"])
        return
    _result(c, run_phase(c, service, change, _dir(directory)))


@migrate.command("backfill")
def backfill(
    ctx: typer.Context,
    service: str = _SERVICE,
    change: str = _CHANGE,
    directory: Path | None = _DIR,
    batch_size: int | None = _BATCH,
    max_rate: float | None = _RATE,
) -> None:
    """Phase 3: fill the column in short batches by primary key; resumable, throttled."""
    from opsctl.migrate.changes import backfill as run_phase

    c = context(ctx)
    _result(c, run_phase(c, service, change, _dir(directory), batch_size=batch_size, max_rate=max_rate))


@migrate.command("contract")
def contract(ctx: typer.Context, service: str = _SERVICE, change: str = _CHANGE, directory: Path | None = _DIR) -> None:
    """Phase 4: enforce the constraints without long locks (NOT VALID, VALIDATE, CONCURRENTLY)."""
    from opsctl.migrate.changes import contract as run_phase

    c = context(ctx)
    _result(c, run_phase(c, service, change, _dir(directory)))


_POLICY_COLOURS = {"OK": "green", "VIOLATION": "bold red"}


@app.command("backups")
def backups(ctx: typer.Context, service: str = typer.Argument(..., metavar="SERVICE", help="The service.")) -> None:
    """The backups, the restorable window and the backup policy check; exit 1 on any violation."""
    from opsctl.backups.view import backups as view
    from opsctl.errors import FailedError

    c = context(ctx)
    data = view(c, service)
    if c.output.format != "table":
        c.output.data(data)
    else:
        window = data["window"]
        c.output.info(f"{data['service']}@{data['env']} — {data['provider']} {data['source']} — restorable"
                      f" {window['earliest'] or '-'} → {window['latest'] or '-'} ({window['basis']})")  # fmt: skip
        if data["backups"]:
            c.output.data(data["backups"], columns=[Column("label"), Column("type"), Column("started_at", "STARTED"),
                                                    Column("stopped_at", "STOPPED"), Column("size"),
                                                    Column("where")])  # fmt: skip
        c.output.data(data["policy"], columns=[Column("rule"), Column("status", color=lambda v: _POLICY_COLOURS.get(
            str(v))), Column("evidence")])  # fmt: skip
    if data["violations"]:
        raise FailedError(f"{data['violations']} backup policy violation(s) for {data['service']}@{data['env']}")


@app.command("restore")
def restore(
    ctx: typer.Context,
    service: str = typer.Argument(..., metavar="SERVICE", help="The service whose database to restore."),
    pitr: bool = typer.Option(False, "--pitr", help="Point-in-time restore into a new instance (required)."),
    to: str = typer.Option(..., "--to", metavar="TIME|latest", help="ISO 8601 with a zone, or -15m, or latest."),
    target: str | None = typer.Option(None, "--target", metavar="NAME", help="Name of the new instance."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, metavar="N", help="Port (pgBackRest)."),
    verify_sql: str | None = typer.Option(None, "--verify-sql", metavar="SQL", help="A query that must be true."),
    mfa_code: str | None = typer.Option(None, "--mfa-code", metavar="CODE", help="6-digit MFA code."),
) -> None:
    """Restore SERVICE's database as of TIME into a NEW instance: window checked, verified, RPO/RTO measured."""
    from opsctl.backups.restore import Options
    from opsctl.backups.restore import restore as run_restore
    from opsctl.errors import FailedError, UsageError

    if not pitr:
        raise UsageError("only point-in-time restores exist: pass --pitr")
    c = context(ctx)
    report = run_restore(c, service, Options(to, target, port, verify_sql, mfa_code))
    if report.get("dry_run"):
        _result_plan(c, report)
        return
    if c.output.format != "table":
        c.output.data(report)
    else:
        _restore_table(c, report)
    problems = [] if report["verification"].get("ok") else ["verification failed"]
    problems += [f"{k.upper()} missed" for k in ("rpo", "rto") if not report[k]["met"]]
    if problems:
        raise FailedError(f"restored into {report['target']}, but " + " and ".join(problems))


def _result_plan(c: Context, report: dict[str, Any]) -> None:
    c.output.info(f"restorable window {report['window']['earliest']} → {report['window']['latest']}")
    if c.output.format != "table":
        c.output.info("dry run: nothing was changed")
        c.output.data(report)
        return
    plan_table(c, report["plan"])


def _restore_table(c: Context, r: dict[str, Any]) -> None:
    def secs(v: Any) -> str:
        return "-" if v is None else f"{float(v):.0f}s"

    v = r["verification"]
    c.output.data({
        "target": r["target"], "requested_time": r["requested_time"] or "latest", "recovered_to": r["recovered_to"],
        "data_loss": secs(r["data_loss_seconds"]), "elapsed": secs(r["elapsed_seconds"]),
        "rpo": f"{secs(r['rpo']['actual_seconds'])} of {secs(r['rpo']['target_seconds'])}"
               f" ({'met' if r['rpo']['met'] else 'MISSED'})",
        "rto": f"{secs(r['rto']['actual_seconds'])} of {secs(r['rto']['target_seconds'])}"
               f" ({'met' if r['rto']['met'] else 'MISSED'})",
        "verification": "ok" if v.get("ok") else "FAILED: " + "; ".join(v.get("problems", [])),
        "tables": v.get("tables") or "-", "dsn": r["dsn"],
    })  # fmt: skip
