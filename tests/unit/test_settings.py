"""The config model: built-in tiers, overrides, environments, policy, discovery."""

from __future__ import annotations

import typing
from datetime import timedelta

import pytest

from opsctl import settings
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


# ------------------------------------------------------------ environments


PER_ENV = """\
integrations:
  prometheus: {url: http://prometheus:9090}
  aws: {region: eu-central-1, profile: ops}
  kubernetes: {kubeconfig: ~/.kube/config}
  pagerduty: {from: oncall@example.com, timeout: 20s}
environments:
  production: {}
  staging:
    integrations:
      prometheus: {url: http://prometheus.staging:9090}
      aws: {region: eu-west-1, endpoint_url: http://localstack:4566}
      kubernetes: {kubeconfig: ~/.kube/staging, context: staging-eu}
      pagerduty: {base_url: https://pd-proxy.staging.example.com, ca_bundle: /etc/ssl/staging.pem, token: null}
  dev:
"""


def test_environments_list_form_and_mapping_form_give_names():
    assert parse("environments: [production, staging, qa]\n", "c").environments == ["production", "staging", "qa"]
    config = parse(PER_ENV, "c")
    assert config.environments == ["production", "staging", "dev"]
    assert "staging" in config.environments and ", ".join(config.environments) == "production, staging, dev"
    assert Config().environments == ["production", "staging"]


def test_integrations_for_merges_an_environment_field_by_field():
    config = parse(PER_ENV, "c")
    staging = config.integrations_for("staging")
    assert staging.prometheus.url == "http://prometheus.staging:9090"
    assert (staging.aws.region, staging.aws.endpoint_url, staging.aws.profile) == (
        "eu-west-1",
        "http://localstack:4566",
        "ops",  # not named in the override: the global value
    )
    assert (staging.kubernetes.kubeconfig, staging.kubernetes.context) == ("~/.kube/staging", "staging-eu")
    pd = staging.pagerduty
    assert (pd.base_url, pd.ca_bundle, pd.from_, pd.timeout) == (
        "https://pd-proxy.staging.example.com",
        "/etc/ssl/staging.pem",
        "oncall@example.com",
        timedelta(seconds=20),
    )
    assert config.integrations_for("production") == config.integrations
    assert config.integrations_for("dev") == config.integrations
    assert config.integrations.prometheus.url == "http://prometheus:9090"  # the global block is untouched


def test_an_explicit_null_unsets_an_optional_field_but_not_a_required_one():
    config = parse("environments:\n  production:\n    integrations: {aws: {secondary_region: null}}\n", "c")
    assert config.integrations_for("production").aws.secondary_region is None
    assert config.integrations.aws.secondary_region == "eu-west-1"
    with pytest.raises(ConfigError) as info:
        parse("environments:\n  production:\n    integrations: {aws: {region: null}}\n", "c")
    assert info.value.lines() == [
        "c:3: environments.production.integrations.aws.region: cannot be null here: "
        "leave the key out to keep the global value"
    ]


def test_override_models_cover_exactly_the_global_integration_fields():
    overrides = settings.IntegrationOverrides.model_fields
    assert set(overrides) == set(settings.Integrations.model_fields)
    for block, info in settings.Integrations.model_fields.items():
        override = next(a for a in typing.get_args(overrides[block].annotation) if a is not type(None))
        assert set(override.model_fields) == set(info.annotation.model_fields), block


def test_environment_problems_are_located():
    text = "environments:\n  production:\n    integrations:\n      prometheus: {urll: x}\n  Staging: {}\n"
    with pytest.raises(ConfigError) as info:
        parse(text, "c")
    assert info.value.lines() == [
        "c:4: environments.production.integrations.prometheus.urll: unknown key; check the spelling "
        "(see config/schema.json)",
        "c:5: environments.Staging: String should match pattern '^[a-z0-9][a-z0-9_-]*$'",
    ]
    with pytest.raises(ConfigError) as info:
        parse("environments: [production, staging, production]\n", "c")
    assert info.value.lines() == ["c:1: environments: environment 'production' is listed twice"]


