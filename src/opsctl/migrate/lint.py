"""A squawk-class linter for PostgreSQL migration files: which statements destroy data (forbidden:
``migrate run`` refuses them), which block reads or writes on a live table (unsafe), and advice.

Statements are parsed with the real PostgreSQL grammar (:mod:`opsctl.migrate.statements`, pglast); the
rules read the AST (:mod:`opsctl.migrate.lint_rules`, which also holds the :data:`RULES` catalogue).

Suppression: comment lines ``-- opsctl-lint: ignore RULE[,RULE]`` directly above a statement (blank lines
between are allowed; several comment lines in a row form one block) silence those rules for that
statement only.  Forbidden rules (data-destroying statements, ``syntax-error``) cannot be silenced:
migrations are forward-only.

Bounds: hostile input is expected.  A chunk longer than a few KB is first checked by libpg_query's own
protobuf output, which stops at PostgreSQL's stack depth limit, so a deeply nested expression (which
would overflow the C stack while pglast builds Python objects from it) becomes a ``syntax-error``
finding — PostgreSQL would reject it the same way.  A NUL byte (where the parser would silently stop
reading) is a ``syntax-error`` finding and the rest of the chunk is still linted."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from opsctl.migrate.lint_rules import RULES, FileState, History, check, is_transaction_control
from opsctl.migrate.source import Chunk, Migration
from opsctl.migrate.statements import DEEP, DEPTH_CHECK_CHARS, SqlSyntaxError, Statement, line_at, split, too_deep

__all__ = ["RULES", "Finding", "lint_migration", "lint_migrations"]

STATEMENT_CHARS = 200
UNSILENCEABLE = frozenset(rule for rule, (severity, _, _) in RULES.items() if severity == "forbidden")
_IGNORE = re.compile(r"--\s*opsctl-lint:\s*ignore\s+([\w-]+(?:\s*,\s*[\w-]+)*)", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    file: str  # migration.display
    line: int  # 1-based line of the statement in the file
    rule: str  # rule id, e.g. "drop-column"
    severity: str  # "forbidden" | "unsafe" | "advice"
    message: str  # what this statement does wrong
    why: str  # why it hurts
    recipe: str  # the safe way
    statement: str  # the statement, one printable line of at most 200 characters

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def lint_migration(m: Migration) -> list[Finding]:
    return lint_migrations([m])


def lint_migrations(ms: list[Migration]) -> list[Finding]:
    """Findings for the migrations in order.  A table created by an earlier migration is an existing
    table for the later ones; what earlier files validated (CHECK … IS NOT NULL) carries over."""
    history = History()
    out: list[Finding] = []
    for m in ms:
        out.extend(_lint_file(m, history))
    return out


def _lint_file(m: Migration, history: History) -> list[Finding]:
    lines = m.text.split("\n")
    findings: list[Finding] = []
    statements: list[Statement] = []
    for chunk in m.chunks:
        parsed, errors = _parse(chunk)
        statements.extend(parsed)
        for line, message in errors:
            shown = lines[line - 1] if 0 < line <= len(lines) else chunk.sql
            findings.append(_finding(m.display, line, "syntax-error", message, shown))
    state = FileState(explicit_tx=any(is_transaction_control(s.node) for s in statements if s.node is not None))
    ignored = _ignores(lines)
    for stmt in statements:
        if stmt.node is None:
            continue
        silenced = ignored.get(stmt.line, frozenset())
        for rule, message in check(stmt.node, history, state):
            if rule not in silenced:
                findings.append(_finding(m.display, stmt.line, rule, message, stmt.sql))
    findings.sort(key=lambda f: f.line)  # stable: within a line, in statement order
    return findings


def _parse(chunk: Chunk) -> tuple[list[Statement], list[tuple[int, str]]]:
    """The chunk's statements and its syntax errors as (line, message); never raises."""
    sql, errors = chunk.sql, []
    if "\x00" in sql:
        errors.append((line_at(sql, sql.index("\x00"), chunk.line), "a NUL byte: PostgreSQL rejects the text"))
        sql = sql.replace("\x00", " ")
    if len(sql) >= DEPTH_CHECK_CHARS and too_deep(sql):
        return _parse_deep(sql, chunk.line, errors)
    return _split(sql, chunk.line, errors), errors


def _split(sql: str, first_line: int, errors: list[tuple[int, str]]) -> list[Statement]:
    try:
        return split(sql, first_line)
    except SqlSyntaxError as exc:
        errors.append((exc.line, exc.message))
    except (RecursionError, MemoryError, ValueError) as exc:
        errors.append((first_line, f"cannot be parsed ({type(exc).__name__})"))
    return []


def _parse_deep(
    sql: str, first_line: int, errors: list[tuple[int, str]]
) -> tuple[list[Statement], list[tuple[int, str]]]:
    """A chunk with a too deeply nested statement: that statement is an error, the others are linted.
    (pglast's splitter only runs the grammar, which is iterative, so it is safe on such input.)"""
    from pglast import split as pg_split
    from pglast.parser import ParseError

    try:
        slices = list(pg_split(sql, with_parser=True, only_slices=True))
    except ParseError:
        slices = [slice(0, len(sql))]
    out: list[Statement] = []
    for part in slices:
        text = sql[part]
        start = part.start + len(text) - len(text.lstrip())
        if len(text) >= DEPTH_CHECK_CHARS and too_deep(text):
            errors.append((line_at(sql, start, first_line), DEEP))
        else:
            out.extend(_split(text, line_at(sql, part.start, first_line), errors))
    return out, errors


def _ignores(lines: list[str]) -> dict[int, frozenset[str]]:
    """Line number -> rules silenced by the comment block directly above that line."""
    out: dict[int, frozenset[str]] = {}
    block: set[str] = set()
    in_block = False
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        if text.startswith("--"):
            if not in_block:
                block, in_block = set(), True
            match = _IGNORE.match(text)
            if match:
                block.update(r.strip().lower() for r in match.group(1).split(","))
            continue
        if block:
            out[number] = frozenset(block - UNSILENCEABLE)
        block, in_block = set(), False
    return out


def _finding(file: str, line: int, rule: str, message: str, statement: str) -> Finding:
    severity, why, recipe = RULES[rule]
    return Finding(file, line, rule, severity, printable(message, 400), why, recipe, printable(statement))


def printable(text: str, limit: int = STATEMENT_CHARS) -> str:
    """One line of printable characters (control and format characters become spaces, runs of spaces
    collapse), shortened to ``limit`` characters with an ellipsis."""
    head = text[: limit * 8]
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in head).split())
    return cleaned if len(cleaned) <= limit and len(head) == len(text) else cleaned[: limit - 1] + "…"
