"""`opsctl config validate|show`: every problem located, exit 2, no traceback."""

from __future__ import annotations

import json
import textwrap

import pytest


def write(tmp_path, text: str):
    path = tmp_path / "opsctl.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_validate_example_is_valid(opsctl, example_config):
    result = opsctl("config", "validate", str(example_config))
    assert result.code == 0, result.stderr
    assert "valid (6 services" in result.stderr


def test_validate_json_summary(opsctl, example_config):
    result = opsctl("-o", "json", "config", "validate", str(example_config))
    assert result.code == 0
    assert result.json()["valid"] is True and result.json()["services"] == 6


BAD = """\
    version: 1
    environments: [production]
    policy:
      business_hours: {timezone: Mars/Olympus}
      lock_ttl: 5 minutes
    services:
      - name: auth
        tier: 7
        owner: identity
        colour: blue
      - name: auth
        tier: high
        owner: identity
        kubernetes: {deployment: x, namespce: y}
        environments:
          qa: {region: x}
"""


def test_validate_reports_every_problem_with_line(opsctl, tmp_path):
    path = write(tmp_path, BAD)
    result = opsctl("config", "validate", str(path))
    assert result.code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    expected = [
        f"{path}:4: policy.business_hours.timezone: unknown time zone 'Mars/Olympus'",
        f"{path}:5: policy.lock_ttl: bad duration '5 minutes'",
        f"{path}:8: services.auth.tier: tier 7 does not exist",
        f"{path}:10: services.auth.colour: unknown key",
        f"{path}:11: services.auth.name: duplicate service name 'auth'",
        f"{path}:12: services.auth.tier: Input should be a valid integer",
        f"{path}:14: services.auth.kubernetes.namespce: unknown key",
        f"{path}:16: services.auth.environments.qa: environment 'qa' is not in environments",
    ]
    assert len(lines) == len(expected), result.stderr
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "services:\n  - name: a\n   tier: 1\n",
            ":3: YAML syntax error: did not find expected '-' indicator: check the indentation of this line",
        ),
        (
            "version: 1\ndescription: a: b\n",
            ":2: YAML syntax error: mapping values are not allowed in this context: probably the indentation",
        ),
        ("version: 1\nversion: 1\n", ":2: version: duplicate key"),
        (
            "services:\n  - name: auth\n    tier: 1\n    owner: t\n    tier: 2\n",
            ":5: services.auth.tier: duplicate key",
        ),
        ("", ": the config is empty (only comments or blank lines)"),
        ("# nothing but a comment\n\n", ": the config is empty (only comments or blank lines)"),
        (
            "policy:\n  business_hours: {start: '09:00', end: 18:00}\n",
            ':2: policy.business_hours.end: write "18:00" in quotes: YAML reads 18:00 unquoted as the number 1080',
        ),
        (
            "policy: {plaintext_env_secrets: refuse}\nstate:\n  url: env:OPSCTL_STATE_URL\n",
            ":3: state.url: an env: secret reference, refused by policy.plaintext_env_secrets: refuse",
        ),
        ("state:\n  url: postgresql://u@db/x?password=hunter22\n", ":2: state.url: holds a password in plain text"),
        ("state:\n  url: host=db password=hunter22\n", ":2: state.url: holds a password in plain text"),
        ("state:\n  redis_url: redis://h/9?password=hunter22\n", ":2: state.redis_url: holds a password"),
        (
            "integrations:\n  prometheus: {url: 'http://u:hunter22@prom:9090'}\n",
            ":2: integrations.prometheus.url: holds a password in plain text",
        ),
        ("- just\n- a list\n", ":1: the config must be a mapping"),
        ("services:\n  - {name: a, owner: t}\n", ":2: services.a.tier: required key is missing"),
        ("default_env: prod\n", ":1: default_env: environment 'prod' is not in environments"),
        (
            "teams: {x: {}}\nservices:\n  - {name: a, tier: 1, owner: y}\n",
            ":3: services.a.owner: team 'y' is not in teams",
        ),
        ("tiers:\n  5: {rto: 1h}\n", ":2: tiers.5: new tier 5 needs availability, rpo"),
        ("state:\n  url: postgresql://u:hunter22@db/x\n", ":2: state.url: holds a password in plain text"),
        (
            "services:\n  - {name: a, tier: 1, owner: t, database: {dsn: 'postgresql://db/x'}}\n",
            "services.a.database.dsn: must be a secret reference",
        ),
    ],
)
def test_each_kind_of_problem(opsctl, tmp_path, text, needle):
    path = write(tmp_path, text)
    result = opsctl("config", "validate", str(path))
    assert result.code == 2, result.stderr
    assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter22" not in result.stderr