def test_default_env_and_service_environments_check_the_mapping_form():
    text = "default_env: qa\nenvironments: {production: {}}\nservices:\n  - {name: a, tier: 1, owner: t, environments: {staging: {}}}\n"
    with pytest.raises(ConfigError) as info:
        parse(text, "c")
    assert info.value.lines() == [
        "c:1: default_env: environment 'qa' is not in environments",
        "c:4: services.a.environments.staging: environment 'staging' is not in environments",
    ]


def test_lock_wait_and_kubernetes_context():
    assert Config().policy.lock_wait == timedelta(seconds=15)
    assert Config().policy.lock_ttl == timedelta(seconds=60)
    config = parse("policy: {lock_wait: 2m}\nintegrations: {kubernetes: {context: prod-eu}}\n", "c")
    assert config.policy.lock_wait == timedelta(minutes=2)
    assert config.integrations.kubernetes.context == "prod-eu"


# ----------------------------------------------------------------- secrets

PASSWORD = "Sup3rS3cret"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"state: {{url: 'postgresql://u@h/db?password={PASSWORD}'}}", "state.url"),
        (f"state: {{url: 'postgresql://u@h/db?sslmode=require&PassWord={PASSWORD}'}}", "state.url"),
        (f"state: {{url: 'host=h dbname=x password={PASSWORD}'}}", "state.url"),
        (f"state: {{url: 'host=h password = {PASSWORD}'}}", "state.url"),
        (f"state: {{redis_url: 'redis://h/9?password={PASSWORD}'}}", "state.redis_url"),
        (f"state: {{redis_url: 'rediss://:{PASSWORD}@h:6380/0'}}", "state.redis_url"),
        (f"integrations: {{prometheus: {{url: 'http://u:{PASSWORD}@prom:9090'}}}}", "integrations.prometheus.url"),
        (f"integrations: {{vault: {{address: 'https://u:{PASSWORD}@vault'}}}}", "integrations.vault.address"),
        (
            f"integrations: {{pagerduty: {{base_url: 'https://u:{PASSWORD}@pd.example.com'}}}}",
            "integrations.pagerduty.base_url",
        ),
        (f"integrations: {{aws: {{endpoint_url: 'http://h/?token={PASSWORD}'}}}}", "integrations.aws.endpoint_url"),
        (
            f"services:\n  - {{name: a, tier: 1, owner: t, cache: {{redis_url: 'redis://h/0?password={PASSWORD}'}}}}",
            "services.a.cache.redis_url",
        ),
        (
            f"environments:\n  production:\n  staging: {{integrations: {{prometheus: {{url: 'http://u:{PASSWORD}@p'}}}}}}",
            "environments.staging.integrations.prometheus.url",
        ),
        (
            f"services:\n  - name: a\n    tier: 1\n    owner: t\n    environments:\n"
            f"      staging: {{cache: {{redis_url: 'redis://h/0?password={PASSWORD}'}}}}",
            "services.a.environments.staging.cache.redis_url",
        ),
    ],
)
def test_a_password_in_plain_text_is_refused_everywhere_without_being_echoed(text, where):
    with pytest.raises(ConfigError) as info:
        parse(text + "\n", "c")
    [line] = info.value.lines()
    assert f": {where}: holds a password in plain text" in line
    assert "secret reference" in line
    assert PASSWORD.lower() not in line.lower()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://opsctl@db.internal:5432/opsctl?sslmode=require",
        "redis://cache.internal:6379/0",
        "http://prometheus:9090/prefix@v1",  # an @ in the path is no user info
        "vault:secret/opsctl/state#url",
        "host=db dbname=opsctl user=opsctl",
    ],
)
def test_urls_without_a_password_pass(url):
    assert parse(f"state: {{url: '{url}'}}\n", "c").state.url == url


