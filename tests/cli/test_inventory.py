"""`opsctl services` and `opsctl tiers` on the example config and the embedded defaults."""

from __future__ import annotations

import yaml


def test_services_json_on_embedded_defaults(opsctl):
    result = opsctl("-o", "json", "services")
    assert result.code == 0, result.stderr
    services = result.json()
    assert isinstance(services, list)
    by_name = {s["name"]: s for s in services}
    assert {"auth", "billing", "api", "signaling", "jobs", "admin"} <= set(by_name)
    assert by_name["auth"]["tier"] == 0 and by_name["auth"]["owner"] == "identity"
    assert by_name["billing"]["sla"] == {"availability": 99.99, "p95_latency_ms": 200, "rpo": "0m", "rto": "15m"}
    assert by_name["jobs"]["sla"]["p95_latency_ms"] is None
    # sorted by tier, then name
    assert [s["tier"] for s in services] == sorted(s["tier"] for s in services)


def test_services_filtered_by_tier(opsctl, example_config):
    result = opsctl("--config", str(example_config), "-o", "json", "services", "--tier", "1")
    assert result.code == 0, result.stderr
    assert sorted(s["name"] for s in result.json()) == ["api", "signaling"]


def test_services_table_for_people(opsctl, example_config):
    result = opsctl("--config", str(example_config), "services")
    assert result.code == 0
    assert "NAME" in result.stdout and "billing" in result.stdout and "99.99%" in result.stdout
    assert result.stderr == ""


def test_output_format_from_environment(opsctl, example_config):
    result = opsctl("services", env={"OPSCTL_OUTPUT": "yaml", "OPSCTL_CONFIG": str(example_config)})
    assert result.code == 0
    data = yaml.safe_load(result.stdout)
    assert data[0]["name"] == "auth"


def test_tiers_with_override(opsctl, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "tiers:\n  1: {rto: 30m}\n  4: {availability: 95, rpo: 48h, rto: 3d, description: lab}\n"
        "services:\n  - {name: lab, tier: 4, owner: research}\n"
    )
    result = opsctl("-c", str(config), "-o", "json", "tiers")
    assert result.code == 0, result.stderr
    tiers = {t["tier"]: t for t in result.json()}
    assert tiers[0]["rto"] == "15m" and tiers[0]["overridden"] is False
    assert tiers[1]["rto"] == "30m" and tiers[1]["rpo"] == "5m" and tiers[1]["overridden"] is True
    assert tiers[4]["rto"] == "3d" and tiers[4]["services"] == ["lab"]
    assert tiers[3]["rpo"] == "24h"


def test_unknown_service_suggests(opsctl, example_config):
    result = opsctl("-c", str(example_config), "config", "show", "auht")
    assert result.code == 2
    assert "unknown service 'auht'" in result.stderr and "did you mean auth" in result.stderr
    assert "Traceback" not in result.stderr


def fields(stdout: str) -> list[list[str]]:
    assert stdout.endswith("\n")
    return [line.split("\t") for line in stdout[:-1].split("\n")]


def test_services_in_a_pipe_are_one_field_per_column(opsctl, example_config):
    result = opsctl("--config", str(example_config), "services")  # stdout is a pipe here
    assert result.code == 0, result.stderr
    rows = fields(result.stdout)
    assert rows[0] == ["NAME", "TIER", "OWNER", "AVAIL", "P95", "RPO", "RTO", "DESCRIPTION"]
    assert all(len(row) == 8 for row in rows)
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["billing"][:7] == ["billing", "0", "payments", "99.99%", "200ms", "0m", "15m"]
    assert by_name["jobs"][4] == "-"
    # awk '{print $5}': every value cell is one word and free text comes last
    assert [line.split()[4] for line in result.stdout.splitlines()] == [row[4] for row in rows]


def test_tiers_in_a_pipe_are_one_field_per_column(opsctl, example_config):
    result = opsctl("--config", str(example_config), "tiers")
    assert result.code == 0, result.stderr
    rows = fields(result.stdout)
    assert rows[0] == ["TIER", "AVAIL", "P95", "RPO", "RTO", "SERVICES", "DESCRIPTION"]
    assert rows[1][:6] == ["0", "99.99%", "<200ms", "0m", "15m", "auth,billing"]
    assert [line.split()[:6] for line in result.stdout.splitlines()] == [row[:6] for row in rows]


def test_terminal_table_cells_hold_no_inner_spaces(opsctl, example_config):
    result = opsctl("--config", str(example_config), "--no-color", "tiers", env={"FORCE_COLOR": "1"})
    assert result.code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("0 "))
    assert line.split()[:6] == ["0", "99.99%", "<200ms", "0m", "15m", "auth,billing"]


def test_hostile_text_in_config_cannot_drive_the_terminal(opsctl, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        'services:\n  - {name: lab, tier: 3, owner: research, description: "lab\\e[2J\\e[Hall clear\\nerror: forged"}\n'
    )
    for env in ({}, {"FORCE_COLOR": "1"}):
        result = opsctl("-c", str(config), "--no-color", "services", env=env)
        assert result.code == 0, result.stderr
        assert "\x1b" not in result.stdout and "lab\\x1b[2J\\x1b[Hall" in result.stdout
        assert not any(line.startswith("error") for line in result.stdout.splitlines())
    assert fields(opsctl("-c", str(config), "services").stdout)[1][7] == "lab\\x1b[2J\\x1b[Hall clear\\nerror: forged"
