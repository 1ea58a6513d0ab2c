"""Progress of a running operation: lines in a pipe, JSON lines with --log-format json, a live
display on a terminal — always on stderr, with stdout left clean for -o json."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SLOW_OP = REPO / "tests" / "fakes" / "slow_op.py"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _argv(world: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(SLOW_OP),
        *extra,
        "-o",
        "json",
        "test-op",
        "api",
        str(world),
        "--steps",
        "3",
        "--pause",
        "0",
    ]


def test_in_a_pipe_progress_is_plain_lines_on_stderr(tmp_path):
    world = tmp_path / "w"
    world.mkdir()
    proc = subprocess.run(_argv(world), capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"] == "succeeded"  # stdout: the data only
    for n in (1, 2, 3):
        assert f"[{n}/3] step {n - 1}" in proc.stderr


def test_with_json_logs_progress_is_json_lines(tmp_path):
    world = tmp_path / "w"
    world.mkdir()
    proc = subprocess.run(_argv(world, "--log-format", "json"), capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    entries = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    progress = [e for e in entries if e.get("event") == "progress"]
    assert [e["progress_step"] for e in progress] == [1, 2, 3]
    assert all(e["service"] == "api" and e["trace_id"] for e in progress)
    assert all(line.startswith("{") for line in proc.stderr.splitlines() if "applied" not in line)


def test_on_a_terminal_the_live_display_stays_on_stderr_and_stdout_json_parses(tmp_path):
    world = tmp_path / "w"
    world.mkdir()
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*_argv(world, "-v"), "--pause", "0.3"],
        stdout=subprocess.PIPE, stderr=secondary, text=True, env={**_env(), "COLUMNS": "120", "TERM": "xterm"},
    )  # fmt: skip
    os.close(secondary)
    captured = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        captured += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(main)
    assert proc.returncode == 0, captured.decode(errors="replace")
    assert json.loads(out)["state"] == "succeeded"  # the live display never wrote to stdout
    screen = captured.decode(errors="replace")
    assert "step 2" in screen and "\x1b[" in screen  # drawn in place with cursor control
    assert "applied 1" in screen  # other output printed above the display, not lost
