"""A zero-downtime column change: the YAML file that declares it, validated, and the SQL of its phases.

A change adds one column in four phases — expand (the column, nullable), dual-write (a trigger
that keeps it in step while the previous app version still writes), backfill (batched by primary
key, see :mod:`opsctl.migrate.backfill`) and contract (constraints without long locks).  Every
name is validated and quoted with :mod:`psycopg.sql`; the backfill expression is the one piece of
SQL the author writes, and it is parsed with PostgreSQL's own parser (pglast) before it is used,
so that a value smuggling in a second statement is a config error, never executed.

The SQL builders return :class:`psycopg.Composed` objects meant to be executed *without*
parameters: an expression may contain ``%`` (``id % 7``), which psycopg would otherwise read as a
placeholder.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.errors import ConfigError, ConfigProblem, RefusedError, UsageError

if TYPE_CHECKING:
    import yaml
    from psycopg.sql import Composable, Composed, Identifier

MAX_NAME_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer names silently
MAX_CHANGE_BYTES = 256 * 1024
MAX_SQL_CHARS = 10_000  # a backfill or check expression, or a type
KINDS = ("not_null", "unique", "check", "references")
KEYS = ("table", "column", "backfill", "constraints")
COLUMN_KEYS = ("name", "type")
_IDENT = re.compile(r"[a-z_][a-z0-9_$]{0,62}", re.IGNORECASE)
_REFERENCE = re.compile(r"\s*(?:([^\s.()]+)\s*\.\s*)?([^\s.()]+)\s*\(\s*([^\s()]+)\s*\)\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# pseudo-types that imply a sequence default: adding one rewrites the table under an exclusive lock
_SERIAL = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"})


@dataclass(frozen=True)
class Constraint:
    kind: str  # "not_null" | "unique" | "check" | "references"
    name: str  # the constraint's name (and the unique index's): deterministic, at most 63 bytes
    expr: str | None = None  # check
    ref_schema: str | None = None  # references: the referenced table's schema (the change's by default)
    ref_table: str | None = None
    ref_column: str | None = None


@dataclass(frozen=True)
class Change:
    id: str  # the file's stem
    source: Path
    schema: str
    table: str
    column: str
    type: str
    backfill: str
    constraints: tuple[Constraint, ...] = ()

    @property
    def qualified(self) -> str:
        """``schema.table.column`` for messages (not SQL)."""
        return f"{self.schema}.{self.table}.{self.column}"

    @property
    def function_name(self) -> str:
        """The dual-write trigger function, in the table's schema."""
        return short_name("opsctl_dw", self.table, self.column)

    @property
    def trigger_name(self) -> str:
        return short_name("opsctl_dw", self.table, self.column)


@dataclass(frozen=True)
class ContractStep:
    name: str
    sql: Composed
    concurrently: bool  # must run outside a transaction block (autocommit)
    done_query: Composed  # a SELECT returning one boolean: true when this step is already done
    lock: str  # the table lock the step takes
    index: str | None = None  # for CREATE INDEX CONCURRENTLY: the index, to drop first if left INVALID