PER_ENV = """\
environments:
  production: {}
  staging:
    integrations:
      prometheus: {url: http://prometheus.staging:9090}
      kubernetes: {kubeconfig: ~/.kube/staging, context: staging-eu}
"""


def test_mapping_form_of_environments(opsctl, tmp_path):
    path = write(tmp_path, PER_ENV + "services:\n  - {name: a, tier: 2, owner: t}\n")
    summary = opsctl("-o", "json", "config", "validate", str(path)).json()
    assert summary["valid"] is True and summary["environments"] == ["production", "staging"]
    shown = opsctl("-c", str(path), "--env", "staging", "-o", "json", "config", "show", "a")
    assert shown.code == 0, shown.stderr
    assert shown.json()["env"] == "staging"
    unknown = opsctl("-c", str(path), "--env", "qa", "services")
    assert unknown.code == 2 and "unknown environment 'qa'" in unknown.stderr


def test_an_unknown_key_in_an_environment_override_is_located(opsctl, tmp_path):
    path = write(tmp_path, PER_ENV.replace("context: staging-eu", "contxt: staging-eu"))
    result = opsctl("config", "validate", str(path))
    assert result.code == 2
    assert result.stderr.startswith(f"{path}:6: environments.staging.integrations.kubernetes.contxt: unknown key")


def test_any_command_on_a_bad_config_exits_2(opsctl, tmp_path):
    path = write(tmp_path, "services:\n  - {name: a, tier: 9, owner: t}\n")
    result = opsctl("-c", str(path), "services")
    assert result.code == 2
    assert f"{path}:2: services.a.tier: tier 9 does not exist" in result.stderr


def test_missing_config_file(opsctl, tmp_path):
    result = opsctl("-c", str(tmp_path / "nope.yaml"), "services")
    assert result.code == 2
    assert "config file not found (from --config)" in result.stderr


def test_discovery_order(opsctl, tmp_path, isolated):
    local = isolated / "work" / "opsctl.yaml"
    local.write_text("services:\n  - {name: local-svc, tier: 2, owner: t}\n")
    env_file = tmp_path / "env.yaml"
    env_file.write_text("services:\n  - {name: env-svc, tier: 2, owner: t}\n")
    assert [s["name"] for s in opsctl("-o", "json", "services").json()] == ["local-svc"]
    result = opsctl("-o", "json", "services", env={"OPSCTL_CONFIG": str(env_file)})
    assert [s["name"] for s in result.json()] == ["env-svc"]
    local.unlink()
    user = isolated / "home" / ".config" / "opsctl" / "opsctl.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("services:\n  - {name: user-svc, tier: 2, owner: t}\n")
    assert [s["name"] for s in opsctl("-o", "json", "services").json()] == ["user-svc"]


def test_show_service_merges_environment_and_tier(opsctl, example_config):
    prod = opsctl("-c", str(example_config), "-o", "json", "config", "show", "auth").json()
    staging = opsctl("-c", str(example_config), "--env", "staging", "-o", "json", "config", "show", "auth").json()
    assert prod["kubernetes"]["context"] == "prod-eu"
    assert staging["kubernetes"]["context"] == "staging-eu"
    assert staging["env"] == "staging"
    assert prod["database"]["dsn"] == "vault:secret/auth/db#dsn"  # a reference, never a value
    assert staging["database"]["dsn"] == "vault:secret/auth-staging/db#dsn"
    assert prod["sla"]["rto"] == "15m"
    assert prod["confirmation_required"] is True
    assert prod["business_hours"]["timezone"] == "Europe/Berlin"


def test_show_whole_config(opsctl, example_config):
    result = opsctl("-c", str(example_config), "-o", "json", "config", "show")
    data = json.loads(result.stdout)
    assert data["source"] == str(example_config)
    assert set(data["tiers"]) == {"0", "1", "2", "3"}
    assert data["tiers"]["3"]["rto"] == "8h"
    assert data["integrations"]["pagerduty"]["from"] == "oncall@example.com"


def test_unknown_env(opsctl, example_config):
    result = opsctl("-c", str(example_config), "--env", "qa", "config", "show", "auth")
    assert result.code == 2
    assert "unknown environment 'qa'" in result.stderr


def test_validate_json_lists_problems_as_data(opsctl, tmp_path):
    path = write(tmp_path, "services:\n  - {name: a, tier: 9, owner: t, colour: red}\n")
    result = opsctl("-o", "json", "config", "validate", str(path))
    assert result.code == 2
    data = result.json()
    assert data["valid"] is False
    assert [(p["line"], p["path"]) for p in data["problems"]] == [(2, "services.a.colour"), (2, "services.a.tier")]
    assert f"{path}:2: services.a.tier: tier 9 does not exist" in result.stderr
