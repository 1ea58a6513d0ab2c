"""The rule catalogue of the migration linter and its checks, one small function per statement type.

Every check reads pglast's AST (dispatch on the node's class name, enums compared by member name) and
reports ``(rule, message)`` pairs into a :class:`Verdict`.  :func:`check` is the entry point; the
driver (``lint.py``) owns files, lines, suppression comments and :class:`~opsctl.migrate.lint.Finding`.

"Existing" table: any table not created earlier in the same file — opsctl runs each file in its own
transaction, so a table made by an earlier file has rows and readers by the time a later file runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

FORBIDDEN, UNSAFE, ADVICE = "forbidden", "unsafe", "advice"
_AX = "takes an ACCESS EXCLUSIVE lock"
_ONLINE_INDEX = "CREATE [UNIQUE] INDEX CONCURRENTLY in its own migration (opsctl runs it outside a transaction)"

# rule id -> (severity, why it hurts, the safe way)
RULES: dict[str, tuple[str, str, str]] = {
    "syntax-error": (FORBIDDEN, "PostgreSQL rejects the statement, so the whole migration fails.",
                     "Fix the SQL at the reported line; try the file on a scratch database."),
    "drop-table": (FORBIDDEN, "Deletes the table and every row in it; running code that still reads it breaks.",
                   "Stop all reads and writes (deploy) and leave the table: migrations never destroy data; "
                   "removing it is a reviewed DBA task after a verified backup, not a deploy step."),
    "drop-column": (FORBIDDEN, f"Deletes the column's data and {_AX}; code that still selects it breaks.",
                    "Deploy code that no longer reads or writes the column and leave it (nullable): migrations never "
                    "destroy data; removing it is a reviewed DBA task after a verified backup."),
    "drop-schema": (FORBIDDEN, "Deletes the schema and (with CASCADE) every table, view and function in it.",
                    "Drop the objects one by one in reviewed migrations; never drop a schema in a deploy."),
    "drop-database": (FORBIDDEN, "Deletes a whole database.", "Not a migration: do it by hand, after a backup."),
    "truncate": (FORBIDDEN, f"Deletes every row and {_AX}.",
                 "Delete the rows you mean in batches (DELETE … WHERE id BETWEEN …) outside the schema migration."),
    "delete-without-where": (FORBIDDEN, "Deletes every row of the table and holds row locks on all of them.",
                             "Add a WHERE clause; delete large sets in batches outside the schema migration."),
    # unsafe rather than forbidden: a full-table UPDATE is usually an intended backfill, not data loss; the
    # harm is locking: it rewrites every row in one transaction, blocking writers and bloating the table.
    "update-without-where": (UNSAFE, "Rewrites every row in one transaction: row locks on the whole table block "
                             "writers until commit, and the table doubles in size until vacuum.",
                             "Backfill in batches (UPDATE … WHERE id BETWEEN x AND y), each committed on its own, "
                             "outside the schema migration."),
    "set-not-null": (UNSAFE, f"Scans the whole table to check for NULLs while it {_AX}: reads and writes stop.",
                     "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c in a separate "
                     "migration; then SET NOT NULL (PostgreSQL 12+ skips the scan); then DROP CONSTRAINT c."),
    "constraint-not-valid-missing": (UNSAFE, "Validating the constraint scans the whole table (and for a foreign "
                                     "key the referenced one) while the ALTER holds its lock: writes stop (reads too, for CHECK).",
                                     "ADD CONSTRAINT … NOT VALID (instant), then VALIDATE CONSTRAINT in a separate "
                                     "migration (takes only SHARE UPDATE EXCLUSIVE)."),
    "unique-constraint": (UNSAFE, f"Builds a unique index while the ALTER {_AX}: reads and writes stop.",
                          f"{_ONLINE_INDEX}, then ALTER TABLE … ADD CONSTRAINT c UNIQUE USING INDEX idx."),
    "add-primary-key": (UNSAFE, f"Builds a unique index and checks NOT NULL on every row while it {_AX}.",
                        f"{_ONLINE_INDEX}; make the columns NOT NULL the safe way (see set-not-null); then "
                        "ALTER TABLE … ADD CONSTRAINT pk PRIMARY KEY USING INDEX idx."),
    "index-not-concurrently": (UNSAFE, "CREATE INDEX without CONCURRENTLY blocks every write to the table "
                               "(SHARE lock) for the whole build.", _ONLINE_INDEX + "."),
    "drop-index-not-concurrently": (UNSAFE, f"DROP INDEX without CONCURRENTLY {_AX} on the table.",
                                    "DROP INDEX CONCURRENTLY in its own migration (outside a transaction)."),
    "reindex-not-concurrently": (UNSAFE, "REINDEX without CONCURRENTLY blocks writes to the table (and reads "
                                 "through that index) for the whole rebuild.",
                                 "REINDEX … CONCURRENTLY in its own migration (outside a transaction)."),
    "column-type-change": (UNSAFE, f"Usually rewrites the table and its indexes while it {_AX}; code that "
                           "reads the old type may break.",
                           "Add a new column, dual-write, backfill in batches, switch reads, then drop the old "
                           "column (expand, dual-write, backfill, contract)."),
    "rename-column": (UNSAFE, "Running code still uses the old name and fails the moment the migration commits.",
                      "Add the new column, dual-write and backfill, switch reads, drop the old one later — or "
                      "deploy code that handles both names first."),
    "rename-table": (UNSAFE, "Running code still uses the old name and fails the moment the migration commits.",
                     "Create the new table (or a view under the old name), move readers and writers, drop the old "
                     "name in a later migration."),
    "volatile-default": (UNSAFE, f"A volatile DEFAULT is computed per row: PostgreSQL rewrites the table while it "
                         f"{_AX}.",
                         "Add the column without a default (or with a constant), SET DEFAULT for new rows, then "
                         "backfill existing rows in batches."),
    "stored-generated-column": (UNSAFE, f"A STORED generated column rewrites the whole table while it {_AX}.",
                                "Add a plain column, fill it with a trigger and a batched backfill — or use a "
                                "VIRTUAL generated column (PostgreSQL 18+)."),
    "not-null-without-default": (UNSAFE, "Fails on a table that has rows (they would be NULL): the deploy breaks "
                                 "in production although it passed on an empty dev database.",
                                 "ADD COLUMN … DEFAULT <constant> NOT NULL (instant on PostgreSQL 11+), or add it "
                                 "nullable, backfill, then SET NOT NULL the safe way."),
    "validate-same-transaction": (UNSAFE, "NOT VALID and VALIDATE in one file run in one transaction: the "
                                  "ADD CONSTRAINT's lock (ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE) is held through "
                                  "the whole validation scan, which is what NOT VALID was meant to avoid.",
                                  "Move VALIDATE CONSTRAINT to the next migration file."),
    "concurrently-in-transaction": (UNSAFE, "CONCURRENTLY cannot run inside a transaction block: with an explicit "
                                    "BEGIN/COMMIT in the file the statement fails.",
                                    "Remove BEGIN/COMMIT and put the CONCURRENTLY statement in its own migration."),
    "explicit-transaction": (UNSAFE, "opsctl runs each migration in its own transaction; a COMMIT inside the file "
                             "ends it early (later statements run unprotected and a failure leaves the schema half "
                             "migrated) and BEGIN only warns.",
                             "Remove BEGIN/COMMIT/ROLLBACK; split the work into several migration files instead."),
    "vacuum-full": (UNSAFE, f"VACUUM FULL rewrites the table while it {_AX}, and cannot run in a transaction.",
                    "Plain VACUUM (or pg_repack) outside the migration."),
    "cluster": (UNSAFE, f"CLUSTER rewrites the table while it {_AX}.",
                "pg_repack, or accept the current order; never in a deploy migration."),
    "add-serial-column": (UNSAFE, f"A serial or identity column fills every existing row: the table is rewritten "
                          f"while the ALTER {_AX}.",
                          "Add a nullable bigint column, create the sequence and SET DEFAULT nextval(…), backfill "
                          "existing rows in batches, then make it NOT NULL the safe way."),
    "missing-lock-timeout": (ADVICE, "A DDL statement waiting for its lock (behind one long query) queues every "
                             "later query on the table behind it: a short lock becomes an outage. opsctl's runner "
                             "always sets lock_timeout itself; other tools (psql, drizzle-kit migrate) do not.",
                             "Start the file with SET lock_timeout = '3s' (or SET LOCAL) and retry on timeout."),
}  # fmt: skip

_SERIAL = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})
# Functions a DEFAULT may call without forcing a rewrite (stable or immutable: computed once by the ALTER).
_STABLE = frozenset({
    "now", "transaction_timestamp", "statement_timestamp", "current_setting", "timezone", "date_trunc",
    "to_timestamp", "make_date", "make_interval", "lower", "upper", "btrim", "concat", "to_jsonb",
    "jsonb_build_object", "jsonb_build_array", "json_build_object", "json_build_array", "array_fill",
})  # fmt: skip
_TX_KINDS = frozenset({"BEGIN", "START", "COMMIT", "ROLLBACK", "PREPARE", "COMMIT_PREPARED", "ROLLBACK_PREPARED"})
_WALK_BUDGET = 5000  # AST nodes examined per expression: hostile input cannot make a check slow


@dataclass
class History:
    """What earlier statements (of this file or an earlier one) proved, across one lint run."""

    not_valid_checks: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, constraint) -> column
    not_null_proven: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, column) -> constraint


@dataclass
class FileState:
    explicit_tx: bool = False  # the file has BEGIN/COMMIT/… somewhere
    new_tables: set[str] = field(default_factory=set)
    new_indexes: set[str] = field(default_factory=set)  # indexes on new tables
    new_schemas: set[str] = field(default_factory=set)
    not_valid_here: set[tuple[str, str]] = field(default_factory=set)  # (table, constraint) added NOT VALID
    lock_timeout: bool = False
    lock_advised: bool = False


@dataclass
class Verdict:
    hits: list[tuple[str, str]] = field(default_factory=list)
    locks: str = ""  # the existing table this statement locks against reads or writes ("" = none)
    concurrent: bool = False  # a CONCURRENTLY statement

    def hit(self, rule: str, message: str) -> None:
        self.hits.append((rule, message))


Check = Callable[[Any, History, FileState, Verdict], None]


def check(node: Any, history: History, state: FileState) -> list[tuple[str, str]]:
    """The ``(rule, message)`` pairs for one parsed statement, updating the file's and the run's state."""
    verdict = Verdict()
    fn = _CHECKS.get(type(node).__name__)
    if fn is not None:
        fn(node, history, state, verdict)
    if verdict.concurrent and state.explicit_tx:
        verdict.hit(
            "concurrently-in-transaction", "CONCURRENTLY in a file with BEGIN/COMMIT: fails in a transaction block"
        )
    if verdict.locks and not state.lock_timeout and not state.lock_advised:
        state.lock_advised = True
        verdict.hit("missing-lock-timeout", f"locks {verdict.locks} with no SET lock_timeout earlier in the file")
    return verdict.hits


def is_transaction_control(node: Any) -> bool:
    return type(node).__name__ == "TransactionStmt" and _tx_kind(node) in _TX_KINDS


# --- helpers ---------------------------------------------------------------------------------------


def _is(value: Any, name: str) -> bool:
    return getattr(value, "name", None) == name


def _key(schema: str | None, name: str) -> str:
    return f"{schema or 'public'}.{name}"


def _rel(rv: Any) -> tuple[str, str]:
    """(key, shown name) of a RangeVar."""
    shown = f"{rv.schemaname}.{rv.relname}" if rv.schemaname else rv.relname
    return _key(rv.schemaname, rv.relname), shown


def _obj(obj: Any) -> tuple[str, str]:
    """(key, shown name) of a DropStmt object: a list of String nodes or one."""
    parts = [p.sval for p in obj] if isinstance(obj, (list, tuple)) else [obj.sval]
    return _key(parts[-2] if len(parts) > 1 else None, parts[-1]), ".".join(parts)


def _sval(node: Any) -> str:
    return str(getattr(node, "sval", "") or "")


def _walk(node: Any) -> Iterator[Any]:
    """The AST nodes under ``node`` (itself included), iteratively; raises OverflowError past the budget."""
    from pglast.ast import Node

    stack, seen = [node], 0
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, Node):
            seen += 1
            if seen > _WALK_BUDGET:
                raise OverflowError
            yield item
            slots = getattr(type(item), "__slots__", ())
            stack.extend(v for v in (getattr(item, a, None) for a in slots) if v is not None)


def _option_on(options: Any, name: str) -> bool:
    for opt in options or ():
        if getattr(opt, "defname", None) == name:
            arg = opt.arg
            value = getattr(arg, "sval", getattr(arg, "boolval", getattr(arg, "ival", True)))
            return str(value).lower() not in ("false", "off", "0", "no")
    return False


def _tx_kind(node: Any) -> str:
    return str(getattr(node.kind, "name", "")).removeprefix("TRANS_STMT_")


# --- ALTER TABLE -----------------------------------------------------------------------------------


def _alter_table(node: Any, h: History, f: FileState, v: Verdict) -> None:
    if not _is(node.objtype, "OBJECT_TABLE") or node.relation is None:
        return
    key, shown = _rel(node.relation)
    new = key in f.new_tables
    for cmd in node.cmds or ():
        if _is(cmd.subtype, "AT_DetachPartition") and getattr(cmd.def_, "concurrent", False):
            v.concurrent = True
        _alter_cmd(cmd, key, shown, new, h, f, v)
    if not new and not v.concurrent:
        v.locks = shown


def _alter_cmd(cmd: Any, key: str, shown: str, new: bool, h: History, f: FileState, v: Verdict) -> None:
    kind, col = getattr(cmd.subtype, "name", ""), cmd.name
    if kind == "AT_AddConstraint":
        _add_constraint(cmd.def_, key, shown, new, h, f, v)
    elif kind == "AT_ValidateConstraint":
        if (key, col) in f.not_valid_here:
            v.hit("validate-same-transaction", f"validates {col} on {shown} in the file that added it NOT VALID")
        proven = h.not_valid_checks.pop((key, col), None)
        if proven is not None:
            h.not_null_proven[(key, proven)] = col
    elif kind == "AT_DropConstraint":
        for pair in [p for p, name in h.not_null_proven.items() if p[0] == key and name == col]:
            del h.not_null_proven[pair]
    elif new:
        return
    elif kind == "AT_AddColumn":
        _add_column(cmd.def_, shown, v)
    elif kind == "AT_SetNotNull" and (key, col) not in h.not_null_proven:
        v.hit("set-not-null", f"SET NOT NULL on {shown}.{col} without a validated CHECK ({col} IS NOT NULL)")
    elif kind == "AT_AlterColumnType":
        v.hit("column-type-change", f"changes the type of {shown}.{col}")
    elif kind == "AT_DropColumn":
        v.hit("drop-column", f"drops column {shown}.{col}")


def _not_null_column(con: Any) -> str | None:
    """The column of ``CHECK (col IS NOT NULL)`` or of a NOT NULL table constraint."""
    if _is(con.contype, "CONSTR_NOTNULL") and con.keys:
        return _sval(con.keys[0]) or None
    expr = con.raw_expr
    if _is(con.contype, "CONSTR_CHECK") and type(expr).__name__ == "NullTest" and _is(expr.nulltesttype, "IS_NOT_NULL"):
        arg = expr.arg
        if type(arg).__name__ == "ColumnRef" and arg.fields:
            return _sval(arg.fields[-1]) or None
    return None


def _constraint_name(con: Any, table: str, column: str | None) -> str | None:
    """The name PostgreSQL gives the constraint (its own, or the generated ``t_col_check``/``t_col_fkey``)."""
    if con.conname:
        return str(con.conname)
    relname = table.split(".", 1)[1]
    if _is(con.contype, "CONSTR_FOREIGN") and con.fk_attrs:
        return f"{relname}_{'_'.join(_sval(a) for a in con.fk_attrs)}_fkey"
    suffix = "not_null" if _is(con.contype, "CONSTR_NOTNULL") else "check"
    return f"{relname}_{column}_{suffix}" if column else None


def _add_constraint(con: Any, key: str, shown: str, new: bool, h: History, f: FileState, v: Verdict) -> None:
    kind = getattr(con.contype, "name", "")
    column = _not_null_column(con)
    name = _constraint_name(con, key, column)
    label = name or kind.removeprefix("CONSTR_").lower()
    if kind in ("CONSTR_CHECK", "CONSTR_FOREIGN", "CONSTR_NOTNULL"):
        if con.skip_validation:
            if not new and name:
                f.not_valid_here.add((key, name))
                if column:
                    h.not_valid_checks[(key, name)] = column
            return
        if column and kind == "CONSTR_CHECK" and name:
            h.not_null_proven[(key, column)] = name
        if new:
            return
        if kind == "CONSTR_NOTNULL":
            if (key, column) not in h.not_null_proven:
                v.hit("set-not-null", f"adds NOT NULL on {shown}.{column} without a validated CHECK")
        else:
            what = "FOREIGN KEY" if kind == "CONSTR_FOREIGN" else "CHECK"
            v.hit("constraint-not-valid-missing", f"adds {what} constraint {label} on {shown} without NOT VALID")
    elif kind == "CONSTR_UNIQUE" and not con.indexname and not new:
        v.hit("unique-constraint", f"adds UNIQUE constraint {label} on {shown} without USING INDEX")
    elif kind == "CONSTR_PRIMARY" and not con.indexname and not new:
        v.hit("add-primary-key", f"adds a PRIMARY KEY to existing table {shown} without USING INDEX")


def _add_column(coldef: Any, shown: str, v: Verdict) -> None:
    col = f"{shown}.{coldef.colname}"
    cons = list(coldef.constraints or ())
    kinds = {getattr(c.contype, "name", "") for c in cons}
    type_names = [_sval(n) for n in getattr(coldef.typeName, "names", None) or ()]
    type_name = type_names[-1].lower() if type_names else ""
    serial = type_name in _SERIAL or "CONSTR_IDENTITY" in kinds
    generated = [c for c in cons if _is(c.contype, "CONSTR_GENERATED")]
    default = next((c.raw_expr for c in cons if _is(c.contype, "CONSTR_DEFAULT")), None)
    if serial:
        v.hit("add-serial-column", f"adds {type_name if type_name in _SERIAL else 'identity'} column {col}")
    if any(getattr(c, "generated_kind", "s") != "v" for c in generated):
        v.hit("stored-generated-column", f"adds STORED generated column {col}")
    if default is not None and (func := _volatile(default)) is not None:
        v.hit("volatile-default", f"adds {col} with DEFAULT {func}, which may be volatile (forces a rewrite)")
    not_null = bool(coldef.is_not_null) or "CONSTR_NOTNULL" in kinds
    if not_null and default is None and not serial and not generated and "CONSTR_PRIMARY" not in kinds:
        v.hit("not-null-without-default", f"adds NOT NULL column {col} without a DEFAULT")
    for con in cons:
        kind = getattr(con.contype, "name", "")
        if kind == "CONSTR_FOREIGN":
            target = _rel(con.pktable)[1] if con.pktable is not None else "?"
            v.hit("constraint-not-valid-missing", f"adds {col} REFERENCES {target}: validated at once, no NOT VALID")
        elif kind == "CONSTR_CHECK":
            v.hit("constraint-not-valid-missing", f"adds {col} with an inline CHECK: validated at once, no NOT VALID")
        elif kind == "CONSTR_PRIMARY":
            v.hit("add-primary-key", f"adds {col} as the PRIMARY KEY of an existing table")
        elif kind == "CONSTR_UNIQUE":
            v.hit("unique-constraint", f"adds {col} UNIQUE: builds the index under the ALTER's lock")


def _volatile(expr: Any) -> str | None:
    """The first function call in a DEFAULT that is not known to be stable (``name()``), else None."""
    try:
        for node in _walk(expr):
            if type(node).__name__ == "FuncCall":
                parts = [_sval(p).lower() for p in node.funcname or ()]
                if not parts or parts[-1] not in _STABLE or (len(parts) > 1 and parts[-2] != "pg_catalog"):
                    return ".".join(parts) + "()"
    except OverflowError:
        return "a very large expression"
    return None


# --- other statements ------------------------------------------------------------------------------


def _create_table(node: Any, h: History, f: FileState, v: Verdict) -> None:
    f.new_tables.add(_rel(node.relation)[0])


def _create_table_as(node: Any, h: History, f: FileState, v: Verdict) -> None:
    if node.into is not None and node.into.rel is not None:
        f.new_tables.add(_rel(node.into.rel)[0])


def _create_schema(node: Any, h: History, f: FileState, v: Verdict) -> None:
    if node.schemaname:
        f.new_schemas.add(str(node.schemaname))


def _index(node: Any, h: History, f: FileState, v: Verdict) -> None:
    key, shown = _rel(node.relation)
    v.concurrent = bool(node.concurrent)
    if key in f.new_tables:
        if node.idxname:
            f.new_indexes.add(_key(node.relation.schemaname, node.idxname))
        return
    if not v.concurrent:
        v.locks = shown
        what = " ".join(filter(None, ["UNIQUE INDEX" if node.unique else "INDEX", node.idxname]))
        v.hit("index-not-concurrently", f"CREATE {what} on {shown} without CONCURRENTLY")


def _drop(node: Any, h: History, f: FileState, v: Verdict) -> None:
    objects = [_obj(o) for o in node.objects or ()]
    kind = getattr(node.removeType, "name", "")
    if kind == "OBJECT_TABLE":
        old = [shown for key, shown in objects if key not in f.new_tables]
        if old:
            v.locks = ", ".join(old)
            v.hit("drop-table", f"drops table {v.locks}")
    elif kind == "OBJECT_INDEX":
        if node.concurrent:
            v.concurrent = True
            return
        old = [shown for key, shown in objects if key not in f.new_indexes]
        if old:
            v.locks = f"the table of index {', '.join(old)}"
            v.hit("drop-index-not-concurrently", f"drops index {', '.join(old)} without CONCURRENTLY")
    elif kind == "OBJECT_SCHEMA":
        old = [shown for _, shown in objects if shown not in f.new_schemas]
        if old:
            v.hit("drop-schema", f"drops schema {', '.join(old)}")


def _rename(node: Any, h: History, f: FileState, v: Verdict) -> None:
    if node.relation is None:
        return
    key, shown = _rel(node.relation)
    kind = getattr(node.renameType, "name", "")
    if kind == "OBJECT_TABLE":
        if key in f.new_tables:
            f.new_tables.add(_key(node.relation.schemaname, node.newname))
            return
        v.locks = shown
        v.hit("rename-table", f"renames table {shown} to {node.newname}")
    elif kind == "OBJECT_COLUMN" and _is(node.relationType, "OBJECT_TABLE") and key not in f.new_tables:
        v.locks = shown
        v.hit("rename-column", f"renames column {shown}.{node.subname} to {node.newname}")
    elif kind == "OBJECT_INDEX" and key in f.new_indexes:
        f.new_indexes.add(_key(node.relation.schemaname, node.newname))


def _truncate(node: Any, h: History, f: FileState, v: Verdict) -> None:
    old = [shown for key, shown in map(_rel, node.relations or ()) if key not in f.new_tables]
    if old:
        v.locks = ", ".join(old)
        v.hit("truncate", f"truncates {v.locks}")


def _dml(node: Any, h: History, f: FileState, v: Verdict) -> None:
    """DELETE/UPDATE without WHERE, at the top level or in a WITH clause (data-modifying CTE)."""
    stack, seen = [node], 0
    while stack and seen < _WALK_BUDGET:
        item = stack.pop()
        seen += 1
        name = type(item).__name__
        if name in ("DeleteStmt", "UpdateStmt") and item.relation is not None:
            key, shown = _rel(item.relation)
            where = item.whereClause
            always = where is None or getattr(getattr(where, "val", None), "boolval", None) is True
            if always and key not in f.new_tables:
                if name == "DeleteStmt":
                    v.hit("delete-without-where", f"deletes every row of {shown}")
                else:
                    v.hit("update-without-where", f"updates every row of {shown}")
        with_clause = getattr(item, "withClause", None)
        if with_clause is not None:
            stack.extend(c.ctequery for c in reversed(with_clause.ctes or ()) if c.ctequery is not None)


def _select(node: Any, h: History, f: FileState, v: Verdict) -> None:
    if node.intoClause is not None and node.intoClause.rel is not None:  # SELECT … INTO new_table
        f.new_tables.add(_rel(node.intoClause.rel)[0])
    for target in node.targetList or ():  # SELECT set_config('lock_timeout', '5s', true)
        call: Any = getattr(target, "val", None)
        if type(call).__name__ == "FuncCall" and [_sval(p) for p in call.funcname][-1:] == ["set_config"]:
            args = list(call.args or ())
            if len(args) >= 2 and _sval(getattr(args[0], "val", None)) == "lock_timeout":
                f.lock_timeout = not _zero(getattr(args[1], "val", None))
    _dml(node, h, f, v)


def _zero(value: Any) -> bool:
    """A lock_timeout value that means "no timeout" (0, '0', '0ms', …)."""
    text = str(getattr(value, "sval", getattr(value, "ival", getattr(value, "fval", ""))))
    digits = ""
    for ch in text.strip():
        if not (ch.isdigit() or ch == "."):
            break
        digits += ch
    try:
        return float(digits) == 0
    except ValueError:
        return False


def _set(node: Any, h: History, f: FileState, v: Verdict) -> None:
    if str(node.name or "").lower() == "lock_timeout":
        args = list(node.args or ())
        f.lock_timeout = _is(node.kind, "VAR_SET_VALUE") and bool(args) and not _zero(getattr(args[0], "val", None))


def _transaction(node: Any, h: History, f: FileState, v: Verdict) -> None:
    kind = _tx_kind(node)
    if kind in _TX_KINDS:
        shown = "START TRANSACTION" if kind == "START" else kind.replace("_", " ")
        v.hit("explicit-transaction", f"{shown} inside a migration (opsctl manages the transaction)")


def _drop_database(node: Any, h: History, f: FileState, v: Verdict) -> None:
    v.hit("drop-database", f"drops database {node.dbname}")


def _vacuum(node: Any, h: History, f: FileState, v: Verdict) -> None:
    if not node.is_vacuumcmd or not _option_on(node.options, "full"):
        return
    rels = [_rel(r.relation) for r in node.rels or () if getattr(r, "relation", None) is not None]
    old = [shown for key, shown in rels if key not in f.new_tables]
    if old or not rels:
        v.locks = ", ".join(old) or "every table"
        v.hit("vacuum-full", f"VACUUM FULL on {v.locks}")


def _cluster(node: Any, h: History, f: FileState, v: Verdict) -> None:
    rel = _rel(node.relation) if node.relation is not None else None
    if rel is None or rel[0] not in f.new_tables:
        v.locks = rel[1] if rel else "every clustered table"
        v.hit("cluster", f"CLUSTER on {v.locks}")


def _reindex(node: Any, h: History, f: FileState, v: Verdict) -> None:
    if _option_on(node.params, "concurrently"):
        v.concurrent = True
        return
    kind = getattr(node.kind, "name", "").removeprefix("REINDEX_OBJECT_")
    if node.relation is not None:
        key, shown = _rel(node.relation)
        if key in (f.new_tables if kind == "TABLE" else f.new_indexes):
            return
    else:
        shown = str(node.name or "")
    v.locks = shown
    v.hit("reindex-not-concurrently", f"REINDEX {kind} {shown} without CONCURRENTLY")


_CHECKS: dict[str, Check] = {
    "AlterTableStmt": _alter_table,
    "CreateStmt": _create_table,
    "CreateTableAsStmt": _create_table_as,
    "CreateSchemaStmt": _create_schema,
    "IndexStmt": _index,
    "DropStmt": _drop,
    "RenameStmt": _rename,
    "TruncateStmt": _truncate,
    "DeleteStmt": _dml,
    "UpdateStmt": _dml,
    "InsertStmt": _dml,  # only its data-modifying CTEs
    "SelectStmt": _select,
    "VariableSetStmt": _set,
    "TransactionStmt": _transaction,
    "DropdbStmt": _drop_database,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "ReindexStmt": _reindex,
}
