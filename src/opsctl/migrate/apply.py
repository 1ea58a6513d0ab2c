"""`db migrate run|plan|status|lint`: the pending files of a folder, applied forward-only.

``run`` is an operation on the runner: its plan is the lint gate and one step per pending file.
Under the opsctl lock it takes the database's own advisory lock (two runs never overlap, even
from machines with different state stores), then applies each file segment by segment — a
transaction per run of ordinary statements, each CONCURRENTLY statement on its own (an INVALID
index a failed build left behind is dropped before the retry) — every statement under
``lock_timeout``, retried a bounded number of times naming who blocks it, and records the file
(id, checksum, who, when, duration) in the same transaction, in Drizzle's table too for a
Drizzle folder.  Nothing is ever undone: migrations are forward-only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.errors import FailedError, RefusedError, UsageError
from opsctl.migrate import history
from opsctl.migrate.assess import Assessment, Segment, assess, row_estimates, segments_of
from opsctl.migrate.db import Database, Timeouts, first_line, open_database, with_retries
from opsctl.migrate.statements import SqlSyntaxError
from opsctl.migrate.target import Target, resolve
from opsctl.operations.model import Operation, RunResult, Step
from opsctl.operations.runner import execute

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.migrate.lint import Finding
    from opsctl.migrate.source import Folder, Migration
    from opsctl.operations.run import Run

KIND = "db migrate run"


@dataclass(frozen=True)
class RunOptions:
    directory: Path | None = None
    allow_unsafe: bool = False
    out_of_order: bool = False


def load_folder(path: Path) -> Folder:
    from opsctl.migrate.source import load

    return load(path)


def lint_folder(path: Path) -> tuple[Folder, list[Finding]]:
    from opsctl.migrate.lint import lint_migrations

    folder = load_folder(path)
    return folder, lint_migrations(folder.migrations)


# ---------------------------------------------------------------- status
def status(ctx: Context, service: str, directory: Path | None = None) -> dict[str, Any]:
    from opsctl.migrate.changes import change_status

    target = resolve(ctx, service, directory, need_folder=False)
    folder = load_folder(target.folder) if target.folder is not None else None
    db = open_database(ctx, target.service, command="migrate status")
    try:
        out: dict[str, Any] = {"service": target.name, "env": target.env, "database": db.where}
        if folder is not None:
            found = assess(db, folder)
            out.update(
                folder=str(folder.path), layout=folder.layout,
                applied=[found.applied[m.id].to_dict() | {"file": m.display}
                         for m in folder.migrations if m.id in found.applied
                         and found.applied[m.id].state == "applied"],
                pending=[{"id": m.id, "file": m.display} for m in found.pending],
                drift=found.drift,
            )  # fmt: skip
        out["changes"] = change_status(ctx, target, db)
        out["invalid_indexes"] = [
            {"index": r[0], "table": r[1]}
            for r in db.rows(
                "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
            )
        ]
        out["not_valid_constraints"] = [
            {"constraint": r[0], "table": r[1]}
            for r in db.rows(
                "SELECT c.conname, c.conrelid::regclass::text FROM pg_constraint c"
                " JOIN pg_namespace n ON n.oid = c.connamespace"
                " WHERE NOT c.convalidated AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 2, 1"
            )
        ]
        return out
    finally:
        db.close()


# ---------------------------------------------------------------- plan
def describe_segments(m: Migration, db: Database | None, timeouts: Timeouts) -> list[dict[str, Any]]:
    segments = segments_of(m)
    tables = {t for seg in segments for _, eff in seg.statements for t in eff.tables}
    rows = row_estimates(db, tables) if db is not None else {}
    out: list[dict[str, Any]] = []
    for n, seg in enumerate(segments):
        for st, eff in seg.statements:
            out.append({
                "file": m.display, "line": st.line, "segment": n + 1,
                "transaction": "own transaction" if seg.transaction else "no transaction (CONCURRENTLY)",
                "sql": st.sql, "lock": eff.lock, "tables": eff.tables,
                "rows": {t: rows.get(t) for t in eff.tables},
                "lock_timeout_ms": timeouts.lock_ms,
                "statement_timeout_ms": timeouts.statement_ms if seg.transaction else 0,
                "retries": timeouts.retries,
            })  # fmt: skip
    return out


def plan_view(ctx: Context, service: str, options: RunOptions) -> dict[str, Any]:
    target = resolve(ctx, service, options.directory)
    assert target.folder is not None
    folder = load_folder(target.folder)
    timeouts = Timeouts.of(ctx.settings.policy.migrate)
    db = open_database(ctx, target.service, command="migrate plan")
    try:
        found = assess(db, folder)
        statements: list[dict[str, Any]] = []
        problems: list[str] = []
        for m in found.pending:
            try:
                statements.extend(describe_segments(m, db, timeouts))
            except SqlSyntaxError as exc:
                problems.append(f"{m.display}:{exc.line}: {exc.message}")
        return {
            "service": target.name, "env": target.env, "database": db.where,
            "pending": [m.id for m in found.pending], "statements": statements,
            "drift": found.drift, "problems": problems,
        }  # fmt: skip
    finally:
        db.close()


# ---------------------------------------------------------------- run
def gate(found: Assessment, options: RunOptions, allow_unsafe: bool) -> list[Finding]:
    """Refuse drift, data-destroying statements and (unless allowed) unsafe ones."""
    from opsctl.migrate.lint import lint_migrations

    blocking = found.blocking_drift(options.out_of_order)
    if blocking:
        first = blocking[0]
        more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
        hint = ("restore the applied file (a change is a new migration)" if first["kind"] == "edited"
                else "fix the folder, or pass --out-of-order to apply it anyway"
                if first["kind"] in ("out_of_order", "gap") else "see 'opsctl db migrate status'")  # fmt: skip
        raise RefusedError(f"drift: {first['id']}: {first['reason']}{more}", hint)
    findings = lint_migrations(found.pending)
    forbidden = [f for f in findings if f.severity == "forbidden"]
    unsafe = [f for f in findings if f.severity == "unsafe"]
    if forbidden:
        f = forbidden[0]
        raise RefusedError(
            f"{f.file}:{f.line}: {f.rule}: {f.message} — migrations are forward-only; nothing was applied"
            + (f" ({len(forbidden) - 1} more forbidden)" if len(forbidden) > 1 else ""),
            f.recipe,
        )
    if unsafe and not allow_unsafe:
        f = unsafe[0]
        raise RefusedError(
            f"{f.file}:{f.line}: {f.rule}: {f.message}"
            + (f" ({len(unsafe) - 1} more unsafe)" if len(unsafe) > 1 else ""),
            f"{f.recipe}; or pass --allow-unsafe after reading 'opsctl db migrate lint'",
        )
    return findings


def run(ctx: Context, service: str, options: RunOptions) -> RunResult:
    target = resolve(ctx, service, options.directory)
    assert target.folder is not None
    folder = load_folder(target.folder)
    policy = ctx.settings.policy.migrate
    db = open_database(ctx, target.service, command="migrate run")
    op = Operation(
        KIND, target.service,
        {"folder": str(target.folder), "allow_unsafe": options.allow_unsafe, "out_of_order": options.out_of_order},
        lock="migrate", confirm=f"apply the pending migrations of {target.name}", env=target.env,
        resume_hint=f"'opsctl db migrate run {target.name}' resumes: applied files and segments are recorded",
        supersede=True,
    )  # fmt: skip
    try:
        return execute(ctx, op, lambda r: plan(ctx, target, folder, db, r, options, policy.allow_unsafe))
    finally:
        db.unlock()
        db.close()


def plan(
    ctx: Context, target: Target, folder: Folder, db: Database, run: Run, options: RunOptions, policy_unsafe: bool
) -> list[Step]:
    if not run.dry:
        db.lock()
    found = assess(db, folder)
    findings = gate(found, options, options.allow_unsafe or policy_unsafe)
    for f in findings:
        if f.severity == "unsafe":
            run.note(f"applying despite {f.rule} at {f.file}:{f.line} (--allow-unsafe)")
    timeouts = Timeouts.of(ctx.settings.policy.migrate)
    if folder.drizzle and not run.dry:
        history.ensure_drizzle(db)
    if not run.dry:
        history.ensure(db)
    steps: list[Step] = []
    for m in found.pending:
        done = found.applied[m.id].segments_done if m.id in found.applied else 0
        detail = describe_segments(m, db, timeouts)
        steps.append(
            Step(
                f"apply {m.id}", "apply migration", m.display,
                detail=[{k: d[k] for k in ("line", "lock", "transaction", "sql")} for d in detail],
                apply=partial(apply_file, db, folder, m, timeouts, done),
                undo="none: migrations are forward-only",
            )
        )  # fmt: skip
    if not steps:
        run.note("nothing to apply: every migration is applied")
    return steps


def apply_file(db: Database, folder: Folder, m: Migration, timeouts: Timeouts, skip: int, run: Run) -> dict[str, Any]:
    import psycopg

    from opsctl.operations.audit import current_user

    segments = segments_of(m)
    run.progress.update(done=skip, total=len(segments), status=m.display)
    started = time.monotonic()
    for n, seg in enumerate(segments):
        if n < skip:
            continue
        run.checkpoint()
        t0 = time.monotonic()
        last = n == len(segments) - 1

        def record(n: int = n, t0: float = t0, last: bool = last) -> None:
            history.record_segment(
                db, m, done=n + 1, total=len(segments), user=current_user(),
                duration_ms=int((time.monotonic() - t0) * 1000), run_id=None if run.dry else run.id,
            )  # fmt: skip
            if last and folder.drizzle:
                history.record_drizzle(db, m)

        what = f"{m.display}:{seg.statements[0][0].line}"
        try:
            if seg.transaction:
                with_retries(db, partial(_in_transaction, db, seg, timeouts, record),
                             timeouts=timeouts, what=what, sleep=run.sleep, on_retry=run.progress.note)  # fmt: skip
            else:
                _drop_invalid(db, seg)
                with_retries(db, partial(_concurrently, db, seg, timeouts), timeouts=timeouts, what=what,
                             sleep=run.sleep, on_retry=run.progress.note,
                             before_retry=partial(_drop_invalid, db, seg))  # fmt: skip
                with db.transaction():
                    record()
        except psycopg.Error as exc:
            raise statement_failed(exc, m, seg, n) from None
        run.progress.update(done=n + 1)
    return {"file": m.display, "segments": len(segments), "seconds": round(time.monotonic() - started, 3)}


def statement_failed(exc: Exception, m: Migration, seg: Segment, n: int) -> FailedError:
    """A statement PostgreSQL rejected: which one, why, and what is applied of the file."""
    line = seg.current or seg.statements[0][0].line
    kept = f"the first {n} segment(s) of the file stay applied (recorded)" if n else "nothing of the file was applied"
    if seg.transaction:
        where = "its transaction was rolled back"
    else:
        where = "the CONCURRENTLY statement failed (an INVALID index it left is dropped before the next try)"
    return FailedError(
        f"{m.display}:{line}: {first_line(exc)}", f"{where}; {kept}; fix it in a new migration or the DB, then rerun"
    )


def _in_transaction(db: Database, seg: Segment, timeouts: Timeouts, record: Callable[[], None]) -> None:
    with db.transaction() as conn:
        conn.execute(f"SET LOCAL lock_timeout = {int(timeouts.lock_ms)}")
        conn.execute(f"SET LOCAL statement_timeout = {int(timeouts.statement_ms)}")
        for st, _ in seg.statements:
            seg.current = st.line
            conn.execute(st.sql.encode())
        record()


def _concurrently(db: Database, seg: Segment, timeouts: Timeouts) -> None:
    conn = db.conn
    conn.execute(f"SET lock_timeout = {int(timeouts.lock_ms)}")
    conn.execute("SET statement_timeout = 0")
    try:
        for st, _ in seg.statements:
            seg.current = st.line
            conn.execute(st.sql.encode())
    finally:
        if not conn.closed:
            conn.execute("RESET lock_timeout")
            conn.execute("RESET statement_timeout")


def _drop_invalid(db: Database, seg: Segment) -> None:
    """A CREATE INDEX CONCURRENTLY that failed leaves an INVALID index: drop it before (re)building."""
    from psycopg import sql

    for _, eff in seg.statements:
        if not eff.index:
            continue
        name = f"{eff.index_schema}.{eff.index}" if eff.index_schema else eff.index
        invalid = db.value(
            "SELECT NOT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)", (sql_quote_name(name),)
        )
        if invalid:
            ident = sql.Identifier(eff.index_schema, eff.index) if eff.index_schema else sql.Identifier(eff.index)
            db.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(ident))


def sql_quote_name(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def refuse_without_folder(target: Target) -> None:
    if target.folder is None:
        raise UsageError(f"service {target.name} has no migrations folder", "set database.migrations or pass --dir")
