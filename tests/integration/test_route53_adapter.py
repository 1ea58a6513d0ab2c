"""The Route53 adapter of the failover drill against moto's real server (zones, plain records,
failover record sets with health checks, switched and read back through the client) and, for the
states moto cannot produce (a change that stays PENDING, a failing health check, AWS errors, a
paginated listing), botocore's Stubber on a real client."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from opsctl.errors import ExitCode, RefusedError, UpstreamError
from opsctl.integrations.aws import AwsClients
from opsctl.integrations.route53 import DnsState, RecordSet, Route53
from tests.fakes.clock import Clock

ZONE, NAME = "example.com", "db.example.com"
PRIMARY, SECONDARY = "billing-1.abc.eu-central-1.rds.amazonaws.com", "billing-2.abc.eu-west-1.rds.amazonaws.com"


# --------------------------------------------------------------------------- moto's server
@pytest.fixture
def r53(aws_env: str) -> Iterator[Route53]:
    clients = AwsClients(verify=False)
    clock = Clock()  # moto has every change INSYNC at once: nothing should ever wait on it
    yield Route53(clients.client("route53", region="us-east-1", endpoint_url=aws_env),
                  sleep=clock.sleep, monotonic=clock.monotonic)  # fmt: skip
    assert clock.sleeps == []
    clients.close()


def make_zone(r53: Route53, name: str = ZONE, *, private: bool = False) -> str:
    args: dict[str, Any] = {"Name": name, "CallerReference": f"{name}-{private}"}
    if private:
        args |= {"VPC": {"VPCRegion": "us-east-1", "VPCId": "vpc-12345"}, "HostedZoneConfig": {"PrivateZone": True}}
    return str(r53.client.create_hosted_zone(**args)["HostedZone"]["Id"]).rsplit("/", 1)[-1]


def put(r53: Route53, zone_id: str, *record_sets: dict[str, Any]) -> None:
    changes = [{"Action": "UPSERT", "ResourceRecordSet": {"Name": NAME, "Type": "CNAME", "TTL": 300, **rs}}
               for rs in record_sets]  # fmt: skip
    r53.client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


def listed(r53: Route53, zone_id: str, name: str = NAME) -> list[dict[str, Any]]:
    """The record sets of ``name`` as the client lists them back (the whole zone, filtered here)."""
    sets = r53.client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [rs for rs in sets if rs["Name"] == f"{name}."]


def health_check(r53: Route53, ip: str, ref: str) -> str:
    config = {"Type": "TCP", "IPAddress": ip, "Port": 5432, "RequestInterval": 30, "FailureThreshold": 3}
    return str(r53.client.create_health_check(CallerReference=ref, HealthCheckConfig=config)["HealthCheck"]["Id"])


def test_zone_found_by_name_whatever_the_trailing_dot_or_case(r53: Route53) -> None:
    zone_id = make_zone(r53)
    make_zone(r53, "example.org")
    make_zone(r53, "sub.example.com")
    assert r53.zone_id("example.com") == zone_id
    assert r53.zone_id("Example.COM.") == zone_id
    assert not zone_id.startswith("/")


def test_a_missing_zone_is_refused_by_name(r53: Route53) -> None:
    make_zone(r53)
    with pytest.raises(RefusedError, match=re.escape("no hosted zone example.net")) as caught:
        r53.zone_id("example.net")
    assert caught.value.exit_code == ExitCode.REFUSED and caught.value.hint


def test_two_zones_of_the_same_name_are_refused_naming_both(r53: Route53) -> None:
    public, private = make_zone(r53), make_zone(r53, private=True)
    with pytest.raises(RefusedError) as caught:
        r53.zone_id(ZONE)
    message = caught.value.message
    assert f"{public} (public)" in message and f"{private} (private)" in message and "2 hosted zones" in message


def test_a_plain_cname_is_pointed_at_the_secondary_and_back(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"ResourceRecords": [{"Value": f"{PRIMARY}."}]})
    state = r53.inspect("Example.com.", "DB.example.com.", "cname", primary=PRIMARY, secondary=SECONDARY.upper())
    assert (state.zone_id, state.zone, state.record, state.type, state.mode) == (zone_id, ZONE, NAME, "CNAME", "simple")
    assert state.problems == [] and state.ok
    assert state.active == PRIMARY and state.points_at(f"{PRIMARY.upper()}.") and not state.points_at(SECONDARY)
    assert state.records == [RecordSet(NAME, "CNAME", 300, (PRIMARY,), None, None, None, False)]
    assert state.target == SECONDARY.upper() and state.health_checks == {}

    change = r53.point(state, SECONDARY, ttl=60, comment="opsctl drill failover billing")
    assert change
    assert [(rs["Type"], rs["TTL"], rs["ResourceRecords"]) for rs in listed(r53, zone_id)] == [
        ("CNAME", 60, [{"Value": SECONDARY}])
    ]

    back = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY, expect="secondary")
    assert back.problems == [] and back.active == SECONDARY and back.target == PRIMARY
    assert r53.point(back, PRIMARY, ttl=300, comment="opsctl drill failback billing")
    assert [(rs["TTL"], rs["ResourceRecords"]) for rs in listed(r53, zone_id)] == [(300, [{"Value": PRIMARY}])]


def test_pointing_where_it_already_points_changes_nothing(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"ResourceRecords": [{"Value": PRIMARY}]})
    state = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY)
    assert r53.point(state, f"{PRIMARY.upper()}.", ttl=60) is None
    assert [(rs["TTL"], rs["ResourceRecords"]) for rs in listed(r53, zone_id)] == [(300, [{"Value": PRIMARY}])]


def test_a_plain_a_record_with_one_value(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"Type": "A", "TTL": 120, "ResourceRecords": [{"Value": "10.0.0.10"}]})
    state = r53.inspect(ZONE, NAME, "A", primary="10.0.0.10", secondary="10.1.0.10")
    assert state.problems == [] and state.mode == "simple" and state.active == "10.0.0.10"
    assert state.records[0].values == ("10.0.0.10",) and state.records[0].ttl == 120
    assert r53.point(state, "10.1.0.10", ttl=30)
    assert [(rs["Type"], rs["TTL"], rs["ResourceRecords"]) for rs in listed(r53, zone_id)] == [
        ("A", 30, [{"Value": "10.1.0.10"}])
    ]


def test_an_a_record_with_several_values_is_fine(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"Type": "A", "ResourceRecords": [{"Value": "10.0.0.10"}, {"Value": "10.0.0.11"}]})
    state = r53.inspect(ZONE, NAME, "A", primary="10.0.0.11,10.0.0.10", secondary="10.1.0.10")
    assert state.problems == [] and state.active == "10.0.0.10,10.0.0.11"


# ------------------------------------------------------------ what a preflight refuses on (plain records)
def test_a_missing_record_is_a_problem(r53: Route53) -> None:
    make_zone(r53)
    state = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY)
    assert state.problems == [f"there is no {NAME} CNAME record in zone {ZONE} ({state.zone_id})"]
    assert state.records == [] and state.active is None
    with pytest.raises(RefusedError, match=re.escape(f"there is no {NAME} CNAME record")):
        r53.point(state, SECONDARY, ttl=60)


def test_an_alias_record_is_a_problem(r53: Route53) -> None:
    zone_id = make_zone(r53)
    alias = {"HostedZoneId": "Z2FDTNDATAQYW2", "DNSName": "d111.cloudfront.net", "EvaluateTargetHealth": False}
    r53.client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {"Name": NAME, "Type": "A", "AliasTarget": alias}}]})  # fmt: skip
    state = r53.inspect(ZONE, NAME, "A", primary="10.0.0.10", secondary="10.1.0.10")
    assert state.records[0].alias and state.records[0].values == ()
    assert state.problems == [f"{NAME} A is an alias record: the drill cannot switch an alias (make it a plain record "
                              "or failover record sets)"]  # fmt: skip
    with pytest.raises(RefusedError, match="not one plain record"):
        r53.point(state, "10.1.0.10", ttl=60)


def test_a_plain_record_without_a_secondary_is_a_problem(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"ResourceRecords": [{"Value": PRIMARY}]})
    state = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY)
    assert state.problems == ["dns.secondary is needed to fail a plain record over"]
    assert state.active == PRIMARY and state.target is None


def test_a_record_already_at_the_secondary(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"ResourceRecords": [{"Value": SECONDARY}]})
    state = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY)
    assert state.problems == [f"{NAME} CNAME already points at the secondary {SECONDARY}: failed over already?"]
    assert state.active == SECONDARY and state.points_at(SECONDARY)
    # what a failback inspects: the same record, expected at the secondary, is no problem
    assert r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY, expect="secondary").problems == []


def test_a_record_at_neither_value(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"ResourceRecords": [{"Value": "somewhere.else.example.net"}]})
    state = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY)
    assert state.problems == [f"{NAME} CNAME points at somewhere.else.example.net, which is neither dns.primary "
                              f"{PRIMARY} nor dns.secondary {SECONDARY}"]  # fmt: skip
    assert state.active == "somewhere.else.example.net"


def test_a_failback_needs_the_primary_and_notices_a_record_already_back(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"ResourceRecords": [{"Value": PRIMARY}]})
    state = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY, expect="secondary")
    assert state.problems == [f"{NAME} CNAME already points at the primary {PRIMARY}: failed back already?"]
    assert r53.inspect(ZONE, NAME, "CNAME", secondary=PRIMARY, expect="secondary").problems == [
        "dns.primary is needed to fail a plain record back"
    ]


# --------------------------------------------------------------------------- failover record sets
def failover_pair(r53: Route53, *, secondary_check: bool = True) -> tuple[str, str, str | None]:
    zone_id = make_zone(r53)
    hc_primary = health_check(r53, "10.0.0.10", "hc-primary")
    hc_secondary = health_check(r53, "10.1.0.10", "hc-secondary") if secondary_check else None
    secondary: dict[str, Any] = {"SetIdentifier": "billing-eu-west-1", "Failover": "SECONDARY", "TTL": 30,
                                 "ResourceRecords": [{"Value": SECONDARY}]}  # fmt: skip
    if hc_secondary:
        secondary["HealthCheckId"] = hc_secondary
    put(r53, zone_id, {"SetIdentifier": "billing-eu-central-1", "Failover": "PRIMARY", "TTL": 60,
                       "HealthCheckId": hc_primary, "ResourceRecords": [{"Value": PRIMARY}]}, secondary)  # fmt: skip
    return zone_id, hc_primary, hc_secondary


def by_role(r53: Route53, zone_id: str) -> dict[str, tuple[str, int, str, str | None]]:
    return {rs["Failover"]: (rs["SetIdentifier"], rs["TTL"], rs["ResourceRecords"][0]["Value"], rs.get("HealthCheckId"))
            for rs in listed(r53, zone_id)}  # fmt: skip


def test_a_failover_pair_is_inspected_with_its_health_checks(r53: Route53) -> None:
    _, hc_primary, hc_secondary = failover_pair(r53)
    state = r53.inspect(ZONE, NAME, "CNAME")
    assert state.mode == "failover" and state.problems == []
    assert state.active == PRIMARY and (state.primary, state.secondary, state.target) == (PRIMARY, SECONDARY, SECONDARY)
    assert [(r.failover, r.set_identifier, r.health_check_id) for r in state.records] == [
        ("PRIMARY", "billing-eu-central-1", hc_primary), ("SECONDARY", "billing-eu-west-1", hc_secondary)]  # fmt: skip
    assert set(state.health_checks) == {hc_primary, hc_secondary}
    check = state.health_checks[hc_primary]
    assert check["healthy"] is True and check["exists"] and check["target"] == "10.0.0.10:5432"
    assert check["statuses"] and all("Success" in s for s in check["statuses"])
    assert state.to_dict()["records"][0]["failover"] == "PRIMARY"
    # configured values that agree with the records are fine
    assert r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY.upper(), secondary=f"{SECONDARY}.").problems == []


def test_a_failover_pair_is_swapped_in_one_change_and_back(r53: Route53) -> None:
    zone_id, hc_primary, hc_secondary = failover_pair(r53)
    state = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY)
    assert r53.point(state, SECONDARY, ttl=5, comment="opsctl drill failover billing")
    # both keep identifier, role and their own TTL; the values swap, each with its health check
    assert by_role(r53, zone_id) == {
        "PRIMARY": ("billing-eu-central-1", 60, SECONDARY, hc_secondary),
        "SECONDARY": ("billing-eu-west-1", 30, PRIMARY, hc_primary),
    }
    again = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY)
    assert again.problems == [f"{NAME} CNAME already points at the secondary {SECONDARY}: failed over already?"]

    back = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary=SECONDARY, expect="secondary")
    assert back.problems == [] and back.active == SECONDARY and back.target == PRIMARY
    assert r53.point(back, back.target or "", ttl=5, comment="opsctl drill failback billing")
    assert by_role(r53, zone_id) == {
        "PRIMARY": ("billing-eu-central-1", 60, PRIMARY, hc_primary),
        "SECONDARY": ("billing-eu-west-1", 30, SECONDARY, hc_secondary),
    }
    assert r53.point(r53.inspect(ZONE, NAME, "CNAME"), PRIMARY, ttl=5) is None


def test_a_secondary_without_health_check_hands_the_primary_its_none(r53: Route53) -> None:
    zone_id, hc_primary, _ = failover_pair(r53, secondary_check=False)
    state = r53.inspect(ZONE, NAME, "CNAME")
    assert state.problems == [] and list(state.health_checks) == [hc_primary]
    assert r53.point(state, SECONDARY, ttl=60)
    assert by_role(r53, zone_id) == {
        "PRIMARY": ("billing-eu-central-1", 60, SECONDARY, None),
        "SECONDARY": ("billing-eu-west-1", 30, PRIMARY, hc_primary),
    }
    # the failback: the PRIMARY without a check is what the failover left, the check comes back with the value
    back = r53.inspect(ZONE, NAME, "CNAME", expect="secondary")
    assert back.problems == [] and (back.primary, back.secondary) == (PRIMARY, SECONDARY)
    assert r53.point(back, PRIMARY, ttl=60)
    assert by_role(r53, zone_id)["PRIMARY"] == ("billing-eu-central-1", 60, PRIMARY, hc_primary)


def test_a_failover_pair_cannot_be_pointed_at_a_third_value(r53: Route53) -> None:
    zone_id, _, _ = failover_pair(r53)
    state = r53.inspect(ZONE, NAME, "CNAME")
    with pytest.raises(RefusedError, match=re.escape("elsewhere.example.net is neither failover record set's value")):
        r53.point(state, "elsewhere.example.net", ttl=60)
    assert by_role(r53, zone_id)["PRIMARY"][2] == PRIMARY


def test_configured_values_that_disagree_with_the_failover_records(r53: Route53) -> None:
    failover_pair(r53)
    state = r53.inspect(ZONE, NAME, "CNAME", primary=PRIMARY, secondary="other.example.net")
    assert state.problems == [f"{NAME} CNAME: configured dns.primary {PRIMARY} / dns.secondary other.example.net "
                              f"disagree with the failover record sets (PRIMARY -> {PRIMARY}, SECONDARY -> "
                              f"{SECONDARY})"]  # fmt: skip


def test_a_plain_record_set_mixed_in_with_failover_sets(r53: Route53) -> None:
    zone_id, _, _ = failover_pair(r53)
    put(r53, zone_id, {"ResourceRecords": [{"Value": "stray.example.net"}]})
    state = r53.inspect(ZONE, NAME, "CNAME")
    assert state.mode == "failover" and len(state.records) == 3
    assert state.problems == [f"{NAME} CNAME: a record set without a Failover role is mixed in with the failover "
                              "record sets (plain (no SetIdentifier) -> stray.example.net)"]  # fmt: skip


def test_two_primary_record_sets(r53: Route53) -> None:
    zone_id, hc_primary, _ = failover_pair(r53)
    put(r53, zone_id, {"SetIdentifier": "billing-us-east-1", "Failover": "PRIMARY", "HealthCheckId": hc_primary,
                       "ResourceRecords": [{"Value": "billing-3.example.net"}]})  # fmt: skip
    state = r53.inspect(ZONE, NAME, "CNAME")
    assert len(state.problems) == 1 and state.active is None
    problem = state.problems[0]
    assert "exactly one PRIMARY and one SECONDARY record set, found 2 PRIMARY, 1 SECONDARY" in problem
    assert 'PRIMARY "billing-us-east-1" -> billing-3.example.net' in problem
    with pytest.raises(RefusedError, match="cannot switch these failover record sets"):
        r53.point(state, SECONDARY, ttl=60)


def test_a_primary_without_health_check(r53: Route53) -> None:
    zone_id = make_zone(r53)
    put(r53, zone_id, {"SetIdentifier": "a", "Failover": "PRIMARY", "ResourceRecords": [{"Value": PRIMARY}]},
        {"SetIdentifier": "b", "Failover": "SECONDARY", "ResourceRecords": [{"Value": SECONDARY}]})  # fmt: skip
    state = r53.inspect(ZONE, NAME, "CNAME")
    assert state.problems == [f'{NAME} CNAME: the PRIMARY record set has no HealthCheckId (PRIMARY "a" -> {PRIMARY}): '
                              "Route53 would never fail it over by itself"]  # fmt: skip


def test_a_health_check_that_does_not_exist(r53: Route53) -> None:
    zone_id, _, _ = failover_pair(r53)
    ghost = "0b1f6e1a-0000-4000-8000-000000000000"
    put(r53, zone_id, {"SetIdentifier": "billing-eu-west-1", "Failover": "SECONDARY", "TTL": 30,
                       "HealthCheckId": ghost, "ResourceRecords": [{"Value": SECONDARY}]})  # fmt: skip
    state = r53.inspect(ZONE, NAME, "CNAME")
    assert state.health_checks[ghost] == {"healthy": False, "statuses": [], "target": None, "exists": False}
    assert state.problems == [f"{NAME} CNAME: health check {ghost} does not exist (used by SECONDARY "
                              f'"billing-eu-west-1" -> {SECONDARY})']  # fmt: skip


# --------------------------------------------------------------------------- Stubber: what moto cannot do
@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Route53, Stubber, Clock]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    clients = AwsClients()
    client = clients.client("route53", region="us-east-1")
    clock = Clock()
    with Stubber(client) as stub:
        yield Route53(client, timeout=10, poll=2, sleep=clock.sleep, monotonic=clock.monotonic), stub, clock
        stub.assert_no_pending_responses()
    clients.close()


def plain_state(value: str = PRIMARY) -> DnsState:
    record = RecordSet(NAME, "CNAME", 300, (value,), None, None, None, False)
    return DnsState("Z1", ZONE, NAME, "CNAME", "simple", [record], value, {}, [])


def change(status: str, change_id: str = "C1") -> dict[str, Any]:
    submitted = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    return {"ChangeInfo": {"Id": f"/change/{change_id}", "Status": status, "SubmittedAt": submitted}}


def test_a_change_pending_for_a_while_is_waited_for(stubbed: tuple[Route53, Stubber, Clock]) -> None:
    r53, stub, clock = stubbed
    batch = {"Comment": "opsctl drill failover billing", "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": f"{NAME}.", "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": SECONDARY}]}}]}  # fmt: skip
    stub.add_response("change_resource_record_sets", change("PENDING"), {"HostedZoneId": "Z1", "ChangeBatch": batch})
    stub.add_response("get_change", change("PENDING"), {"Id": "C1"})
    stub.add_response("get_change", change("INSYNC"), {"Id": "C1"})
    assert r53.point(plain_state(), SECONDARY, ttl=60, comment="opsctl drill failover billing") == "C1"
    assert clock.sleeps == [2, 2]


def test_a_change_stuck_pending_times_out(stubbed: tuple[Route53, Stubber, Clock]) -> None:
    r53, stub, clock = stubbed
    expected = {"HostedZoneId": "Z1", "ChangeBatch": ANY}
    stub.add_response("change_resource_record_sets", change("PENDING", "C9"), expected)
    for _ in range(5):  # at t = 2, 4, 6, 8, 10: still PENDING; the deadline is t = 10
        stub.add_response("get_change", change("PENDING", "C9"), {"Id": "C9"})
    with pytest.raises(UpstreamError) as caught:
        r53.point(plain_state(), SECONDARY, ttl=60)
    assert caught.value.message == "Route53 change C9 still PENDING after 10s"
    assert caught.value.exit_code == ExitCode.UPSTREAM and "get-change --id C9" in (caught.value.hint or "")
    assert clock.sleeps == [2] * 5 and clock.t == 10


def zone_page() -> dict[str, Any]:
    return {"HostedZones": [{"Id": "/hostedzone/Z1", "Name": f"{ZONE}.", "CallerReference": "r"}],
            "IsTruncated": False, "MaxItems": "100"}  # fmt: skip


def failover_sets(hc_primary: str = "hc-1", hc_secondary: str = "hc-2") -> list[dict[str, Any]]:
    return [
        {"Name": f"{NAME}.", "Type": "CNAME", "SetIdentifier": "a", "Failover": "PRIMARY", "TTL": 60,
         "HealthCheckId": hc_primary, "ResourceRecords": [{"Value": PRIMARY}]},
        {"Name": f"{NAME}.", "Type": "CNAME", "SetIdentifier": "b", "Failover": "SECONDARY", "TTL": 60,
         "HealthCheckId": hc_secondary, "ResourceRecords": [{"Value": SECONDARY}]},
    ]  # fmt: skip


def add_check(stub: Stubber, check_id: str, ip: str, *statuses: str) -> None:
    config = {"Type": "TCP", "IPAddress": ip, "Port": 5432}
    stub.add_response("get_health_check", {"HealthCheck": {"Id": check_id, "CallerReference": check_id,
                                           "HealthCheckConfig": config, "HealthCheckVersion": 1}},
                      {"HealthCheckId": check_id})  # fmt: skip
    regions = ("us-east-1", "eu-west-1", "ap-southeast-1")
    observations = [{"Region": region, "IPAddress": "15.177.2.1", "StatusReport": {"Status": status}}
                    for region, status in zip(regions, statuses, strict=False)]  # fmt: skip
    stub.add_response("get_health_check_status", {"HealthCheckObservations": observations}, {"HealthCheckId": check_id})


def add_failover_listing(stub: Stubber) -> None:
    stub.add_response("list_hosted_zones_by_name", zone_page(), {"DNSName": f"{ZONE}."})
    stub.add_response("list_resource_record_sets", {"ResourceRecordSets": failover_sets(), "IsTruncated": False,
                                                    "MaxItems": "300"},
                      {"HostedZoneId": "Z1", "StartRecordName": f"{NAME}.", "StartRecordType": "CNAME"})  # fmt: skip


def test_a_failing_health_check_on_the_side_taking_traffic(stubbed: tuple[Route53, Stubber, Clock]) -> None:
    r53, stub, _ = stubbed
    add_failover_listing(stub)
    add_check(stub, "hc-1", "10.0.0.10", "Success: TCP connection established.")
    add_check(stub, "hc-2", "10.1.0.10", "Success: TCP connection established.", "Failure: Connection timed out.")
    state = r53.inspect(ZONE, NAME, "CNAME")
    assert state.health_checks["hc-1"]["healthy"] is True
    assert state.health_checks["hc-2"] == {
        "healthy": False, "exists": True, "target": "10.1.0.10:5432",
        "statuses": ["us-east-1: Success: TCP connection established.", "eu-west-1: Failure: Connection timed out."],
    }  # fmt: skip
    assert state.problems == [f"{NAME} CNAME: {SECONDARY}, which must take the traffic, is not healthy (health check "
                              "hc-2: us-east-1: Success: TCP connection established.; eu-west-1: Failure: Connection "
                              "timed out.)"]  # fmt: skip


def test_a_failing_primary_is_why_one_fails_over_not_a_problem(stubbed: tuple[Route53, Stubber, Clock]) -> None:
    r53, stub, _ = stubbed
    add_failover_listing(stub)
    add_check(stub, "hc-1", "10.0.0.10", "Failure: Connection refused.")
    add_check(stub, "hc-2", "10.1.0.10", "Success: TCP connection established.")
    state = r53.inspect(ZONE, NAME, "CNAME")
    assert state.health_checks["hc-1"]["healthy"] is False and state.health_checks["hc-2"]["healthy"] is True
    assert state.problems == []


def test_a_health_check_nobody_reported_on_is_not_healthy(stubbed: tuple[Route53, Stubber, Clock]) -> None:
    r53, stub, _ = stubbed
    add_check(stub, "hc-new", "10.1.0.10")
    assert r53.health_check("hc-new") == {"healthy": False, "statuses": [], "target": "10.1.0.10:5432", "exists": True}


def test_a_paginated_listing_is_followed_to_the_name_s_record_sets(stubbed: tuple[Route53, Stubber, Clock]) -> None:
    r53, stub, _ = stubbed
    first, second = failover_sets()
    stub.add_response("list_resource_record_sets", {
        "ResourceRecordSets": [first], "IsTruncated": True, "MaxItems": "1",
        "NextRecordName": f"{NAME}.", "NextRecordType": "CNAME", "NextRecordIdentifier": "b",
    }, {"HostedZoneId": "Z1", "StartRecordName": f"{NAME}.", "StartRecordType": "CNAME"})  # fmt: skip
    other = {"Name": "dbx.example.com.", "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": "x.example.net"}]}
    stub.add_response("list_resource_record_sets", {
        "ResourceRecordSets": [second, other], "IsTruncated": True, "MaxItems": "2",
        "NextRecordName": "dby.example.com.", "NextRecordType": "CNAME",
    }, {"HostedZoneId": "Z1", "StartRecordName": f"{NAME}.", "StartRecordType": "CNAME",
        "StartRecordIdentifier": "b"})  # fmt: skip
    found = r53.record_sets("Z1", NAME, "CNAME")
    assert [(r.set_identifier, r.failover, r.values) for r in found] == [
        ("a", "PRIMARY", (PRIMARY,)), ("b", "SECONDARY", (SECONDARY,))]  # fmt: skip


def test_aws_errors_are_one_line(stubbed: tuple[Route53, Stubber, Clock]) -> None:
    r53, stub, _ = stubbed
    stub.add_client_error("list_hosted_zones_by_name", service_error_code="Throttling",
                          service_message="Rate\nexceeded", http_status_code=400)  # fmt: skip
    with pytest.raises(UpstreamError) as caught:
        r53.inspect(ZONE, NAME, "CNAME")
    assert caught.value.message == "AWS route53 list_hosted_zones_by_name example.com: Throttling: Rate exceeded"
    assert caught.value.exit_code == ExitCode.UPSTREAM and len(caught.value.lines()) == 1
    stub.add_client_error("change_resource_record_sets", service_error_code="AccessDenied",
                          service_message="User is not authorized to perform route53:ChangeResourceRecordSets",
                          http_status_code=403)  # fmt: skip
    with pytest.raises(UpstreamError, match="AccessDenied: User is not authorized") as denied:
        r53.point(plain_state(), SECONDARY, ttl=60)
    assert "\n" not in denied.value.message
    assert denied.value.message.startswith(f"AWS route53 change_resource_record_sets {NAME} CNAME in Z1: AccessDenied")


def test_an_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    clients = AwsClients(verify=False, connect_timeout=1, read_timeout=1)
    r53 = Route53(clients.client("route53", region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(UpstreamError) as caught:
        r53.zone_id(ZONE)
    clients.close()
    assert caught.value.message.startswith("AWS route53 list_hosted_zones_by_name example.com: Could not connect")
    assert "\n" not in caught.value.message and "endpoint_url" in (caught.value.hint or "")
