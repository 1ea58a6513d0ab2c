"""`opsctl incident` against the PagerDuty fake over HTTPS, as a user runs it, with faults.

Each fault ends with exactly one incident at PagerDuty and a clear outcome; every request
opsctl sent validates against the official OpenAPI contract.
"""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLE, pagerduty_config


@pytest.fixture
def config(pd, tmp_path):
    path = tmp_path / "opsctl.yaml"
    path.write_text(pagerduty_config(EXAMPLE.read_text(), pd, tmp_path / "pd-token", timeout="6s"))
    return path


def declare(opsctl, config, *extra: str, title: str = "login fails"):
    return opsctl(
        "-c", str(config), "-o", "json", "incident", "declare", "auth", "--sev", "1", "--title", title, *extra
    )


def test_contract_example_config_is_used(config, pd):
    assert pd.base_url in config.read_text() and "request_timeout: 2s" in config.read_text()


def test_lifecycle_pages_through_pagerduty(opsctl, pd, config):
    result = declare(opsctl, config, "--details", "5xx on /login")
    assert result.code == 0, result.stderr
    incident = result.json()
    assert (incident["backend"], incident["paged"], incident["delivery"]) == ("pagerduty", True, "delivered")
    [remote] = pd.incidents()
    assert remote["id"] == incident["pagerduty_id"] and remote["incident_key"] == incident["incident_key"]
    ident = incident["id"]
    for args in (("ack", ident), ("update", ident, "-m", "mitigated", "--status", "monitoring"), ("resolve", ident)):
        step = opsctl("-c", str(config), "-o", "json", "incident", *args)
        assert step.code == 0, step.stderr
    assert pd.incidents()[0]["status"] == "resolved"
    assert pd.contract_violations() == []
    assert pd.token not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("fault", "inject"),
    [
        ("429 with Retry-After", lambda pd: pd.inject_rate_limit(retry_after=1, path="/incidents", method="POST")),
        ("500 then success", lambda pd: pd.inject_status(500, path="/incidents", method="POST")),
        ("timeout", lambda pd: pd.inject_delay(3, path="/incidents", method="POST")),
        ("reset during create", lambda pd: pd.inject_reset_during_create()),
    ],
)
def test_faults_end_with_exactly_one_incident(opsctl, pd, config, fault, inject):
    inject(pd)
    result = declare(opsctl, config)
    assert result.code == 0, f"{fault}: {result.stderr}"
    assert result.json()["paged"] is True
    assert len(pd.incidents()) == 1, fault
    again = declare(opsctl, config)
    assert again.code == 0 and again.json()["id"] == result.json()["id"]
    assert len(pd.incidents()) == 1, fault
    assert pd.contract_violations() == [] or fault == "429 with Retry-After"


def test_pagerduty_unreachable_records_locally_says_so_and_delivers_later(opsctl, pd, config):
    pd.inject_status(503, times=100)
    result = declare(opsctl, config)
    assert result.code == 4, result.stderr
    assert "NOBODY WAS PAGED" in result.stderr and "page the on-call by phone" in result.stderr
    assert "Traceback" not in result.stderr
    pending = result.json()
    assert (pending["paged"], pending["delivery"]) == (False, "pending")
    assert pd.incidents() == []
    listed = opsctl("-c", str(config), "-o", "json", "incident", "list").json()
    assert [i["id"] for i in listed] == [pending["id"]]

    pd.clear_faults()
    delivered = declare(opsctl, config)
    assert delivered.code == 0, delivered.stderr
    assert delivered.json()["id"] == pending["id"] and delivered.json()["paged"] is True
    assert len(pd.incidents()) == 1
    shown = opsctl("-c", str(config), "-o", "json", "incident", "show", pending["id"]).json()
    assert [e["event"] for e in shown["timeline"]] == ["declared", "page_failed", "paged"]
    audit = opsctl("-c", str(config), "-o", "json", "audit").json()
    assert [(a["outcome"], a["exit_code"]) for a in audit] == [
        ("started", 0),
        ("upstream", 4),
        ("started", 0),
        ("ok", 0),
    ]


def test_sync_delivers_pending_incidents(opsctl, pd, config):
    pd.inject_status(503, times=100)
    assert declare(opsctl, config, title="payments down").code == 4
    pd.clear_faults()
    synced = opsctl("-c", str(config), "-o", "json", "incident", "sync")
    assert synced.code == 0, synced.stderr
    assert [i["paged"] for i in synced.json()] == [True]
    assert len(pd.incidents()) == 1
    assert opsctl("-c", str(config), "-o", "json", "incident", "sync").json() == []


def test_dry_run_prints_the_calls_and_sends_nothing(opsctl, pd, config):
    result = declare(opsctl, config, "--dry-run")
    assert result.code == 0, result.stderr
    [call] = result.json()["planned_calls"]
    assert (call["method"], call["path"]) == ("POST", "/incidents")
    assert call["body"]["incident"]["urgency"] == "high"
    assert pd.requests == []


def test_each_environment_pages_through_its_own_pagerduty(opsctl, pd, pd_tls, tmp_path):
    """Per-environment integrations: staging's PagerDuty base URL overrides the global one."""
    from tests.fakes.pagerduty import PagerDutyFake

    with PagerDutyFake(tls=pd_tls) as staging_pd:
        text = pagerduty_config(EXAMPLE.read_text(), pd, tmp_path / "pd-token", timeout="6s")
        text = text.replace(
            "environments: [production, staging]",
            "environments:\n  production: {}\n  staging:\n    integrations:\n"
            f"      pagerduty: {{base_url: {staging_pd.base_url}}}",
        )
        config = tmp_path / "opsctl.yaml"
        config.write_text(text)
        prod = declare(opsctl, config, title="prod down")
        staging = opsctl(
            "-c",
            str(config),
            "-e",
            "staging",
            "-o",
            "json",
            "incident",
            "declare",
            "auth",
            "--sev",
            "1",
            "--title",
            "staging down",
        )
        assert prod.code == 0 and staging.code == 0, prod.stderr + staging.stderr
        assert [i["title"] for i in pd.incidents()] == ["[SEV-1] auth: prod down"]
        assert [i["title"] for i in staging_pd.incidents()] == ["[SEV-1] auth: staging down"]
        ack = opsctl("-c", str(config), "-o", "json", "incident", "ack", staging.json()["id"])
        assert ack.code == 0, ack.stderr  # the incident's own environment decides where it lives
        assert staging_pd.incidents()[0]["status"] == "acknowledged" and pd.incidents()[0]["status"] == "triggered"
