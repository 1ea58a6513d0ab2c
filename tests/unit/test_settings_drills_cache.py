"""The config blocks of drills, DNS, caches and rate limits: what they accept and refuse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opsctl.settings import Config
from opsctl.settings.drills import DrillPolicy, DrillSchedule
from opsctl.settings.ratelimit import RateLimit
from opsctl.settings.services import Cache, CacheEvents, Dns


@pytest.mark.parametrize("cadence", ["monthly", "Quarterly", "never", "14d", "2w", "6 months", "1 month"])
def test_cadences(cadence: str) -> None:
    assert DrillSchedule(restore=cadence).restore == " ".join(cadence.split()).lower()


@pytest.mark.parametrize("cadence", ["", "biweekly", "0d", "3 years", "1h", "-1d"])
def test_bad_cadences(cadence: str) -> None:
    with pytest.raises(ValidationError):
        DrillSchedule(failover=cadence)


def test_drill_policy_defaults_are_the_manuals() -> None:
    policy = DrillPolicy()
    assert (policy.restore, policy.failover, policy.markers.total_seconds()) == ("monthly", "quarterly", 10)


def test_dns_defaults_and_types() -> None:
    dns = Dns(zone="example.com", record="db.example.com")
    assert (dns.provider, dns.type, dns.ttl, dns.primary) == ("route53", "CNAME", 60, None)
    with pytest.raises(ValidationError):
        Dns(zone="example.com", record="db.example.com", type="MX")


def test_cache_events_need_exactly_one_target_and_known_fields() -> None:
    assert CacheEvents(channel="c").type == "EntityUpdated"
    for bad in ({}, {"channel": "c", "stream": "s"}, {"channel": "c", "fields": {"who": "x"}}):
        with pytest.raises(ValidationError):
            CacheEvents(**bad)


def test_entity_patterns_need_an_id_and_may_not_match_everything() -> None:
    assert Cache(redis_url="redis://127.0.0.1:6379/0", entities={"user": ["user:{id}"]}).entities
    for bad in (["user:*"], ["{id}"], ["*{id}*"]):
        with pytest.raises(ValidationError):
            Cache(redis_url="redis://127.0.0.1:6379/0", entities={"user": bad})


def test_ratelimit_defaults_merge_and_per_environment_override() -> None:
    assert RateLimit().limits == {"ip": 1000, "user": 300, "org": 5000, "login": 5}
    assert RateLimit(limits={"login": 10, "api_key": 50}).limits["ip"] == 1000
    for bad in ({"key": "rl:{id}"}, {"window": "0s"}, {"limits": {"ip": -1}}, {"layout": "token-bucket"}):
        with pytest.raises(ValidationError):
            RateLimit(**bad)
    config = Config.model_validate({
        "environments": {"production": {}, "staging": {"ratelimit": {"layout": "fixed-window", "limits": {"login": 3}}}},
        "ratelimit": {"window": "30s"},
    })  # fmt: skip
    staging, production = config.ratelimit_for("staging"), config.ratelimit_for("production")
    assert staging.layout == "fixed-window" and staging.limits["login"] == 3 and staging.window.total_seconds() == 30
    assert production.layout == "sliding-log" and production.limits["login"] == 5
