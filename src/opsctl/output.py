"""Rendering results: rich tables for people, tab-separated rows for pipes, JSON or YAML for programs.

Data goes to stdout; progress, warnings and prompts to stderr.  Everything
written passes :func:`opsctl.redact.redact`, and every human-facing text passes
:func:`printable`: titles, messages and names come from users and upstreams, and a
raw escape code in them would drive the reader's terminal (clear the screen, forge
lines).  rich is imported on first use.
"""

from __future__ import annotations

import json
import os
import re
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

# Characters that move the cursor, recolour or reorder what a terminal shows: C0 (tab and newline
# included), DEL, C1, the Unicode line and paragraph separators, and the bidi controls.
_OTHER_CONTROLS = r"\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(rf"[\x00-\x1f{_OTHER_CONTROLS}]")
_CONTROL_IN_TEXT = re.compile(rf"[\x00-\x08\x0b-\x1f{_OTHER_CONTROLS}]")  # newline and tab may stay
_JSON_UNSAFE = re.compile(f"[{_OTHER_CONTROLS}]")  # what json.dumps(ensure_ascii=False) leaves raw
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character shown escaped as in Python (ESC as ``\\x1b``, newline
    as ``\\n``, U+202E as ``\\u202e``), so that it prints as the characters it holds; linear time.
    ``multiline`` keeps newlines and tabs (raw Markdown or scripts)."""
    pattern = _CONTROL_IN_TEXT if multiline else _CONTROL
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


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
    # One message, one line: rich must not break it at 80 columns in a pipe (grep, CI logs).
    def info(self, message: str) -> None:
        self.err.print(_shown(message), markup=False, style="dim", soft_wrap=True)

    def success(self, message: str) -> None:
        self.err.print(_shown(message), markup=False, style="green", soft_wrap=True)

    def warn(self, message: str) -> None:
        self.err.print("warning: " + _shown(message), markup=False, style="yellow", soft_wrap=True)

    def error(self, message: str) -> None:
        self.err.print("error: " + _shown(message), markup=False, style="bold red", soft_wrap=True)

    # -- data (stdout) ----------------------------------------------------------
    def data(self, value: Any, *, columns: Sequence[Column] | None = None, title: str | None = None) -> None:
        """Render ``value`` (a dict or a list of dicts) in the chosen format."""
        plain = redact_data(to_plain(value), mask_keys=False)
        if self.format == "json":
            self._write(_json(plain))
        elif self.format == "yaml":
            self._write(_yaml(plain))
        elif isinstance(plain, list) and not self.stdout_is_terminal():
            self._write(plain_table(plain, columns or _columns_of(plain)))
        elif isinstance(plain, list):
            self.out.print(self.table(plain, columns or _columns_of(plain), title=title))
        elif isinstance(plain, dict):
            self.out.print(self.details(plain, title=title))
        else:
            self._write(f"{_shown(str(plain))}\n")

    def text(self, text: str) -> None:
        """Raw text on stdout (Markdown, scripts) whatever the format: lines and tabs stay,
        every other control character is shown escaped."""
        shown = printable(redact(text), multiline=True)
        self._write(shown if shown.endswith("\n") else shown + "\n")

    def json_line(self, value: Any) -> None:
        """One compact JSON document on one line of stdout, flushed (a stream of snapshots in a pipe)."""
        plain = redact_data(to_plain(value), mask_keys=False)
        self._write(_JSON_UNSAFE.sub(_json_escape, json.dumps(plain, ensure_ascii=False)) + "\n")

    def stdout_is_terminal(self) -> bool:
        stream = self._stdout_file if self._stdout_file is not None else sys.stdout
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty()) or bool(os.environ.get("FORCE_COLOR"))

    def _write(self, text: str) -> None:
        stream = self._stdout_file if self._stdout_file is not None else sys.stdout
        stream.write(text)
        stream.flush()

    # -- rich building blocks ---------------------------------------------------
    def table(self, rows: list[dict[str, Any]], columns: Sequence[Column], *, title: str | None = None) -> Any:
        """Cells are redacted and escaped here too: callers such as the live board pass raw rows."""
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title=Text(_shown(title)) if title else None,
            box=None if self.no_color else _box(),
            header_style="bold",
            pad_edge=False,
        )
        for column in columns:
            table.add_column(Text(_shown(column.title)), style=column.style, overflow="fold")
        for row in rows:
            cells = []
            for c in columns:
                value = row.get(c.key)
                cells.append(Text(_shown(_cell(value, c.fmt)), style=(c.color(value) if c.color else None) or ""))
            table.add_row(*cells)
        if not rows:
            table.caption = "(none)"
        return table

    def details(self, data: dict[str, Any], *, title: str | None = None) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        if title:
            table.title = Text(_shown(title))
        for key, value in data.items():
            table.add_row(Text(_shown(str(key))), Text(_shown(_cell(value, None))))
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
    """Tab-separated rows for pipes (``cut -f``, ``awk -F'\\t'``), a header row first: one field per
    column, never a tab or newline inside one (shown escaped), an empty cell as ``-``."""
    lines = ["\t".join(_shown(c.title) or "-" for c in columns)]
    lines += ["\t".join(_shown(_cell(row.get(c.key), c.fmt)) or "-" for c in columns) for row in rows]
    return "".join(line + "\n" for line in lines)


def _shown(text: str) -> str:
    """What a person may see of ``text``: secrets masked, control characters escaped."""
    return printable(redact(text))


def _json(data: Any) -> str:
    """JSON as text: ``ensure_ascii=False`` keeps accents readable but leaves DEL, C1 and the
    bidi and line-separator characters raw; they are escaped here (only strings can hold them)."""
    return _JSON_UNSAFE.sub(_json_escape, json.dumps(data, indent=2, ensure_ascii=False)) + "\n"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _yaml(data: Any) -> str:
    """YAML as text: with ``allow_unicode`` PyYAML writes the bidi controls, NEL and the Unicode
    line separators raw; if any is there, the document is written with every non-ASCII escaped."""
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if _CONTROL_IN_TEXT.search(text) is None:
        return text
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=False)


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
