"""A column change in four phases, each an operation on the runner (plan, lock, audit, signals):

1. ``expand`` — add the column, nullable, no default (a catalog-only change under lock_timeout).
2. ``dual-write`` — a trigger fills the column from the row on INSERT and UPDATE, so the previous
   application version (which does not know the column) and the new one run side by side.
3. ``backfill`` — batches by primary key, each its own short transaction, the cursor committed
   with the batch in the database: a killed run resumes exactly where it stopped.
4. ``contract`` — the constraints without long locks: CHECK … NOT VALID then VALIDATE, SET NOT
   NULL on the validated check, UNIQUE through an index built CONCURRENTLY, foreign keys NOT VALID
   then VALIDATE.  Refused while rows are still unbackfilled.  The old column is never dropped.

Where a change stands is read from the database itself (column, trigger, cursor, constraints)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.errors import FailedError, RefusedError, UsageError
from opsctl.migrate.db import Database, Timeouts, first_line, open_database, with_retries
from opsctl.migrate.target import Target, changes_dir, resolve
from opsctl.operations.model import Operation, RunResult, Step
from opsctl.operations.runner import execute

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.migrate.change import Change
    from opsctl.operations.run import Run

PHASES = ("none", "expand", "dual-write", "backfill", "contract")
NEXT = {"none": "expand", "expand": "dual-write", "dual-write": "backfill", "backfill": "contract", "contract": "-"}
STATE_TABLE = "opsctl_migrations.changes"


# ---------------------------------------------------------------- finding the change
def find_change(ctx: Context, target: Target, name: str) -> Change:
    from opsctl.migrate.change import load_change

    path = Path(name).expanduser()
    if not path.is_file():
        folder = changes_dir(ctx, target)
        candidates = [folder / f"{name}{ext}" for ext in ("", ".yaml", ".yml")] if folder is not None else []
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            where = f" or in {folder}" if folder is not None else ""
            raise UsageError(f"no change file {name!r} here{where}", "pass the path of the change's YAML file")
        path = found
    return load_change(path)


def _ident(change: Change) -> str:
    return f"{change.schema}.{change.table}.{change.column}"


def ensure_state(db: Database) -> None:
    db.conn.execute("CREATE SCHEMA IF NOT EXISTS opsctl_migrations")
    db.conn.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (change_id text PRIMARY KEY, schema_name text NOT NULL,"
        " table_name text NOT NULL, column_name text NOT NULL, phase text NOT NULL,"
        " dual_write_xid bigint, updated_at timestamptz NOT NULL DEFAULT now())"
    )


def _mark(db: Database, change: Change, phase: str, *, xid: bool = False) -> None:
    ensure_state(db)
    db.conn.execute(
        f"INSERT INTO {STATE_TABLE} (change_id, schema_name, table_name, column_name, phase, dual_write_xid)"
        " VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN pg_current_xact_id()::text::bigint END)"
        " ON CONFLICT (change_id) DO UPDATE SET phase = EXCLUDED.phase, updated_at = now(),"
        f" dual_write_xid = coalesce(EXCLUDED.dual_write_xid, {STATE_TABLE}.dual_write_xid)",
        (change.id, change.schema, change.table, change.column, phase, xid),
    )


# ---------------------------------------------------------------- reading where it stands
def _table_exists(db: Database, change: Change) -> bool:
    return bool(db.value("SELECT to_regclass(%s) IS NOT NULL", (_regclass(change),)))


def _regclass(change: Change) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in (change.schema, change.table))


def column_type(db: Database, change: Change) -> str | None:
    row = db.rows(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (_regclass(change), change.column),
    )
    return str(row[0][0]) if row else None


def has_trigger(db: Database, change: Change) -> bool:
    return bool(
        db.value(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s"
            " AND tgenabled <> 'D')",
            (_regclass(change), change.trigger_name),
        )
    )


def contract_done(db: Database, change: Change) -> list[tuple[str, bool]]:
    from opsctl.migrate.change import contract_statements

    return [(s.name, bool(db.value(s.done_query))) for s in contract_statements(change)]


def where(db: Database, change: Change) -> dict[str, Any]:
    from opsctl.migrate import backfill as bf

    out: dict[str, Any] = {
        "id": change.id, "table": f"{change.schema}.{change.table}", "column": change.column, "type": change.type,
        "phase": "none", "backfilled": 0, "remaining": None, "trigger": False, "constraints": [],
    }  # fmt: skip
    if not _table_exists(db, change) or column_type(db, change) is None:
        out["next"] = NEXT["none"]
        return out
    out["phase"] = "expand"
    out["trigger"] = has_trigger(db, change)
    if out["trigger"]:
        out["phase"] = "dual-write"
    state = (
        bf.state(db.conn, change) if db.value("SELECT to_regclass('opsctl_migrations.backfill') IS NOT NULL") else None
    )
    out["backfilled"] = int(state["rows_done"]) if state else 0
    out["remaining"] = bf.remaining(db.conn, change)
    if state and state.get("finished_at") and out["remaining"] == 0 and out["trigger"]:
        out["phase"] = "backfill"
    done = contract_done(db, change)
    out["constraints"] = [{"step": n, "done": d} for n, d in done]
    if done and all(d for _, d in done) and out["phase"] == "backfill":
        out["phase"] = "contract"
    out["next"] = NEXT[out["phase"]]
    return out


def change_status(ctx: Context, target: Target, db: Database) -> list[dict[str, Any]]:
    folder = changes_dir(ctx, target)
    if folder is None or not folder.is_dir():
        return []
    from opsctl.migrate.change import load_change

    out: list[dict[str, Any]] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])[:200]:
        try:
            out.append(where(db, load_change(path)))
        except UsageError as exc:
            out.append({"id": path.stem, "table": None, "column": None, "phase": "invalid", "backfilled": 0,
                        "remaining": None, "next": "-", "error": exc.message})  # fmt: skip
    return out


# ---------------------------------------------------------------- running a phase
def _phase(
    ctx: Context, service: str, name: str, directory: Path | None, kind: str, build: Any, **params: Any
) -> RunResult:
    target = resolve(ctx, service, directory, need_folder=False)
    change = find_change(ctx, target, name)
    db = open_database(ctx, target.service, command=kind.removeprefix("db "))
    op = Operation(
        kind, target.service, {"change": change.id, "file": str(change.source), **params}, lock="migrate",
        confirm=f"{kind.removeprefix('db migrate ')} {_ident(change)} on {target.name}", env=target.env,
        resume_hint=f"rerun 'opsctl {kind} {target.name} {name}': every phase resumes from the database's state",
        supersede=True,
    )  # fmt: skip
    try:
        return execute(ctx, op, lambda run: build(ctx, target, change, db, run))
    finally:
        db.close()


def _sql_text(db: Database, composed: Any) -> str:
    return str(composed.as_string(db.conn))


def _ddl(db: Database, timeouts: Timeouts, statements: list[Any], what: str, run: Run, after: Any = None) -> None:
    """Statements in one transaction under lock_timeout, retried (bounded) naming the blocker."""
    import psycopg

    def attempt() -> None:
        with db.transaction() as conn:
            conn.execute(f"SET LOCAL lock_timeout = {timeouts.lock_ms}")
            conn.execute(f"SET LOCAL statement_timeout = {timeouts.statement_ms}")
            for statement in statements:
                conn.execute(statement)
            if after is not None:
                after()

    try:
        with_retries(db, attempt, timeouts=timeouts, what=what, sleep=run.sleep, on_retry=run.progress.note)
    except psycopg.Error as exc:
        raise FailedError(f"{what}: {first_line(exc)}", "the transaction was rolled back; nothing changed") from None


def _need_table(db: Database, change: Change) -> None:
    if not _table_exists(db, change):
        raise RefusedError(f"table {change.schema}.{change.table} does not exist", f"check 'table' in {change.source}")


def _need_column(db: Database, change: Change, phase: str) -> None:
    _need_table(db, change)
    if column_type(db, change) is None:
        raise RefusedError(
            f"{_ident(change)} does not exist yet",
            f"run 'opsctl db migrate expand' first (phase 1) before {phase}",
        )


# phase 1 -------------------------------------------------------------
def expand(ctx: Context, service: str, name: str, directory: Path | None = None) -> RunResult:
    return _phase(ctx, service, name, directory, "db migrate expand", _expand_plan)


def _expand_plan(ctx: Context, target: Target, change: Change, db: Database, run: Run) -> list[Step]:
    from opsctl.migrate.change import expand_sql

    _need_table(db, change)
    existing = column_type(db, change)
    statement = expand_sql(change)
    if existing is not None:
        wanted = db.value("SELECT format_type(%s::regtype, NULL)", (change.type,))
        if existing.split("(")[0] != str(wanted).split("(")[0]:
            raise RefusedError(f"{_ident(change)} already exists as {existing}, not {change.type}",
                               "a change never alters an existing column: name a new one")  # fmt: skip
        run.note(f"{_ident(change)} already exists ({existing}): nothing to add")
        return []
    timeouts = Timeouts.of(ctx.settings.policy.migrate)
    return [
        Step(
            "add column", "ALTER TABLE (ACCESS EXCLUSIVE, catalog only)", _ident(change),
            detail=_sql_text(db, statement),
            apply=lambda r: _ddl(db, timeouts, [statement], f"add {_ident(change)}", r,
                                 after=partial(_mark, db, change, "expand")),
            undo="none: a column is never dropped by opsctl (forward-only)",
        )
    ]  # fmt: skip


# phase 2 -------------------------------------------------------------
def dual_write(ctx: Context, service: str, name: str, directory: Path | None = None) -> RunResult:
    return _phase(ctx, service, name, directory, "db migrate dual-write", _dual_write_plan)


def _dual_write_plan(ctx: Context, target: Target, change: Change, db: Database, run: Run) -> list[Step]:
    from opsctl.migrate.change import drop_dual_write_sql, dual_write_sql

    _need_column(db, change, "dual-write")
    probe(ctx, db, change)
    statements = dual_write_sql(change)
    timeouts = Timeouts.of(ctx.settings.policy.migrate)
    undo = drop_dual_write_sql(change)
    return [
        Step(
            "dual-write trigger", "CREATE FUNCTION + TRIGGER (SHARE ROW EXCLUSIVE)", _ident(change),
            detail=[_sql_text(db, s) for s in statements],
            apply=lambda r: _ddl(db, timeouts, statements, f"dual-write trigger on {change.table}", r,
                                 after=partial(_mark, db, change, "dual-write", xid=True)),
            compensate=lambda r: _ddl(db, timeouts, undo, f"drop the dual-write trigger on {change.table}", r),
            undo="drop the trigger and its function",
        )
    ]  # fmt: skip


def probe(ctx: Context, db: Database, change: Change) -> None:
    """Before a trigger runs the expression on every write of the live application: plan the
    assignment (an unknown column or function, a type that cannot be assigned, fails here), then
    evaluate it over a sample of real rows (a runtime error — a bad cast, a division by zero —
    fails here rather than in the application's INSERTs).  Read-only, under lock_timeout."""
    import psycopg
    from psycopg import sql

    from opsctl.migrate.change import probe_sql

    timeouts = Timeouts.of(ctx.settings.policy.migrate)
    sample = sql.SQL("SELECT count(v) FROM (SELECT ({expr})::{type} AS v FROM {tbl} LIMIT 1000) AS sample").format(
        expr=sql.SQL(change.backfill), type=sql.SQL(change.type), tbl=sql.Identifier(change.schema, change.table)
    )
    try:
        with db.transaction() as conn:
            conn.execute(f"SET LOCAL lock_timeout = {timeouts.lock_ms}")
            conn.execute("SET LOCAL statement_timeout = 30000")
            conn.execute(probe_sql(change))
            conn.execute(sample)
            raise psycopg.Rollback()  # nothing to keep
    except psycopg.errors.LockNotAvailable:
        return  # a busy table: the trigger's own statement waits and retries under lock_timeout
    except psycopg.Error as exc:
        raise RefusedError(
            f"the backfill expression fails on {change.schema}.{change.table}: {first_line(exc)}",
            f"fix 'backfill' in {change.source}: as a trigger it would fail every write of the application",
        ) from None


def verify_dual_write(ctx: Context, service: str, name: str, directory: Path | None = None) -> dict[str, Any]:
    """Rows written since the trigger was installed (xmin newer than the install transaction)
    have the column filled; a probe UPDATE (rolled back) recomputes it."""
    target = resolve(ctx, service, directory, need_folder=False)
    change = find_change(ctx, target, name)
    db = open_database(ctx, target.service, command="migrate verify")
    try:
        _need_column(db, change, "dual-write --verify")
        if not has_trigger(db, change):
            return {"ok": False, "change": change.id, "message": f"no dual-write trigger on {change.table}",
                    "unpopulated_since": None}  # fmt: skip
        ensure_state(db)
        xid = db.value(f"SELECT dual_write_xid FROM {STATE_TABLE} WHERE change_id = %s", (change.id,))
        written, missing = (0, 0) if xid is None else db.rows(_written_since(change), (int(xid),))[0]
        ok = missing == 0
        message = (
            f"{written} row(s) written since the trigger was installed, all with {change.column} set"
            if ok else f"{missing} of {written} row(s) written since the trigger was installed have {change.column} NULL"
        )  # fmt: skip
        return {"ok": ok, "change": change.id, "written_since": written, "unpopulated_since": missing,
                "message": message}  # fmt: skip
    finally:
        db.close()


def _written_since(change: Change) -> Any:
    """Rows whose current version was written by a transaction newer than the trigger's install
    (32-bit xmin against the install xid: exact unless the xid counter wrapped since)."""
    from psycopg import sql

    return sql.SQL(
        "SELECT count(*), count(*) FILTER (WHERE {col} IS NULL) FROM {tbl}"
        " WHERE xmin::text::bigint >= (%s %% 4294967296) AND xmin::text::bigint >= 3"
    ).format(col=sql.Identifier(change.column), tbl=sql.Identifier(change.schema, change.table))


# phase 3 -------------------------------------------------------------
def backfill(
    ctx: Context,
    service: str,
    name: str,
    directory: Path | None = None,
    *,
    batch_size: int | None = None,
    max_rate: float | None = None,
) -> RunResult:
    return _phase(
        ctx, service, name, directory, "db migrate backfill",
        partial(_backfill_plan, batch_size=batch_size, max_rate=max_rate),
        batch_size=batch_size, max_rate=max_rate,
    )  # fmt: skip


def _backfill_plan(
    ctx: Context, target: Target, change: Change, db: Database, run: Run, *, batch_size: int | None,
    max_rate: float | None,
) -> list[Step]:  # fmt: skip
    from opsctl.migrate import backfill as bf
    from opsctl.migrate.change import primary_key

    _need_column(db, change, "backfill")
    if not has_trigger(db, change):
        raise RefusedError(
            f"no dual-write trigger on {change.table}: rows the application writes during the backfill would stay NULL",
            f"run 'opsctl db migrate dual-write {target.name} {change.id}' first (phase 2)",
        )
    key = primary_key(db.conn, change)
    policy = ctx.settings.policy.migrate
    options = bf.Options(
        batch_size=batch_size or policy.batch_size,
        target_batch_seconds=policy.batch_target.total_seconds(),
        max_rate=max_rate if max_rate is not None else policy.max_rate,
        lock_timeout_ms=int(policy.lock_timeout.total_seconds() * 1000),
        retries=policy.retries,
        max_replica_lag_seconds=policy.max_replica_lag.total_seconds(),
    )
    remaining = bf.remaining(db.conn, change)
    lag = replica_lag(ctx, target, db)
    detail = {
        "batch": f"WHERE ({', '.join(key)}) > cursor ORDER BY {', '.join(key)} LIMIT n; "
        f"SET {change.column} = {change.backfill} WHERE {change.column} IS NULL",
        "rows_to_fill": remaining, "first_batch": options.batch_size, "target_batch_ms": int(options.target_batch_seconds * 1000),
        "max_rate": options.max_rate, "replica_lag_limit_s": options.max_replica_lag_seconds if lag else None,
    }  # fmt: skip

    def apply(r: Run) -> dict[str, Any]:
        bf.ensure_state_table(db.conn)
        r.progress.phase("backfill", total=remaining, unit="rows")

        def progress(p: Any) -> None:
            r.progress.update(done=p.done_rows, total=max(remaining, p.done_rows),
                              status=f"batch {p.batch_size}, {p.rate:.0f} rows/s")  # fmt: skip
            if p.batches % 20 == 0:
                r.save(cursor=p.cursor, done_rows=p.done_rows)

        final = bf.run_backfill(
            db.connect, change, options, on_progress=progress, checkpoint=r.checkpoint, sleep=r.sleep,
            replica_lag=lag, on_retry=r.progress.note,
        )  # fmt: skip
        _mark(db, change, "backfill")
        left = bf.remaining(db.conn, change)
        if left:
            raise FailedError(f"{left} row(s) of {change.table} still have {change.column} NULL after the backfill",
                              "is the dual-write trigger enabled? rerun the backfill")  # fmt: skip
        return {"rows": final.done_rows, "batches": final.batches}

    return [Step("backfill", "batched UPDATE by primary key", _ident(change), detail=detail, apply=apply,
                 undo="none needed: the column is new; a rerun resumes from the committed cursor")]  # fmt: skip


_STANDBY_LAG = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL"
    " WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0"
    " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)


def replica_lag(ctx: Context, target: Target, db: Database) -> Any:
    """How far the replica is behind, in seconds: read on the replica itself when
    ``database.replica_dsn`` is set (WAL received but not replayed: the age of the last replayed
    transaction), else on the primary from ``pg_stat_replication`` when ``database.replica`` is
    set; None (no throttle) without either.  A replica that cannot be read counts as lagging."""
    config = target.service.database
    if config is None or not (config.replica or config.replica_dsn):
        return None
    if config.replica_dsn is None:
        return lambda: _value(db, "SELECT extract(epoch FROM max(replay_lag)) FROM pg_stat_replication")
    replica = Database((ctx.resolve(config.replica_dsn) or "").strip(), command="migrate lag")

    def lag() -> float | None:
        try:
            return _value(replica, _STANDBY_LAG)
        except Exception as exc:  # unreachable replica: wait, do not pile WAL on it
            replica.close()
            ctx.output.warn(f"cannot read the replica's lag ({first_line(exc)}); waiting")
            return float("inf")

    return lag


def _value(db: Database, query: str) -> float | None:
    value = db.value(query)
    return None if value is None else float(value)


# phase 4 -------------------------------------------------------------
def contract(ctx: Context, service: str, name: str, directory: Path | None = None) -> RunResult:
    return _phase(ctx, service, name, directory, "db migrate contract", _contract_plan)


def _contract_plan(ctx: Context, target: Target, change: Change, db: Database, run: Run) -> list[Step]:
    from opsctl.migrate import backfill as bf
    from opsctl.migrate.change import contract_statements

    _need_column(db, change, "contract")
    left = bf.remaining(db.conn, change)
    if left:
        raise RefusedError(
            f"{left} row(s) of {change.schema}.{change.table} still have {change.column} NULL",
            f"finish the backfill first: 'opsctl db migrate backfill {target.name} {change.id}'",
        )
    timeouts = Timeouts.of(ctx.settings.policy.migrate)
    steps: list[Step] = []
    prefix = True  # steps already done at the start are skipped; a later step's "done" can depend on
    # an earlier one (the helper check is "dropped" before it was ever added), so from the first step
    # still to do, each step checks again when it is applied
    for item in contract_statements(change):
        if prefix and db.value(item.done_query):
            run.note(f"{item.name}: already done")
            continue
        prefix = False
        steps.append(
            Step(item.name, f"{'CONCURRENTLY, ' if item.concurrently else ''}{item.lock}", _ident(change),
                 detail=_sql_text(db, item.sql),
                 apply=partial(_contract_step, db, change, item, timeouts),
                 undo="none: the constraint stays (a later step or rerun completes it)")
        )  # fmt: skip
    if steps:
        steps[-1].apply = partial(_last, steps[-1].apply, db, change)
    return steps


def _contract_step(db: Database, change: Change, item: Any, timeouts: Timeouts, run: Run) -> None:
    import psycopg

    from opsctl.migrate.change import drop_index_concurrently_sql, invalid_index_query

    if db.value(item.done_query):
        return
    if not item.concurrently:
        _ddl(db, timeouts, [item.sql], item.name, run)
        return
    index = getattr(item, "index", None)

    def clean() -> None:
        if index and db.value(invalid_index_query(change, index)):
            db.conn.execute(drop_index_concurrently_sql(change, index))

    def attempt() -> None:
        conn = db.conn
        conn.execute(f"SET lock_timeout = {timeouts.lock_ms}")
        conn.execute("SET statement_timeout = 0")
        try:
            conn.execute(item.sql)
        finally:
            if not conn.closed:
                conn.execute("RESET lock_timeout")
                conn.execute("RESET statement_timeout")

    clean()
    try:
        with_retries(db, attempt, timeouts=timeouts, what=item.name, sleep=run.sleep, on_retry=run.progress.note,
                     before_retry=clean)  # fmt: skip
    except psycopg.Error as exc:
        raise FailedError(f"{item.name}: {first_line(exc)}",
                          "an INVALID index left behind is dropped before the next try; fix the data, then rerun") from None  # fmt: skip


def _last(apply: Any, db: Database, change: Change, run: Run) -> Any:
    value = apply(run)
    _mark(db, change, "contract")
    return value