class ChangeFileError(UsageError):
    """A change file is invalid: every problem, each as ``file:line: key: message``."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__(str(problems[0]))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


def short_name(*parts: str) -> str:
    """``parts`` joined by ``_``; when longer than 63 bytes, cut and ended by a hash of the whole
    name, so that two long names differing only at the end stay distinct."""
    full = "_".join(parts)
    if len(full.encode()) <= MAX_NAME_BYTES:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full.encode()[: MAX_NAME_BYTES - 9].decode(errors='ignore')}_{digest}"


# ------------------------------------------------------------------ validation


def identifier_problem(value: object) -> str | None:
    """Why ``value`` is not an identifier opsctl accepts; None when it is."""
    if not isinstance(value, str) or not value:
        return "must be a name (letters, digits, _ and $, starting with a letter or _)"
    if len(value.encode()) > MAX_NAME_BYTES:
        return f"is {len(value.encode())} bytes long: PostgreSQL names are at most {MAX_NAME_BYTES} bytes"
    if not _IDENT.fullmatch(value):
        shown = repr(value if len(value) <= 60 else value[:57] + "...")
        return f"{shown} is not a plain name: use letters, digits, _ and $, starting with a letter or _"
    return None


def _scan_problem(text: str, *, comments: bool = True) -> str | None:
    """Token-level checks with PostgreSQL's scanner: no ``;``, parentheses that never close
    more than they opened (so the text cannot close a parenthesis it is put in), no ``--``
    comment at the end (it would comment out what follows), and no comment at all unless allowed."""
    from pglast.parser import ParseError, scan

    if _CONTROL.search(text):
        return "contains a control character"
    try:
        tokens = scan(text)
    except ParseError as exc:
        return f"is not valid SQL: {exc.args[0] if exc.args else exc}"
    if tokens and tokens[-1].name == "SQL_COMMENT":
        return "ends with a -- comment, which would hide what follows it: remove it or use /* */"
    if not comments and any(t.name in ("SQL_COMMENT", "C_COMMENT") for t in tokens):
        return "contains a comment"
    depth = 0
    for token in tokens:
        if token.name == "ASCII_59":
            return "contains ';': it must be a single expression, not statements"
        if token.name == "ASCII_40":
            depth += 1
        elif token.name == "ASCII_41":
            depth -= 1
            if depth < 0:
                return "has a ')' without its '(': it must be a single expression"
    if depth:
        return "has a '(' that is never closed"
    return None


def type_problem(value: object) -> str | None:
    """Why ``value`` is not a single SQL type; None when it is (parsed as ``SELECT NULL::<type>``)."""
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    if not isinstance(value, str) or not value.strip():
        return "must be a SQL type, e.g. text or numeric(12,2)"
    if len(value) > MAX_SQL_CHARS:
        return "is too long for a type"
    problem = _scan_problem(value, comments=False)
    if problem:
        return problem
    try:
        parsed = parse_sql(f"SELECT NULL::{value}")
    except ParseError as exc:
        return f"is not a SQL type: {exc.args[0] if exc.args else exc}"
    stmt: Any = parsed[0].stmt if len(parsed) == 1 else None
    target = _single_target(stmt)
    cast: Any = target.val if target is not None else None
    type_name: Any = getattr(cast, "typeName", None)
    if (
        stmt is None
        or stmt.fromClause is not None
        or not isinstance(cast, ast.TypeCast)
        or not isinstance(cast.arg, ast.A_Const)
        or not cast.arg.isnull
        or type_name is None
        or type_name.setof
        or type_name.pct_type
    ):
        return "must be exactly one SQL type, e.g. text or numeric(12,2)"
    names = [getattr(n, "sval", "") for n in type_name.names or ()]
    if names and names[-1].lower() in _SERIAL:
        return "serial types add a default, which rewrites the table: add an integer column and a sequence apart"
    return None


def expression_problem(value: object, what: str = "an expression") -> str | None:
    """Why ``value`` is not exactly one SQL expression; None when it is.

    Parsed as ``SELECT (<expr>) FROM t``: one statement, a plain SELECT with one unnamed target
    and nothing else, and (checked on the tokens) no ``;`` and no parenthesis it did not open."""
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    if not isinstance(value, str) or not value.strip():
        return f"must be {what} (SQL text)"
    if len(value) > MAX_SQL_CHARS:
        return f"is too long ({len(value)} characters) for {what}"
    problem = _scan_problem(value)
    if problem:
        return problem
    try:
        parsed = parse_sql(f"SELECT ({value}) FROM t")
    except ParseError as exc:
        return f"is not a valid SQL expression: {exc.args[0] if exc.args else exc}"
    stmt: Any = parsed[0].stmt if len(parsed) == 1 else None
    target = _single_target(stmt)
    if stmt is None or target is None or target.name is not None:
        return f"must be exactly one SQL expression ({what})"
    source = stmt.fromClause
    if (
        not source
        or len(source) != 1
        or not isinstance(source[0], ast.RangeVar)
        or source[0].relname != "t"
        or source[0].schemaname is not None
        or source[0].alias is not None
    ):
        return f"must be exactly one SQL expression ({what})"
    return None


_SELECT_EXTRAS = (
    "distinctClause",
    "intoClause",
    "whereClause",
    "groupClause",
    "havingClause",
    "windowClause",
    "valuesLists",
    "sortClause",
    "limitOffset",
    "limitCount",
    "lockingClause",
    "withClause",
    "larg",
    "rarg",
)


def _single_target(stmt: Any) -> Any:
    """The one ResTarget of a plain ``SELECT <target> [FROM …]``; None for anything else."""
    from pglast import ast, enums

    if not isinstance(stmt, ast.SelectStmt) or stmt.op != enums.SetOperation.SETOP_NONE:
        return None
    if any(getattr(stmt, name, None) for name in _SELECT_EXTRAS):
        return None
    targets = stmt.targetList or ()
    if len(targets) != 1 or not isinstance(targets[0], ast.ResTarget):
        return None
    return targets[0]


# ------------------------------------------------------------------ loading


def load_change(path: Path) -> Change:
    """The change declared in ``path``; a :class:`ChangeFileError` (a UsageError, exit 2) listing
    every problem as ``file:line: key: message``."""
    from opsctl.fsutil import FileTooLarge, RefusedFile, read_bounded
    from opsctl.yamlsafe import compose, construct

    label = str(path)

    def fail(message: str, line: int | None = None) -> ChangeFileError:
        return ChangeFileError([ConfigProblem(label, line, "", message)])

    try:
        raw = read_bounded(path, MAX_CHANGE_BYTES)
    except FileNotFoundError:
        raise fail("change file not found; check the path") from None
    except FileTooLarge:
        raise fail(f"larger than {MAX_CHANGE_BYTES // 1024} KiB: is it the right file?") from None
    except RefusedFile as exc:
        raise fail(f"cannot read it: it {exc.reason}") from None
    except OSError as exc:
        raise fail(f"cannot read it: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail("not UTF-8 text", raw.count(b"\n", 0, exc.start) + 1) from None
    try:
        root = compose(text, label)
        data = construct(root, text, label) if root is not None else None
    except ConfigError as exc:
        raise ChangeFileError(exc.problems) from None
    if root is None or data is None:
        raise fail("the change file is empty: write table, column, backfill (and constraints)")
    lines: dict[tuple[str, ...], int] = {}
    duplicates: list[tuple[str, ...]] = []
    _index(root, (), lines, duplicates)
    checker = _Checker(label, lines, root.start_mark.line + 1)
    for where in duplicates:
        checker.add(where, "duplicate key: give each key once", at_value=False)
    change = checker.change(path, data)
    if checker.problems or change is None:
        checker.problems.sort(key=lambda p: p.line or 0)
        raise ChangeFileError(checker.problems)
    return change


def _index(
    node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int], duplicates: list[tuple[str, ...]]
) -> None:
    """The line of every key path (keys, and sequence items as their index), and the paths of
    keys given twice in a mapping (the line of the second)."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*path, str(key.value) if isinstance(key, yaml.ScalarNode) else "?")
            if here in lines:
                duplicates.append(here)
                lines[here] = key.start_mark.line + 1
                lines[(*here, "=")] = value.start_mark.line + 1
            lines.setdefault(here, key.start_mark.line + 1)
            lines.setdefault((*here, "="), value.start_mark.line + 1)
            _index(value, here, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            here = (*path, f"[{position}]")
            lines.setdefault(here, item.start_mark.line + 1)
            _index(item, here, lines, duplicates)


class _Checker:
    def __init__(self, label: str, lines: dict[tuple[str, ...], int], first_line: int) -> None:
        self.label, self.lines, self.first_line = label, lines, first_line
        self.problems: list[ConfigProblem] = []

    def add(self, path: tuple[str, ...], message: str, *, at_value: bool = True, line: int | None = None) -> None:
        line = line or (self.lines.get((*path, "=")) if at_value else None) or self.lines.get(path)
        probe = path
        while line is None and probe:
            probe = probe[:-1]
            line = self.lines.get(probe)
        shown = ".".join(path).replace(".[", "[")
        self.problems.append(ConfigProblem(self.label, line or self.first_line, shown, message))

    def mapping(self, path: tuple[str, ...], value: Any, keys: tuple[str, ...], required: tuple[str, ...]) -> bool:
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping with {', '.join(required)}")
            return False
        for key in value:
            if str(key) not in keys:
                self.add((*path, str(key)), f"unknown key; expected one of {', '.join(keys)}", at_value=False)
        for key in required:
            if key not in value:
                where = self.lines.get(path, self.first_line) if path else self.first_line
                self.add((*path, key), "required key is missing", line=where)
        return True

    def ident(self, path: tuple[str, ...], value: Any) -> str | None:
        problem = identifier_problem(value)
        if problem:
            self.add(path, problem)
            return None
        return str(value)

    def change(self, path: Path, data: Any) -> Change | None:
        if not isinstance(data, dict):
            self.problems.append(
                ConfigProblem(
                    self.label, self.first_line, "", "must be a mapping: table, column, backfill, constraints"
                )
            )
            return None
        self.mapping((), data, KEYS, ("table", "column", "backfill"))
        schema, table = self.table(data.get("table")) if "table" in data else (None, None)
        name = kind = None
        column: Any = data.get("column")
        if "column" in data and self.mapping(("column",), column, COLUMN_KEYS, COLUMN_KEYS):
            if "name" in column:
                name = self.ident(("column", "name"), column["name"])
            if "type" in column:
                problem = type_problem(column["type"])
                if problem:
                    self.add(("column", "type"), problem)
                else:
                    kind = str(column["type"]).strip()
        backfill = None
        if "backfill" in data:
            problem = expression_problem(data["backfill"], "the backfill expression")
            if problem:
                self.add(("backfill",), problem)
            else:
                backfill = str(data["backfill"]).strip()
        constraints: tuple[Constraint, ...] = ()
        if table and name and schema:
            constraints = self.constraints(data.get("constraints"), schema, table, name)
        if not (schema and table and name and kind and backfill) or self.problems:
            return None
        return Change(path.stem, path, schema, table, name, kind, backfill, constraints)

    def table(self, value: Any) -> tuple[str | None, str | None]:
        if not isinstance(value, str):
            self.add(("table",), "must be a table name: table or schema.table")
            return None, None
        parts = value.split(".")
        if len(parts) > 2:
            self.add(("table",), f"{value[:60]!r} is not table or schema.table")
            return None, None
        if len(parts) == 1:
            parts = ["public", *parts]
        problems = [identifier_problem(part) for part in parts]
        for problem in problems:
            if problem:
                self.add(("table",), problem)
        if any(problems):
            return None, None
        return parts[0], parts[1]

    def constraints(self, value: Any, schema: str, table: str, column: str) -> tuple[Constraint, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add(("constraints",), "must be a list: not_null, unique, {check: expr}, {references: table(col)}")
            return ()
        out: list[Constraint] = []
        counts = dict.fromkeys(KINDS, 0)
        for position, item in enumerate(value):
            here = ("constraints", f"[{position}]")
            if isinstance(item, str) and item in ("not_null", "unique"):
                if counts[item]:
                    self.add(here, f"{item} is listed twice")
                    continue
                counts[item] += 1
                suffix = "not_null" if item == "not_null" else "key"
                out.append(Constraint(item, short_name(table, column, suffix)))
                continue
            if not (isinstance(item, dict) and len(item) == 1 and next(iter(item)) in ("check", "references")):
                self.add(here, "must be not_null, unique, {check: <expression>} or {references: table(column)}")
                continue
            kind, text = next(iter(item.items()))
            counts[kind] += 1
            number = "" if counts[kind] == 1 else str(counts[kind])
            if kind == "check":
                problem = expression_problem(text, "a check expression")
                if problem:
                    self.add((*here, "check"), problem)
                    continue
                name = short_name(table, column, f"check{number}")
                out.append(Constraint("check", name, expr=str(text).strip()))
                continue
            match = _REFERENCE.fullmatch(text) if isinstance(text, str) else None
            if match is None:
                self.add((*here, "references"), "must be table(column) or schema.table(column)")
                continue
            ref_schema, ref_table, ref_column = match.group(1) or schema, match.group(2), match.group(3)
            bad = [p for p in map(identifier_problem, (ref_schema, ref_table, ref_column)) if p]
            if bad:
                self.add((*here, "references"), bad[0])
                continue
            name = short_name(table, column, f"fkey{number}")
            out.append(
                Constraint("references", name, ref_schema=ref_schema, ref_table=ref_table, ref_column=ref_column)
            )
        return tuple(out)


# ------------------------------------------------------------------ SQL builders


def _table(c: Change) -> Identifier:
    from psycopg import sql

    return sql.Identifier(c.schema, c.table)


def expand_sql(c: Change) -> Composed:
    """Phase 1: the column, nullable and without a default (a catalog-only change)."""
    from psycopg import sql

    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
        _table(c), sql.Identifier(c.column), sql.SQL(c.type)
    )


def probe_sql(c: Change) -> Composed:
    """A statement that plans the backfill's assignment without running it: an unknown column
    or function, or a value of a type that cannot be assigned to the column, fails here.  Run it
    after expand and before installing the trigger, which would otherwise fail every write of the
    previous app version.  (EXPLAIN takes the table's ROW EXCLUSIVE lock, as any write does:
    run it under a lock_timeout.)"""
    from psycopg import sql

    return sql.SQL("EXPLAIN UPDATE {table} SET {col} = ({expr}) WHERE false").format(
        table=_table(c), col=sql.Identifier(c.column), expr=sql.SQL(c.backfill)
    )


def _dollar_tag(body: str) -> str:
    tag, n = "$opsctl$", 1
    while tag in body:
        n += 1
        tag = f"$opsctl{n}$"
    return tag


def row_expression_sql(c: Change, row: str) -> Composed:
    """The backfill expression evaluated over the record ``row`` (``NEW`` in the trigger), as a
    scalar subquery: the author's text unchanged, its column names resolved against the record's
    fields (the record is aliased as the table, so ``users.email`` works too)."""
    from psycopg import sql

    return sql.SQL("(SELECT ({expr}) FROM (SELECT {row}.*) AS {alias})").format(
        expr=sql.SQL(c.backfill), row=sql.SQL(row), alias=sql.Identifier(c.table)
    )


def dual_write_sql(c: Change) -> list[Composed]:
    """Phase 2: the trigger function and the trigger (run the three in one transaction, so that
    replacing the trigger leaves no moment without it).

    INSERT without the column (NULL): computed from the row.  UPDATE that leaves the column as it
    was (an app version that does not know it): recomputed from the new row.  An explicit value
    is kept.  ``#variable_conflict use_column`` makes a column named like a PL/pgSQL variable
    (``found``, ``new``) mean the column in the expression."""
    from psycopg import sql

    col = sql.Identifier(c.column)
    compute = row_expression_sql(c, "NEW")
    body = sql.SQL(
        "\n#variable_conflict use_column\n"
        "BEGIN\n"
        "  IF TG_OP = 'INSERT' THEN\n"
        "    IF NEW.{col} IS NULL THEN\n"
        "      NEW.{col} := {compute};\n"
        "    END IF;\n"
        "  ELSIF NEW.{col} IS NOT DISTINCT FROM OLD.{col} THEN\n"
        "    NEW.{col} := {compute};\n"
        "  END IF;\n"
        "  RETURN NEW;\n"
        "END\n"
    ).format(col=col, compute=compute)
    body_text = body.as_string(None)
    tag = sql.SQL(_dollar_tag(body_text))
    function = sql.Identifier(c.schema, c.function_name)
    trigger = sql.Identifier(c.trigger_name)
    return [
        sql.SQL("CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS {tag}{body}{tag}").format(
            fn=function, tag=tag, body=sql.SQL(body_text)
        ),
        sql.SQL("DROP TRIGGER IF EXISTS {trg} ON {table}").format(trg=trigger, table=_table(c)),
        sql.SQL("CREATE TRIGGER {trg} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()").format(
            trg=trigger, table=_table(c), fn=function
        ),
    ]


def drop_dual_write_sql(c: Change) -> list[Composed]:
    from psycopg import sql

    return [
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(c.trigger_name), _table(c)),
        sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier(c.schema, c.function_name)),
    ]


