"""Human output cannot drive the terminal; pipes get one field per column; JSON and YAML stay safe."""

from __future__ import annotations

import io
import json
import re

import pytest
import yaml

from opsctl import redact
from opsctl.output import Column, Output, plain_table, printable

HOSTILE = (
    "ok\x1b[2J\x1b[HFAKE: all clear\nerror: forged line\r\t\x07\x00\x7f\x85\x9b31m\u2028\u2029\u202eevil\u2066\u200f"
)
# Anything a terminal acts on instead of showing: C0, DEL, C1, line separators, bidi controls.
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x1b", "\\x1b"),
        ("\n", "\\n"),
        ("\t", "\\t"),
        ("\r", "\\r"),
        ("\x00", "\\x00"),
        ("\x07", "\\x07"),
        ("\x7f", "\\x7f"),
        ("\x85", "\\x85"),
        ("\x9b", "\\x9b"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
        ("\u202e", "\\u202e"),
        ("\u2066", "\\u2066"),
        ("\u200f", "\\u200f"),
        ("\u061c", "\\u061c"),
    ],
)
def test_printable_shows_each_control_character_escaped(char, shown):
    assert printable(f"a{char}b") == f"a{shown}b"


def test_printable_keeps_ordinary_text_and_multiline_keeps_lines_and_tabs():
    text = "café 東京 🚀 ~!@#$%^&*() \\x1b stays as typed"
    assert printable(text) is text
    assert printable("a\tb\nc\x1b[0m\r\n", multiline=True) == "a\tb\nc\\x1b[0m\\r\n"


@pytest.mark.timeout(30)
def test_printable_is_linear_on_a_megabyte_of_controls():
    text = "\x1b\u202e" * 500_000
    shown = printable(text)
    assert len(shown) == 500_000 * 10 and not RAW_CONTROL.search(shown)


def outputs(fmt: str = "table", terminal: bool = True) -> tuple[Output, io.StringIO, io.StringIO]:
    out, err = (Terminal(), Terminal()) if terminal else (io.StringIO(), io.StringIO())
    return Output(fmt, no_color=True, stdout=out, stderr=err), out, err


def test_messages_cannot_forge_lines_or_drive_the_terminal():
    output, _, err = outputs()
    output.info(HOSTILE)
    output.success(HOSTILE)
    output.warn(HOSTILE)
    output.error(HOSTILE)
    lines = err.getvalue().splitlines()
    assert len(lines) == 4 and lines[3].startswith("error: ok\\x1b[2J")
    assert not RAW_CONTROL.search(err.getvalue().replace("\n", ""))
    assert all("FAKE: all clear\\nerror: forged line\\r\\t" in line for line in lines)


def test_terminal_table_and_details_show_hostile_cells_escaped():
    output, out, _ = outputs()
    output.data([{"name": "auth", "title": HOSTILE}], columns=[Column("name"), Column("title")], title="[red]x\x1b")
    output.data({"title": HOSTILE, "[bold]key\n": "v"}, title="t\x1b")
    text = out.getvalue()
    assert not RAW_CONTROL.search(text.replace("\n", ""))
    assert "[red]x\\x1b" in text and "[bold]key\\n" in text  # rich markup in data is shown, not applied
    assert printable(HOSTILE) in text  # one cell, one line (COLUMNS=200)


def test_table_building_block_redacts_and_escapes_raw_rows():
    redact.register("board-secret-1")
    output, out, _ = outputs()
    table = output.table([{"title": "leak board-secret-1 \x1b[2J"}], [Column("title")], title="board\x1b")
    output.out.print(table)
    text = out.getvalue()
    assert "board-secret-1" not in text and "***" in text and "\\x1b[2J" in text and "\x1b" not in text


def test_pipes_get_one_tab_separated_field_per_column():
    output, out, _ = outputs(terminal=False)
    rows = [
        {"name": "a b", "p95": "200 ms", "note": "x\ty\nz"},
        {"name": "", "p95": None, "note": HOSTILE},
    ]
    output.data(rows, columns=[Column("name"), Column("p95", "P95 LATENCY"), Column("note")])
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 4
    fields = [line.split("\t") for line in lines[:-1]]
    assert fields[0] == ["NAME", "P95 LATENCY", "NOTE"]
    assert fields[1] == ["a b", "200 ms", "x\\ty\\nz"]
    assert fields[2][:2] == ["-", "-"] and not RAW_CONTROL.search(fields[2][2])


def test_plain_table_of_no_rows_is_the_header():
    assert plain_table([], [Column("id"), Column("ack_in", "ACK DUE\n")]) == "ID\tACK DUE\\n\n"


def test_raw_text_keeps_lines_but_escapes_controls():
    output, out, _ = outputs("json", terminal=False)
    output.text("# Post-mortem: x\x1b[2J\n\n| a\t| b\r|\n")
    assert out.getvalue() == "# Post-mortem: x\\x1b[2J\n\n| a\t| b\\r|\n"


def test_scalars_are_escaped():
    output, out, _ = outputs()
    output.data("done\x1b[2J")
    assert out.getvalue() == "done\\x1b[2J\n"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_formats_keep_the_data_and_no_raw_control(fmt):
    output, out, _ = outputs(fmt, terminal=False)
    data = [{"title": HOSTILE, HOSTILE: 1, "plain": "café"}]
    output.data(data)
    text = out.getvalue()
    assert (json.loads(text) if fmt == "json" else yaml.safe_load(text)) == data
    assert not RAW_CONTROL.search(text.replace("\n", ""))


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_formats_keep_accents_readable(fmt):
    output, out, _ = outputs(fmt, terminal=False)
    output.data({"title": "café résumé"})
    assert "café résumé" in out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "yaml", "table"])
def test_every_format_masks_every_representation(fmt):
    secret = 'pw "quoted"\nnext'
    redact.register(secret)
    output, out, _ = outputs(fmt, terminal=False)
    output.data([{"msg": f"raw {secret}", "json": json.dumps(secret), "repr": repr(secret)}])
    text = out.getvalue()
    assert "quoted" not in text and "next" not in text and text.count("***") == 3


def test_json_lines_are_one_redacted_safe_document_per_line():
    redact.register("line-secret-1")
    output, out, _ = outputs("json", terminal=False)
    output.json_line({"title": HOSTILE, "note": "has line-secret-1"})
    output.json_line([1, 2])
    lines = out.getvalue().split("\n")
    assert len(lines) == 3 and lines[2] == ""
    assert json.loads(lines[0]) == {"title": HOSTILE, "note": "has ***"} and json.loads(lines[1]) == [1, 2]
    assert not RAW_CONTROL.search(out.getvalue().replace("\n", ""))


def test_messages_are_one_line_in_a_pipe_however_long():
    import io

    from opsctl.output import Output

    err = io.StringIO()
    out = Output("table", stdout=io.StringIO(), stderr=err)
    long = "NOBODY WAS PAGED for INC-XNCCQFEQ: no PagerDuty token is configured (local backend); " * 3
    out.warn(long)
    out.info(long)
    out.success(long)
    assert err.getvalue().count("\n") == 3
