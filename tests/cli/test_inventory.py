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