def _exists(query: Composable) -> Composed:
    from psycopg import sql

    return sql.SQL("SELECT EXISTS ({})").format(query)


def _constraint_query(c: Change, name: str, *, validated: bool = False, kind: str | None = None) -> Composed:
    from psycopg import sql

    extra: Composable = sql.SQL(" AND k.convalidated") if validated else sql.SQL("")
    if kind:
        extra = sql.SQL("{} AND k.contype = {}").format(extra, sql.Literal(kind))
    return _exists(
        sql.SQL(
            "SELECT 1 FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid "
            "JOIN pg_namespace n ON n.oid = r.relnamespace "
            "WHERE n.nspname = {schema} AND r.relname = {table} AND k.conname = {name}{extra}"
        ).format(schema=sql.Literal(c.schema), table=sql.Literal(c.table), name=sql.Literal(name), extra=extra)
    )


def _not_null_query(c: Change) -> Composed:
    from psycopg import sql

    return _exists(
        sql.SQL(
            "SELECT 1 FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = r.relnamespace "
            "WHERE n.nspname = {schema} AND r.relname = {table} AND a.attname = {column} AND a.attnotnull"
        ).format(schema=sql.Literal(c.schema), table=sql.Literal(c.table), column=sql.Literal(c.column))
    )


def _index_query(c: Change, name: str, *, valid: bool) -> Composed:
    from psycopg import sql

    return _exists(
        sql.SQL(
            "SELECT 1 FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = x.relnamespace "
            "WHERE n.nspname = {schema} AND x.relname = {name} AND {valid}i.indisvalid"
        ).format(schema=sql.Literal(c.schema), name=sql.Literal(name), valid=sql.SQL("" if valid else "NOT "))
    )


