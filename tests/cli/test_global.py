"""Global behaviour: exit codes, streams, colours, logs, version."""

from __future__ import annotations

import json
import re


def test_version(opsctl):
    result = opsctl("--version")
    assert result.code == 0 and re.fullmatch(r"opsctl \d+\.\d+\.\d+\n", result.stdout)


def test_python_dash_m_works(opsctl):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "opsctl", "-o", "json", "tiers"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [t["tier"] for t in json.loads(proc.stdout)] == [0, 1, 2, 3]


def test_unknown_command_and_bad_option_exit_2(opsctl):
    assert opsctl("nonsense").code == 2
    result = opsctl("-o", "xml", "services")
    assert result.code == 2 and "xml" in result.stderr
    result = opsctl("services", env={"OPSCTL_OUTPUT": "xml"})
    assert result.code == 2


def test_no_color_means_no_escape_codes(opsctl):
    for args, env in ((("--no-color", "services"), {}), (("services",), {"NO_COLOR": "1"})):
        result = opsctl(*args, env={**env, "FORCE_COLOR": "1"})
        assert result.code == 0
        assert "\x1b[" not in result.stdout


def test_json_logs_on_stderr_keep_stdout_clean(opsctl):
    result = opsctl("--log-format", "json", "-vv", "-o", "json", "config", "show", "auth")
    assert result.code == 0, result.stderr
    json.loads(result.stdout)  # data only
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines, "expected log lines on stderr"
    for entry in lines:
        assert {"timestamp", "level", "service", "trace_id", "span_id", "message"} <= set(entry)
    assert len({e["trace_id"] for e in lines}) == 1


def test_log_format_from_environment(opsctl):
    result = opsctl("-v", "services", env={"OPSCTL_LOG_FORMAT": "json"})
    assert result.code == 0
    assert all(json.loads(line)["trace_id"] for line in result.stderr.splitlines() if line.strip())


def test_internal_errors_have_no_traceback_unless_debug(opsctl, tmp_path):
    # a config path that is a directory is a usage error, not a crash
    result = opsctl("-c", str(tmp_path), "services")
    assert result.code == 2 and "cannot read config" in result.stderr
    assert "Traceback" not in result.stderr


def test_global_options_may_follow_the_command(opsctl):
    result = opsctl("services", "--tier", "0", "-o", "json")
    assert result.code == 0, result.stderr
    assert [s["name"] for s in result.json()] == ["auth", "billing"]
    result = opsctl("incident", "declare", "auth", "--sev", "1", "--title", "x", "--dry-run", "--output=json")
    assert result.code == 0, result.stderr
    assert result.json()["dry_run"] is True
