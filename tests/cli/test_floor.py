"""What a new user and an adversarial probe met, through the real entry point: environments,
help, logs, Ctrl-C, escape codes, hostile arguments, ids."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.cli.conftest import OPSCTL
from tests.conftest import EXAMPLE, pagerduty_config


def declare(opsctl, *args: str, env: dict[str, str] | None = None):
    return opsctl("-o", "json", "incident", "declare", *args, env=env)


# ------------------------------------------------------------------ environments (B.2)


@pytest.mark.parametrize(
    "args",
    [
        ("incident", "list"),
        ("services",),
        ("tiers",),
        ("locks",),
        ("audit",),
        ("runs",),
        ("incident", "declare", "api", "--sev", "2", "--title", "x"),
    ],
)
def test_an_unknown_environment_is_refused_everywhere_with_a_suggestion(opsctl, args):
    result = opsctl("-e", "prodution", *args)
    assert result.code == 2, (args, result.stdout, result.stderr)
    assert "unknown environment 'prodution'" in result.stderr and "did you mean production" in result.stderr
    assert result.stdout == ""
    from_env = opsctl(*args, env={"OPSCTL_ENV": "stagin"})
    assert from_env.code == 2 and "did you mean staging" in from_env.stderr


def test_incident_lists_show_and_filter_the_environment(opsctl):
    prod = declare(opsctl, "api", "--sev", "2", "--title", "prod thing").json()
    staging = declare(opsctl, "-e", "staging", "api", "--sev", "2", "--title", "staging thing").json()
    assert (prod["env"], staging["env"]) == ("production", "staging")
    everything = opsctl("-o", "json", "incident", "list").json()
    assert {i["env"] for i in everything} == {"production", "staging"}
    only = opsctl("-e", "staging", "-o", "json", "incident", "list").json()
    assert [i["id"] for i in only] == [staging["id"]]
    table = opsctl("-e", "staging", "incident", "list")
    header = table.stdout.splitlines()[0].split("\t")
    rows = [line.split("\t") for line in table.stdout.splitlines()[1:]]
    assert "ENV" in header and [r[header.index("ENV")] for r in rows] == ["staging"]
    audit = opsctl("-e", "staging", "-o", "json", "audit").json()
    assert audit and {a["env"] for a in audit} == {"staging"}
    runs = opsctl("-e", "staging", "-o", "json", "runs", "--all").json()
    assert len(runs) == 1 and runs[0]["env"] == "staging"


# ------------------------------------------------------------------ help and options (B.10)


def _commands():
    import typer

    from opsctl.cli import app

    root = typer.main.get_command(app)
    stack = [((), root)]
    while stack:
        path, command = stack.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(((*path, name), sub))


def test_help_shows_no_type_placeholders_on_flags(opsctl):
    for path, _command in _commands():
        result = opsctl(*path, "--help")
        assert result.code == 0, path
        assert "<bool>" not in result.stdout, path
        assert not re.search(r"-v, --verbose\s+<int>", result.stdout), path


def test_a_short_option_means_one_thing_across_all_commands():
    meaning: dict[str, set[str]] = {}
    for _path, command in _commands():
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--")]
            for short in (o for o in [*param.opts, *param.secondary_opts] if re.fullmatch(r"-[a-zA-Z]", o)):
                meaning.setdefault(short, set()).update(longs)
    clashes = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert clashes == {}


def test_verbose_counts(opsctl):
    assert opsctl("-vv", "services").code == 0
    assert opsctl("-v", "2", "services").code == 2  # a count, not a value: clear usage error


# ------------------------------------------------------------------ logs (B.13)


def test_json_log_lines_name_the_service_worked_on(opsctl):
    result = opsctl(
        "--log-format", "json", "-v", "-o", "json", "incident", "declare", "billing", "--sev", "3", "--title", "x"
    )
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    audit_lines = [entry for entry in lines if entry["logger"] == "opsctl.audit"]
    assert audit_lines and all(entry["service"] == "billing" for entry in audit_lines)


# ------------------------------------------------------------------ Ctrl-C during a slow page (C.1)


def test_ctrl_c_during_a_slow_declare_exits_130_and_says_nobody_was_paged(opsctl, pd, tmp_path):
    config = tmp_path / "opsctl.yaml"
    config.write_text(pagerduty_config(EXAMPLE.read_text(), pd, tmp_path / "pd-token", timeout="60s"))
    pd.inject_status(500, path="/incidents", method="POST", times=50)  # PagerDuty struggling: retries with backoff
    proc = subprocess.Popen(
        [str(OPSCTL), "-c", str(config), "-o", "json", "incident", "declare", "auth", "--sev", "1", "--title", "db down"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not pd.requests_to("POST", "/incidents"):
        assert time.monotonic() < deadline and proc.poll() is None, "the page was never attempted"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "NOBODY WAS PAGED" in err and "interrupted" in err and "Traceback" not in err
    recorded = json.loads(out)
    assert recorded["delivery"] == "pending" and recorded["paged"] is False
    audit = opsctl("-c", str(config), "-o", "json", "audit").json()
    assert [a["outcome"] for a in audit] == ["started", "interrupted"] and audit[-1]["exit_code"] == 130
    assert opsctl("-c", str(config), "-o", "json", "locks").json() == []
    pd.clear_faults()
    synced = opsctl("-c", str(config), "-o", "json", "incident", "sync")
    assert synced.code == 0, synced.stderr
    assert len(pd.incidents()) == 1


# ------------------------------------------------------------------ escape codes (C.6)

EVIL = "\x1b[2J\x1b[HFAKE: all clear\nerror: forged line\x07"


def test_escape_codes_in_titles_never_reach_the_terminal_raw(opsctl, tmp_path):
    created = declare(opsctl, "api", "--sev", "2", "--title", EVIL, "--details", EVIL)
    assert created.code == 0, created.stderr
    ident = created.json()["id"]
    assert created.json()["title"] == EVIL.strip()  # data keeps the text; JSON escapes it
    for args in (
        ("incident", "list"),
        ("incident", "show", ident),
        ("audit",),
        ("incident", "postmortem", ident),
        ("runs", "--all"),
    ):
        result = opsctl(*args, env={"FORCE_COLOR": "1"} if args[0] == "audit" else None)
        assert result.code == 0, (args, result.stderr)
        for stream in (result.stdout, result.stderr):
            assert "\x1b[2J" not in stream and "\x07" not in stream, args
            if args[1:2] != ("postmortem",):  # Markdown keeps the details' own line breaks
                assert "\nerror: forged line" not in stream, args
    markdown = opsctl("incident", "postmortem", ident).stdout
    assert markdown.splitlines()[0] == "# Post-mortem: \\x1b[2J\\x1b[HFAKE: all clear\\nerror: forged line\\x07"
    shown = opsctl("incident", "show", ident).stdout
    assert "\\x1b[2J" in shown


def test_a_newline_in_a_config_value_cannot_forge_error_lines(opsctl, tmp_path):
    config = tmp_path / "opsctl.yaml"
    config.write_text('version: 1\nservices:\n  - {name: "ok\\nerror: all fine", tier: 1, owner: "x\\u001b[2J"}\n')
    result = opsctl("config", "validate", str(config))
    assert result.code == 2
    assert all(not line.startswith("error: all fine") for line in result.stderr.splitlines())
    assert "\x1b" not in result.stderr


# ------------------------------------------------------------------ hostile arguments (C.9)


def test_an_invalid_utf8_title_is_refused_and_audited(opsctl):
    proc = subprocess.run(
        [str(OPSCTL), "incident", "declare", "api", "--sev", "2", "--title", b"caf\xe9 down"],
        capture_output=True, env=os.environ.copy(), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert b"--title is not valid UTF-8" in proc.stderr and b"Traceback" not in proc.stderr
    [entry] = opsctl("-o", "json", "audit").json()
    assert entry["outcome"] == "usage" and entry["args"]["title"].startswith("caf")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("audit", "--since", "999999999d"), "--since"),
        (("audit", "--since", "2026-11-27 02:41"), "no zone"),
        (("audit", "--limit", "99999999999999999999"), "--limit"),
        (("incident", "declare", "api", "--sev", "2", "--title", "x" * 100_000), "limit is 1,024"),
        (("runs", "show", "RUN-NOPE"), "no run"),
    ],
)
def test_absurd_arguments_get_one_line_and_exit_2(opsctl, args, says):
    started = time.monotonic()
    result = opsctl(*args)
    assert result.code == 2, (args, result.stderr)
    assert says in result.stderr and "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert time.monotonic() - started < 30  # a hang guard: a 100 KB title used to take 112 s


def test_debug_shows_the_traceback_but_keeps_the_exit_code(opsctl):
    result = opsctl("incident", "declare", "nope", "--sev", "2", "--title", "x", env={"OPSCTL_DEBUG": "1"})
    assert result.code == 2 and "Traceback" in result.stderr and "unknown service 'nope'" in result.stderr


def test_ctrl_c_at_the_unlock_prompt_is_audited_as_interrupted(opsctl, tmp_path):
    import pty

    # a dead holder's lock on this host: unlock asks before breaking it
    from datetime import UTC, datetime, timedelta

    from opsctl.context import Context
    from opsctl.state.base import LockInfo

    ctx = Context()
    now = datetime.now(UTC)
    ctx.locks.acquire(
        LockInfo(
            "deploy/api@production",
            "t",
            "alice",
            os.uname().nodename,
            999999,
            "deploy canary",
            now,
            now + timedelta(minutes=5),
        )
    )
    ctx.close()
    pid, fd = pty.fork()
    if pid == 0:  # the child: opsctl on a terminal
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(str(OPSCTL), [str(OPSCTL), "unlock", "deploy", "api"], os.environ.copy())
    seen = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in seen:
        assert time.monotonic() < deadline, seen
        try:
            seen += os.read(fd, 1024)
        except OSError:
            break
    os.kill(pid, signal.SIGINT)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130, seen
    entries = opsctl("-o", "json", "audit", "--service", "api").json()
    unlock = [e for e in entries if e["command"] == "unlock"]
    assert [(e["outcome"], e["exit_code"]) for e in unlock] == [("interrupted", 130)]
    assert "internal error" not in unlock[0]["message"]


# ------------------------------------------------------------------ ids (C.10)


def test_incident_and_run_ids_are_long_enough_and_typeable(opsctl):
    created = declare(opsctl, "api", "--sev", "2", "--title", "ids").json()
    assert re.fullmatch(r"INC-[0-9A-HJKMNP-TV-Z]{8}", created["id"])
    lower = opsctl("-o", "json", "incident", "show", created["id"].lower())
    assert lower.code == 0 and lower.json()["id"] == created["id"]
    bare = opsctl("-o", "json", "incident", "show", created["id"][4:])
    assert bare.code == 0 and bare.json()["id"] == created["id"]
    [run] = opsctl("-o", "json", "runs", "--all").json()
    assert re.fullmatch(r"RUN-[0-9A-HJKMNP-TV-Z]{8}", run["id"])


# ------------------------------------------------------------------ post-mortem files (C.8, C.9)


def test_postmortem_out_never_follows_a_symlink_silently(opsctl, tmp_path):
    ident = declare(opsctl, "api", "--sev", "2", "--title", "pm").json()["id"]
    target = tmp_path / "elsewhere" / "created.md"
    link = tmp_path / "pm.md"
    link.symlink_to(target)  # dangling: following it would create a file elsewhere
    refused = opsctl("incident", "postmortem", ident, "--out", str(link))
    assert refused.code == 3 and "symlink" in refused.stderr and not target.exists()
    replaced = opsctl("--yes", "incident", "postmortem", ident, "--out", str(link))
    assert replaced.code == 0, replaced.stderr
    assert not link.is_symlink() and link.read_text().startswith("# Post-mortem: pm") and not target.exists()


@pytest.mark.parametrize(
    ("where", "code", "says"), [("missing/pm.md", 2, "does not exist"), ("/dev/full", 4, "disk full")]
)
def test_postmortem_out_failures_are_clear(opsctl, tmp_path, where, code, says):
    ident = declare(opsctl, "api", "--sev", "2", "--title", "pm").json()["id"]
    path = where if where.startswith("/") else str(tmp_path / where)
    result = opsctl("--yes", "incident", "postmortem", ident, "--out", path)
    assert result.code == code, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")  # the device is never replaced


def test_the_timeline_never_shows_none(opsctl):
    ident = declare(opsctl, "api", "--sev", "2", "--title", "no commander").json()["id"]
    shown = opsctl("incident", "show", ident)
    assert shown.code == 0 and "=None" not in shown.stdout and "None" not in shown.stdout