def invalid_index_query(c: Change, name: str) -> Composed:
    """True when an INVALID index ``name`` (left by a failed CREATE INDEX CONCURRENTLY) exists in
    the table's schema: drop it with :func:`drop_index_concurrently_sql` before building again."""
    return _index_query(c, name, valid=False)


def drop_index_concurrently_sql(c: Change, name: str) -> Composed:
    from psycopg import sql

    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(c.schema, name))


def _any(*queries: Composed) -> Composed:
    from psycopg import sql

    return sql.SQL("SELECT ({})").format(sql.SQL(") OR (").join(sql.SQL("{}").format(q) for q in queries))


def contract_statements(c: Change) -> list[ContractStep]:
    """Phase 4, in order.  Each step is done when its ``done_query`` says so, so a contract that
    stopped half way is resumed by skipping the steps already done."""
    from psycopg import sql

    table, col = _table(c), sql.Identifier(c.column)
    steps: list[ContractStep] = []
    for k in c.constraints:
        name = sql.Identifier(k.name)
        alter = sql.SQL("ALTER TABLE {} ").format(table)
        validate = ContractStep(
            f"{k.name}: validate",
            alter + sql.SQL("VALIDATE CONSTRAINT {}").format(name),
            False,
            _constraint_query(c, k.name, validated=True),
            "SHARE UPDATE EXCLUSIVE",
        )
        if k.kind == "not_null":
            set_already = _not_null_query(c)
            steps += [
                ContractStep(
                    f"{k.name}: add CHECK ({c.column} IS NOT NULL) NOT VALID",
                    alter + sql.SQL("ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID").format(name, col),
                    False,
                    _any(set_already, _constraint_query(c, k.name)),
                    "ACCESS EXCLUSIVE",
                ),
                ContractStep(validate.name, validate.sql, False, _any(set_already, validate.done_query), validate.lock),
                ContractStep(
                    f"{k.name}: SET NOT NULL (proved by the validated check, no scan)",
                    alter + sql.SQL("ALTER COLUMN {} SET NOT NULL").format(col),
                    False,
                    set_already,
                    "ACCESS EXCLUSIVE",
                ),
                ContractStep(
                    f"{k.name}: drop the check (NOT NULL holds it now)",
                    alter + sql.SQL("DROP CONSTRAINT IF EXISTS {}").format(name),
                    False,
                    sql.SQL("SELECT NOT ({})").format(_constraint_query(c, k.name)),
                    "ACCESS EXCLUSIVE",
                ),
            ]
        elif k.kind == "unique":
            has_constraint = _constraint_query(c, k.name, kind="u")
            steps += [
                ContractStep(
                    f"{k.name}: create unique index concurrently",
                    sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})").format(name, table, col),
                    True,
                    _any(has_constraint, _index_query(c, k.name, valid=True)),
                    "SHARE UPDATE EXCLUSIVE",
                    index=k.name,
                ),
                ContractStep(
                    f"{k.name}: add unique constraint using the index",
                    alter + sql.SQL("ADD CONSTRAINT {} UNIQUE USING INDEX {}").format(name, name),
                    False,
                    has_constraint,
                    "ACCESS EXCLUSIVE",
                ),
            ]
        elif k.kind == "check":
            steps += [
                ContractStep(
                    f"{k.name}: add CHECK NOT VALID",
                    alter + sql.SQL("ADD CONSTRAINT {} CHECK ({}) NOT VALID").format(name, sql.SQL(k.expr or "")),
                    False,
                    _constraint_query(c, k.name),
                    "ACCESS EXCLUSIVE",
                ),
                validate,
            ]
        else:
            ref = sql.Identifier(k.ref_schema or c.schema, k.ref_table or "")
            steps += [
                ContractStep(
                    f"{k.name}: add FOREIGN KEY NOT VALID",
                    alter
                    + sql.SQL("ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) NOT VALID").format(
                        name, col, ref, sql.Identifier(k.ref_column or "")
                    ),
                    False,
                    _constraint_query(c, k.name),
                    "SHARE ROW EXCLUSIVE",
                ),
                validate,
            ]
    return steps


