"""`opsctl incident …` through the real entry point on the embedded defaults (local backend)."""

from __future__ import annotations

import json
import os
import signal
import subprocess

from tests.cli.conftest import OPSCTL

KEYS = {
    "id", "service", "sev", "title", "status", "urgency", "paged", "backend", "incident_key", "declared_at",
    "acknowledged_at", "resolved_at", "ack_due_at", "next_update_due_at", "postmortem_due_at",
}  # fmt: skip


def declare(opsctl, *args: str):
    return opsctl("-o", "json", "incident", "declare", *args)


def test_quick_start_lifecycle_on_embedded_defaults(opsctl, tmp_path):
    result = declare(opsctl, "auth", "--sev", "1", "--title", "login fails", "--details", "500s on /login")
    assert result.code == 0, result.stderr
    incident = result.json()
    assert KEYS <= set(incident)
    assert incident["status"] == "triggered" and incident["backend"] == "local" and incident["paged"] is False
    assert incident["declared_at"].endswith("+00:00") and incident["resolved_at"] is None
    assert result.stderr.count("NOBODY WAS PAGED") == 1 and "no PagerDuty token is configured" in result.stderr
    ident = incident["id"]

    table = opsctl("incident", "declare", "auth", "--sev", "1", "--title", "login fails")
    assert table.code == 0 and "already open" in table.stderr and ident in table.stdout
    assert "NOBODY WAS PAGED" not in table.stderr  # said once, when it happened

    listed = opsctl("-o", "json", "incident", "list").json()
    assert [i["id"] for i in listed] == [ident] and listed[0]["ack_in"]

    for args in (
        ("ack", ident),
        ("update", ident, "-m", "rolled back", "--status", "monitoring"),
        ("resolve", ident, "-r", "rollback"),
    ):
        step = opsctl("-o", "json", "incident", *args)
        assert step.code == 0, step.stderr
        assert step.json()["id"] == ident and "paged" not in step.stderr.lower()
    assert step.json()["status"] == "resolved" and step.json()["postmortem_due_at"]

    shown = opsctl("-o", "json", "incident", "show", ident).json()
    assert [e["event"] for e in shown["timeline"]] == [
        "declared",
        "recorded",
        "acknowledged",
        "status_update",
        "resolved",
    ]
    assert opsctl("-o", "json", "incident", "list").json() == []
    assert len(opsctl("-o", "json", "incident", "list", "--all").json()) == 1

    markdown = opsctl("incident", "postmortem", ident)
    assert markdown.code == 0 and markdown.stdout.startswith("# Post-mortem: login fails")
    out = tmp_path / "pm.md"
    assert opsctl("incident", "postmortem", ident, "--out", str(out)).code == 0
    assert out.read_text() == markdown.stdout
    assert opsctl("incident", "postmortem", ident, "--out", str(out)).code == 3  # exists: refuse
    assert opsctl("--yes", "incident", "postmortem", ident, "--out", str(out)).code == 0

    audit = opsctl("-o", "json", "audit", "--service", "auth").json()
    outcomes = [a for a in audit if a["outcome"] != "started"]
    assert [a["command"] for a in outcomes] == [
        "incident declare", "incident declare", "incident ack", "incident update", "incident resolve",
    ]  # fmt: skip
    assert all(a["outcome"] == "ok" and a["run_id"] for a in outcomes)
    # a 'started' record precedes every change (the repeated declare changed nothing)
    assert [a["command"] for a in audit if a["outcome"] == "started"] == [
        "incident declare", "incident ack", "incident update", "incident resolve",
    ]  # fmt: skip
    runs = opsctl("-o", "json", "runs", "--all", "--service", "auth").json()
    assert len(runs) == 5 and {r["state"] for r in runs} == {"succeeded"}


def test_table_declare_prints_checklist(opsctl):
    result = opsctl("incident", "declare", "billing", "--sev", "2", "--title", "checkout slow")
    assert result.code == 0
    assert "Response checklist (SEV-2)" in result.stderr and "Mitigate first" in result.stderr
    ident = next(w for w in result.stdout.split() if w.startswith("INC-"))
    assert f"opsctl incident ack {ident}" in result.stderr and "incident ack ID" not in result.stderr


