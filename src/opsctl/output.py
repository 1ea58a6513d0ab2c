"""Rendering results: rich tables for people, JSON or YAML for programs.

Data goes to stdout; progress, warnings and prompts to stderr.  Everything
written passes :func:`opsctl.redact.redact`.  rich is imported on first use.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import IO, TYPE_CHECKING, Any

from opsctl.redact import redact, redact_data

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("table", "json", "yaml")


@dataclass(frozen=True)
class Column:
    """A table column: ``fmt`` turns the value into plain text, ``color`` picks a rich style for it."""

    key: str
    header: str | None = None
    style: str | None = None
    fmt: Callable[[Any], str] | None = None
    color: Callable[[Any], str | None] | None = None

    @property
    def title(self) -> str:
        return self.header or self.key.replace("_", " ").upper()


def to_plain(value: Any) -> Any:
    """JSON-ready data: datetimes as ISO 8601, durations as text, enums by value."""
    from opsctl.timeutil import format_duration, isoformat

    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_plain(v) for v in value]
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "model_dump"):
        return to_plain(value.model_dump(mode="json", by_alias=True))
    return value


class Output:
    """The two streams of one invocation and the chosen format."""

    def __init__(
        self,
        fmt: str = "table",
        *,
        no_color: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.format = fmt
        self.no_color = no_color or bool(os.environ.get("NO_COLOR"))
        self._stdout_file = stdout
        self._stderr_file = stderr
        self._out: Console | None = None
        self._err: Console | None = None

    # -- consoles ---------------------------------------------------------------
    def _console(self, stderr: bool) -> Console:
        from rich.console import Console

        file = self._stderr_file if stderr else self._stdout_file
        return Console(
            file=file if file is not None else (sys.stderr if stderr else sys.stdout),
            stderr=stderr and file is None,
            no_color=self.no_color,
            color_system=None if self.no_color else "auto",
            highlight=False,
            soft_wrap=False,
        )

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = self._console(False)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = self._console(True)
        return self._err

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal

    # -- diagnostics (stderr) ---------------------------------------------------
    def info(self, message: str) -> None:
        self.err.print(redact(message), markup=False, style="dim")

    def success(self, message: str) -> None:
        self.err.print(redact(message), markup=False, style="green")

    def warn(self, message: str) -> None:
        self.err.print("warning: " + redact(message), markup=False, style="yellow")

    def error(self, message: str) -> None:
        self.err.print("error: " + redact(message), markup=False, style="bold red", soft_wrap=True)

    # -- data (stdout) ----------------------------------------------------------
    def data(self, value: Any, *, columns: Sequence[Column] | None = None, title: str | None = None) -> None:
        """Render ``value`` (a dict or a list of dicts) in the chosen format."""
        plain = redact_data(to_plain(value), mask_keys=False)
        if self.format == "json":
            self._write(json.dumps(plain, indent=2, ensure_ascii=False) + "\n")
        elif self.format == "yaml":
            import yaml

            self._write(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True))
        elif isinstance(plain, list) and not self._stdout_is_terminal():
            self._write(plain_table(plain, columns or _columns_of(plain)))
        elif isinstance(plain, list):
            self.out.print(self.table(plain, columns or _columns_of(plain), title=title))
        elif isinstance(plain, dict):
            self.out.print(self.details(plain, title=title))
        else:
            self._write(f"{plain}\n")

    def text(self, text: str) -> None:
        """Raw text on stdout (Markdown, scripts) whatever the format."""
        self._write(redact(text) if text.endswith("\n") else redact(text) + "\n")

    def _stdout_is_terminal(self) -> bool:
        stream = self._stdout_file if self._stdout_file is not None else sys.stdout
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty()) or bool(os.environ.get("FORCE_COLOR"))

    def _write(self, text: str) -> None:
        stream = self._stdout_file if self._stdout_file is not None else sys.stdout
        stream.write(text)
        stream.flush()

    # -- rich building blocks ---------------------------------------------------
    def table(self, rows: list[dict[str, Any]], columns: Sequence[Column], *, title: str | None = None) -> Any:
        from rich.table import Table

        table = Table(title=title, box=None if self.no_color else _box(), header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column.title, style=column.style, overflow="fold")
        from rich.text import Text

        for row in rows:
            cells = []
            for c in columns:
                value = row.get(c.key)
                cells.append(Text(_cell(value, c.fmt), style=(c.color(value) if c.color else None) or ""))
            table.add_row(*cells)
        if not rows:
            table.caption = "(none)"
        return table

    def details(self, data: dict[str, Any], *, title: str | None = None) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        if title:
            table.title = title
        from rich.text import Text

        for key, value in data.items():
            table.add_row(str(key), Text(_cell(value, None)))
        return table


def _box() -> Any:
    from rich import box

    return box.SIMPLE_HEAD


def _columns_of(rows: list[dict[str, Any]]) -> list[Column]:
    keys: list[str] = []
    for row in rows:
        for key in row:
            if key not in keys:
                keys.append(key)
    return [Column(k) for k in keys]


def plain_table(rows: list[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Aligned columns without decoration, for pipes (grep, awk, cut)."""
    grid = [[c.title for c in columns]]
    grid += [[_cell(row.get(c.key), c.fmt).replace("\n", " ") for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    return "".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in grid)


def _cell(value: Any, fmt: Callable[[Any], str] | None) -> str:
    if fmt is not None:
        return fmt(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if value else "-"
    return str(value)