def apply_contract_step(conn: Any, c: Change, step: ContractStep, *, lock_timeout_ms: int | None = 2000) -> bool:
    """Run ``step`` on ``conn`` (autocommit) unless it is done already; True when it ran.

    Before a CREATE INDEX CONCURRENTLY, an INVALID index of that name left by an earlier failed
    attempt is dropped concurrently (IF NOT EXISTS would otherwise keep it).  Other steps run
    under ``lock_timeout`` so that waiting for their lock never queues the table's traffic."""
    from psycopg import sql

    if _fetch_bool(conn, step.done_query):
        return False
    if step.concurrently:
        if step.index and _fetch_bool(conn, invalid_index_query(c, step.index)):
            conn.execute(drop_index_concurrently_sql(c, step.index))
        conn.execute(step.sql)
        return True
    with conn.transaction():
        if lock_timeout_ms is not None:
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_ms)}ms")))
        conn.execute(step.sql)
    return True


def _fetch_bool(conn: Any, query: Composed) -> bool:
    row = conn.execute(query).fetchone()
    return bool(row and row[0])


# ------------------------------------------------------------------ catalog


@dataclass(frozen=True)
class KeyColumn:
    name: str
    type: str  # format_type() of the column: trusted catalog text, used in casts
    category: str  # pg_type.typcategory ("A" array, "C" composite, …)