def test_bad_input_exit_codes(opsctl):
    assert opsctl("incident", "declare", "auth", "--sev", "5", "--title", "x").code == 2
    empty = opsctl("incident", "declare", "auth", "--sev", "1", "--title", "  ")
    assert empty.code == 2 and "--title is empty" in empty.stderr
    unknown = opsctl("incident", "declare", "auht", "--sev", "1", "--title", "x")
    assert unknown.code == 2 and "did you mean auth" in unknown.stderr
    missing = opsctl("incident", "ack", "INC-NOPE")
    assert missing.code == 2 and "no incident 'INC-NOPE'" in missing.stderr
    ident = declare(opsctl, "jobs", "--sev", "2", "--title", "stuck").json()["id"]
    bad_status = opsctl("incident", "update", ident, "-m", "x", "--status", "panicking")
    assert bad_status.code == 2 and "monitoring" in bad_status.stderr
    assert opsctl("incident", "resolve", ident).code == 0
    refused = opsctl("incident", "ack", ident)
    assert refused.code == 3 and "already resolved" in refused.stderr
    for result in (empty, unknown, missing, bad_status, refused):
        assert "Traceback" not in result.stderr


def test_dry_run_changes_nothing_and_is_audited(opsctl):
    result = opsctl("--dry-run", "-o", "json", "incident", "declare", "auth", "--sev", "1", "--title", "db down")
    assert result.code == 0 and result.json()["dry_run"] is True
    assert result.json()["id"] is None and [s["name"] for s in result.json()["plan"]] == ["record"]
    assert "NOBODY WAS PAGED" not in result.stderr and "nothing recorded, nobody paged" in result.stderr
    assert opsctl("-o", "json", "incident", "list", "--all").json() == []
    assert opsctl("-o", "json", "runs", "--all").json() == []
    [entry] = opsctl("-o", "json", "audit").json()
    assert entry["dry_run"] is True and entry["command"] == "incident declare"


def test_dry_run_table_shows_the_plan_not_a_made_up_incident(opsctl):
    result = opsctl("--dry-run", "incident", "declare", "auth", "--sev", "1", "--title", "db down")
    assert result.code == 0, result.stderr
    assert "INC-" not in result.stdout and "record the SEV-1 incident" in result.stdout
    audit = opsctl("audit")
    header = audit.stdout.splitlines()[0].split("\t")
    row = audit.stdout.splitlines()[1].split("\t")
    assert row[header.index("DRY RUN")] == "DRY-RUN"


def test_sev4_ticket(opsctl):
    result = declare(opsctl, "admin", "--sev", "4", "--title", "logo off by 2px")
    ticket = result.json()
    assert (ticket["status"], ticket["urgency"], ticket["paged"], ticket["ack_due_at"]) == (
        "ticket",
        "none",
        False,
        None,
    )
    assert "NOBODY WAS PAGED" not in result.stderr and "a ticket" in result.stderr
    table = opsctl("incident", "declare", "admin", "--sev", "4", "--title", "favicon missing")
    assert "none urgency" not in table.stdout and "SEV-4 (a ticket, no page)" in table.stdout


def test_watch_in_a_pipe_prints_snapshots_and_exits_cleanly_on_ctrl_c(opsctl, isolated):
    declare(opsctl, "auth", "--sev", "1", "--title", "watch me")
    proc = subprocess.Popen(
        [str(OPSCTL), "-o", "json", "incident", "watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # one JSON document per line, in a pipe
    second = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert first["open"] == 1 and first["incidents"][0]["title"] == "watch me" and second["at"]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_watch_once_and_the_board_sorts_by_severity(opsctl):
    for sev in ("4", "2", "1", "3"):
        assert declare(opsctl, "api", "--sev", sev, "--title", f"sev {sev} thing").code == 0
    once = opsctl("-o", "json", "incident", "watch", "--once")
    assert once.code == 0, once.stderr
    snap = json.loads(once.stdout)
    assert [i["sev"] for i in snap["incidents"]] == [1, 2, 3, 4]
    table = opsctl("incident", "watch", "--once")
    assert table.code == 0 and "open incidents: 4" in table.stdout
    assert [line.split("\t")[3] for line in table.stdout.splitlines()[2:]] == ["SEV-1", "SEV-2", "SEV-3", "SEV-4"]
