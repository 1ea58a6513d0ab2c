"""The config model: built-in tiers, overrides, environments, policy, discovery."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsctl.configfile import Source, discover, embedded_text, parse
from opsctl.errors import ConfigError
from opsctl.settings import BUILTIN_TIERS, Config


def test_builtin_tiers_are_the_manuals_table():
    assert {n: (t.availability, t.p95_latency_ms, t.rpo, t.rto) for n, t in BUILTIN_TIERS.items()} == {
        0: (99.99, 200, timedelta(0), timedelta(minutes=15)),
        1: (99.9, 500, timedelta(minutes=5), timedelta(hours=1)),
        2: (99.5, None, timedelta(hours=1), timedelta(hours=4)),
        3: (99.0, 1000, timedelta(hours=24), timedelta(hours=8)),
    }


def test_embedded_example_parses_and_has_the_topology():
    config = parse(embedded_text(), "<embedded>")
    tiers = {s.name: s.tier for s in config.services}
    assert tiers == {"auth": 0, "billing": 0, "api": 1, "signaling": 1, "jobs": 2, "admin": 3}
    assert config.integrations.pagerduty.token is None  # local incident backend out of the box


def test_tier_override_merges_field_by_field():
    config = parse("tiers:\n  0: {rto: 10m}\n", "c")
    tier0 = config.effective_tiers()[0]
    assert tier0.rto == timedelta(minutes=10) and tier0.rpo == timedelta(0) and tier0.availability == 99.99


def test_environment_override_replaces_blocks():
    config = parse(
        "services:\n"
        "  - name: a\n    tier: 1\n    owner: t\n    region: eu-central-1\n"
        "    kubernetes: {context: prod, namespace: a, deployment: a}\n"
        "    environments:\n      staging: {kubernetes: {context: stg, deployment: a-stg}}\n",
        "c",
    )
    service = config.services[0]
    assert service.in_env("production").kubernetes.context == "prod"
    staging = service.in_env("staging")
    assert staging.kubernetes.context == "stg" and staging.kubernetes.namespace == "default"
    assert staging.region == "eu-central-1"


@pytest.mark.parametrize(
    ("tier", "env", "expected"),
    [(0, "staging", True), (1, "production", True), (2, "staging", False), (3, "production", True)],
)
def test_default_confirmation_policy(tier, env, expected):
    assert Config().policy.needs_confirmation(tier, env) is expected


def test_confirmation_rule_needs_every_field_to_match():
    config = parse("policy:\n  confirm:\n    - {tiers: [0, 1], environments: [production]}\n", "c")
    assert config.policy.needs_confirmation(0, "production")
    assert not config.policy.needs_confirmation(0, "staging")
    assert not config.policy.needs_confirmation(2, "production")


def test_team_business_hours_fall_back_to_policy():
    config = parse(
        "policy: {business_hours: {timezone: Europe/Berlin}}\nteams:\n  a: {business_hours: {timezone: Asia/Tokyo}}\n  b: {}\n",
        "c",
    )
    assert config.business_hours("a").timezone == "Asia/Tokyo"
    assert config.business_hours("b").timezone == "Europe/Berlin"


def test_problems_are_sorted_by_line_and_all_reported():
    with pytest.raises(ConfigError) as info:
        parse("services:\n  - {name: B, tier: 1, owner: t}\n  - {name: ok, tier: x, owner: t}\n", "f.yaml")
    lines = info.value.lines()
    assert lines[0].startswith("f.yaml:2: services[0].name:") or lines[0].startswith("f.yaml:2: services.B.name:")
    assert lines[1].startswith("f.yaml:3: services.ok.tier:")


def test_discover_explicit_beats_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSCTL_CONFIG", str(tmp_path / "env.yaml"))
    assert discover("x.yaml") == Source(path=__import__("pathlib").Path("x.yaml"), reason="--config")
    assert discover(None).reason == "$OPSCTL_CONFIG"
    monkeypatch.delenv("OPSCTL_CONFIG")
    assert discover(None).reason == "embedded"