def test_env_references_are_refused_anywhere_when_policy_refuses():
    text = (
        "policy: {plaintext_env_secrets: refuse}\n"
        "state: {url: 'env:STATE_URL'}\n"
        "environments:\n  production:\n    integrations: {pagerduty: {token: 'env:PD_TOKEN'}}\n"
        "services:\n"
        "  - name: a\n    tier: 1\n    owner: t\n    database: {dsn: 'vault:secret/a#dsn'}\n"
        "    prometheus: {queries: {rate: 'env:http_requests:rate5m'}}\n"  # a recording rule, no reference
        "    environments:\n      production: {database: {dsn: 'env:A_DSN'}}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse(text, "c")
    refused = "an env: secret reference, refused by policy.plaintext_env_secrets: refuse"
    assert [line.split(": an env:")[0] for line in info.value.lines()] == [
        "c:2: state.url",
        "c:5: environments.production.integrations.pagerduty.token",
        "c:13: services.a.environments.production.database.dsn",
    ]
    assert all(refused in line for line in info.value.lines())
    assert parse(text.replace("refuse", "warn"), "c").state.url == "env:STATE_URL"


# ------------------------------------------------------------ first steps


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "---\n", "{}\n", "~\n"])
def test_an_empty_config_is_a_problem(text):
    with pytest.raises(ConfigError) as info:
        parse(text, "c")
    [line] = info.value.lines()
    assert "the config is empty (only comments or blank lines)" in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "policy:\n  business_hours:\n    end: 18:00\n",
            'c:3: policy.business_hours.end: write "18:00" in quotes: YAML reads 18:00 unquoted as the number 1080',
        ),
        (
            "teams:\n  a:\n    business_hours: {start: 8:30}\n",
            'c:3: teams.a.business_hours.start: write "8:30" in quotes: YAML reads 8:30 unquoted as the number 510',
        ),
        (
            "services:\n  - {name: a, tier: 1, owner: t, description: no}\n",
            'c:2: services.a.description: write "no" in quotes: YAML reads no unquoted as the boolean false',
        ),
    ],
)
def test_unquoted_values_yaml_reads_as_something_else_get_a_quoting_hint(text, expected):
    with pytest.raises(ConfigError) as info:
        parse(text, "c")
    assert info.value.lines() == [expected]


def test_a_duplicate_key_inside_a_service_names_the_service():
    text = "services:\n  - {name: a, tier: 1, owner: t}\n  - name: auth\n    tier: 1\n    owner: t\n    tier: 2\n"
    with pytest.raises(ConfigError) as info:
        parse(text, "c")
    assert info.value.lines() == ["c:6: services.auth.tier: duplicate key"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "services:\n  - name: a\n   tier: 1\n",
            "c:3: YAML syntax error: did not find expected '-' indicator: check the indentation of this line",
        ),
        (
            "version: 1\ndescription: a: b\n",
            "c:2: YAML syntax error: mapping values are not allowed in this context: probably the indentation "
            "of this line",
        ),
        (
            "policy:\n  lock_ttl: 1m\n lock_wait: 2m\n",
            "c:3: YAML syntax error: did not find expected key: check the indentation of this line",
        ),
        ("version: 1\nservices\ntiers: {}\n", "c:2: YAML syntax error: could not find expected ':': a key without ':'"),
        (
            "policy:\n\tlock_ttl: 1m\n",
            "c:2: YAML syntax error: found character '\\t' that cannot start any token: YAML",
        ),
        ("environments: [production\ndefault_env: x\n", "c:1: YAML syntax error: did not find expected ',' or ']'"),
        ("policy: *base\n", "c:1: YAML syntax error: found undefined alias 'base': an alias (*name) needs an anchor"),
        ("version: 1\n---\nversion: 1\n", "c:2: YAML syntax error: expected a single document in the stream"),
        ("? [a]\n: 1\n", "c:1: YAML syntax error: found unhashable key: a key must be a plain value"),
    ],
)
def test_yaml_syntax_errors_are_one_readable_line(text, expected):
    with pytest.raises(ConfigError) as info:
        parse(text, "c")
    [line] = info.value.lines()
    assert line.startswith(expected), line
    assert "\n" not in line and "<unicode string>" not in line


def test_the_quoting_hint_does_not_show_what_may_be_a_secret():
    with pytest.raises(ConfigError) as info:
        parse("integrations:\n  pagerduty: {token: 1234567890123}\n", "c")
    assert info.value.lines() == [
        "c:2: integrations.pagerduty.token: write this value in quotes: YAML reads it unquoted as the number"
    ]