def key_columns(conn: Any, c: Change) -> list[KeyColumn]:
    """The table's primary key columns, in key order; RefusedError when the table is missing or
    has no primary key (a backfill needs a unique, ordered, not-null key to walk)."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory"
        " FROM pg_class r"
        " JOIN pg_namespace n ON n.oid = r.relnamespace"
        " JOIN pg_index i ON i.indrelid = r.oid AND i.indisprimary"
        " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = k.attnum"
        " JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE n.nspname = %s AND r.relname = %s ORDER BY k.ord",
        (c.schema, c.table),
    ).fetchall()
    if rows:
        return [KeyColumn(str(r[0]), str(r[1]), str(r[2])) for r in rows]
    found = conn.execute(
        "SELECT r.relkind FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace"
        " WHERE n.nspname = %s AND r.relname = %s",
        (c.schema, c.table),
    ).fetchone()
    if found is None:
        raise RefusedError(f"table {c.schema}.{c.table} does not exist", "check 'table' in the change file")
    raise RefusedError(
        f"table {c.schema}.{c.table} has no primary key: a batched backfill walks the primary key",
        "add a primary key first",
    )


def primary_key(conn: Any, c: Change) -> list[str]:
    """The table's primary key columns from the catalog; RefusedError if there is none."""
    return [k.name for k in key_columns(conn, c)]
