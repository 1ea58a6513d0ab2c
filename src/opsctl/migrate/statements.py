"""Splitting migration SQL into statements with the real PostgreSQL parser (pglast, the
libpg_query binding), keeping each statement's line in its file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Statement:
    sql: str  # the statement's text, without the trailing semicolon
    line: int  # 1-based line of its first character in the file
    node: Any = None  # the parsed statement (a pglast node); None when it did not parse


class SqlSyntaxError(Exception):
    """A chunk the parser rejects: ``line`` is where in the file the error is."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def line_at(text: str, offset: int, first_line: int = 1) -> int:
    return first_line + text.count("\n", 0, max(0, min(offset, len(text))))


DEPTH_CHECK_CHARS = 1024  # below this a statement cannot nest deep enough to matter
DEEP = "nested too deeply: PostgreSQL stops with 'stack depth limit exceeded'"


def too_deep(sql: str) -> bool:
    """libpg_query's protobuf output stops safely at PostgreSQL's stack depth limit (~5,000 nested
    nodes), where pglast's Python node building would crash the process on deeper input."""
    from pglast.parser import ParseError, parse_sql_protobuf

    try:
        parse_sql_protobuf(sql)
    except ParseError as exc:
        return "stack depth" in str(exc)
    return False


def split(sql: str, first_line: int = 1) -> list[Statement]:
    """The statements of ``sql`` (a file, or a chunk of one starting at ``first_line``).

    Raises :class:`SqlSyntaxError` with the line of the error when the parser rejects it."""
    from pglast import parse_sql
    from pglast import split as pg_split
    from pglast.parser import ParseError

    if "\x00" in sql:  # the parser would silently stop reading there
        raise SqlSyntaxError("a NUL byte: PostgreSQL rejects the text", line_at(sql, sql.index("\x00"), first_line))
    if len(sql) >= DEPTH_CHECK_CHARS and too_deep(sql):  # building Python nodes from it would overflow the C stack
        raise SqlSyntaxError(DEEP, first_line)
    try:
        slices = list(pg_split(sql, with_parser=True, only_slices=True))
    except ParseError as exc:
        where = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        raise SqlSyntaxError(str(exc.args[0]) if exc.args else str(exc), line_at(sql, where, first_line)) from None
    out: list[Statement] = []
    for part in slices:
        text = sql[part].strip().rstrip(";").strip()
        if not text:
            continue
        start = part.start + (len(sql[part]) - len(sql[part].lstrip()))
        try:
            nodes = parse_sql(text)
        except ParseError as exc:  # split accepted it, the parser did not: report it where it is
            raise SqlSyntaxError(str(exc.args[0]) if exc.args else str(exc), line_at(sql, start, first_line)) from None
        node = nodes[0].stmt if len(nodes) == 1 else None
        out.append(Statement(text, line_at(sql, start, first_line), node))
    return out
