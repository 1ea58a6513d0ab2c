"""RDS read replicas for the failover drill: against moto's real server (replicas in the same and in
another region, promotion, creating a replica for a failback) and, for what moto cannot produce (a
promotion that completes, a failed state, a replication error in StatusInfos, AWS errors),
botocore's Stubber on a real client.

moto 5.2.5 accepts ``promote_read_replica`` but keeps ``ReadReplicaSourceDBInstanceIdentifier``,
so a promotion never completes there: ``wait_promoted`` must run into its timeout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from opsctl.errors import RefusedError, UpstreamError
from opsctl.integrations.aws import AwsClients
from opsctl.integrations.rds import Rds
from tests.fakes.clock import Clock

PRIMARY, SECONDARY = "eu-central-1", "eu-west-1"


@pytest.fixture
def rds(aws_env: str) -> Iterator[Rds]:
    clients = AwsClients(verify=False)
    yield Rds(lambda region: clients.client("rds", region=region, endpoint_url=aws_env),
              region=PRIMARY, secondary_region=SECONDARY)  # fmt: skip
    clients.close()


def create_instance(rds: Rds, ident: str = "billing-prod") -> dict[str, Any]:
    return dict(rds.client.create_db_instance(
        DBInstanceIdentifier=ident, DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername="admin", MasterUserPassword="not-a-real-pw-123", BackupRetentionPeriod=7,
    )["DBInstance"])  # fmt: skip


# --------------------------------------------------------------------------- moto
def test_a_same_region_replica_names_its_source(rds: Rds) -> None:
    create_instance(rds)
    rds.client.create_db_instance_read_replica(DBInstanceIdentifier="billing-ro",
                                               SourceDBInstanceIdentifier="billing-prod")  # fmt: skip
    info = rds.replica_info("billing-ro")
    assert info["id"] == "billing-ro" and info["region"] == PRIMARY
    assert info["source"] == "billing-prod" and info["is_replica"] is True
    assert info["status"] == "available" and info["engine"] == "postgres"
    assert info["endpoint"]["host"].startswith("billing-ro.") and info["endpoint"]["port"] == 5432
    assert info["replication"] is None  # moto reports no StatusInfos for replicas


def test_a_cross_region_replica_names_its_source_by_arn(rds: Rds) -> None:
    source = create_instance(rds)
    rds.client_for(SECONDARY).create_db_instance_read_replica(
        DBInstanceIdentifier="billing-dr", SourceDBInstanceIdentifier=source["DBInstanceArn"], SourceRegion=PRIMARY
    )  # fmt: skip
    info = rds.replica_info("billing-dr", region=SECONDARY)
    assert info["region"] == SECONDARY and info["is_replica"] is True
    assert info["source"] == source["DBInstanceArn"] and info["source"].startswith(f"arn:aws:rds:{PRIMARY}:")
    assert SECONDARY in info["endpoint"]["host"]
    with pytest.raises(RefusedError, match=f"billing-dr does not exist in {PRIMARY}"):
        rds.replica_info("billing-dr")  # it lives in the secondary region only


def test_an_instance_that_is_not_a_replica(rds: Rds) -> None:
    create_instance(rds)
    info = rds.replica_info("billing-prod")
    assert info["is_replica"] is False and info["source"] is None and info["replication"] is None


def test_a_missing_replica_is_refused_with_a_hint(rds: Rds) -> None:
    with pytest.raises(RefusedError) as caught:
        rds.replica_info("billing-dr", region=SECONDARY)
    assert caught.value.message == f"RDS instance billing-dr does not exist in {SECONDARY}"
    assert caught.value.hint is not None and "database.replica" in caught.value.hint
    assert "integrations.aws" in caught.value.hint


def test_promotion_on_moto_never_completes_and_times_out(rds: Rds) -> None:
    create_instance(rds)
    rds.client.create_db_instance_read_replica(DBInstanceIdentifier="billing-ro",
                                               SourceDBInstanceIdentifier="billing-prod")  # fmt: skip
    rds.promote("billing-ro")
    clock, seen = Clock(), []
    with pytest.raises(UpstreamError) as caught:
        rds.wait_promoted("billing-ro", timeout=600, sleep=clock.sleep, monotonic=clock.monotonic, poll=15,
                          on_status=seen.append)  # fmt: skip
    assert "still a read replica of billing-prod after 600s: the promotion did not complete" in caught.value.message
    assert "is available" in caught.value.message
    assert seen == ["available (still a replica)"]  # reported once, not on every poll
    assert clock.sleeps == [15] * 40 and clock.t == 600
    replica = rds.client.describe_db_instances(DBInstanceIdentifier="billing-ro")["DBInstances"][0]
    assert replica["BackupRetentionPeriod"] == 7  # promote sends no BackupRetentionPeriod: kept as it was


def test_waiting_for_an_instance_that_does_not_exist_is_refused(rds: Rds) -> None:
    clock = Clock()
    with pytest.raises(RefusedError, match="ghost does not exist"):
        rds.wait_promoted("ghost", timeout=60, sleep=clock.sleep, monotonic=clock.monotonic)
    assert clock.sleeps == []


def test_create_a_replica_in_the_same_region(rds: Rds) -> None:
    create_instance(rds)
    created = rds.create_replica("billing-prod", "billing-ro", DBInstanceClass="db.t3.micro")
    assert created["DBInstanceIdentifier"] == "billing-ro"
    assert created["ReadReplicaSourceDBInstanceIdentifier"] == "billing-prod"
    assert rds.replica_info("billing-ro")["source"] == "billing-prod"


def test_create_a_replica_from_another_region_passes_the_source_arn(rds: Rds) -> None:
    """The failback: the old primary (secondary region) rebuilt as a replica of the new one."""
    source = create_instance(rds, "billing-new-primary")
    created = rds.create_replica("billing-new-primary", "billing-old", region=SECONDARY, source_region=PRIMARY)
    assert created["ReadReplicaSourceDBInstanceIdentifier"] == source["DBInstanceArn"]
    info = rds.replica_info("billing-old", region=SECONDARY)
    assert info["source"] == source["DBInstanceArn"] and info["is_replica"] is True
    with pytest.raises(RefusedError, match=f"ghost does not exist in {PRIMARY}"):
        rds.create_replica("ghost", "billing-old-2", region=SECONDARY, source_region=PRIMARY)


# --------------------------------------------------------------------------- Stubber: what moto cannot do
@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Rds, Stubber, list[str]]]:
    """One stubbed client; ``regions`` records which region each client was asked for."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("rds", region_name=SECONDARY)
    regions: list[str] = []

    def client_for(region: str) -> Any:
        regions.append(region)
        return client

    with Stubber(client) as stub:
        yield Rds(client_for, region=PRIMARY, secondary_region=SECONDARY), stub, regions
        stub.assert_no_pending_responses()


def _instance(ident: str, status: str = "available", **more: Any) -> dict[str, Any]:
    return {"DBInstances": [{"DBInstanceIdentifier": ident, "DBInstanceStatus": status, **more}]}


SOURCE_ARN = f"arn:aws:rds:{PRIMARY}:123456789012:db:billing-prod"


def test_a_promotion_that_completes(stubbed: tuple[Rds, Stubber, list[str]]) -> None:
    rds, stub, regions = stubbed
    stub.add_response("promote_read_replica", {"DBInstance": {"DBInstanceIdentifier": "billing-dr"}},
                      {"DBInstanceIdentifier": "billing-dr"})  # fmt: skip
    linked = {"ReadReplicaSourceDBInstanceIdentifier": SOURCE_ARN}
    for status, more in (("available", linked), ("modifying", linked), ("modifying", {}), ("available", linked),
                         ("available", {})):  # fmt: skip
        stub.add_response("describe_db_instances", _instance("billing-dr", status, **more),
                          {"DBInstanceIdentifier": "billing-dr"})  # fmt: skip
    rds.promote("billing-dr", region=SECONDARY)
    clock, seen = Clock(), []
    done = rds.wait_promoted("billing-dr", region=SECONDARY, timeout=3600, sleep=clock.sleep,
                             monotonic=clock.monotonic, poll=20, on_status=seen.append)  # fmt: skip
    assert done["DBInstanceStatus"] == "available" and "ReadReplicaSourceDBInstanceIdentifier" not in done
    assert seen == ["available (still a replica)", "modifying", "available (still a replica)", "available"]
    assert clock.sleeps == [20, 20, 20, 20]  # five polls, four waits between them
    assert set(regions) == {SECONDARY}


def test_a_failed_state_stops_the_wait(stubbed: tuple[Rds, Stubber, list[str]]) -> None:
    rds, stub, _ = stubbed
    for status in ("modifying", "incompatible-parameters"):
        stub.add_response("describe_db_instances",
                          _instance("billing-dr", status, ReadReplicaSourceDBInstanceIdentifier=SOURCE_ARN))  # fmt: skip
    clock, seen = Clock(), []
    with pytest.raises(UpstreamError, match="billing-dr is incompatible-parameters during its promotion"):
        rds.wait_promoted("billing-dr", timeout=3600, sleep=clock.sleep, monotonic=clock.monotonic, poll=15,
                          on_status=seen.append)  # fmt: skip
    assert seen == ["modifying", "incompatible-parameters"] and clock.sleeps == [15]


def test_a_timeout_while_still_modifying(stubbed: tuple[Rds, Stubber, list[str]]) -> None:
    rds, stub, _ = stubbed
    for _ in range(3):
        stub.add_response("describe_db_instances", _instance("billing-dr", "modifying"))
    clock = Clock()
    with pytest.raises(UpstreamError) as caught:
        rds.wait_promoted("billing-dr", timeout=30, sleep=clock.sleep, monotonic=clock.monotonic, poll=15)
    assert "billing-dr still modifying after 30s: the promotion did not complete" in caught.value.message
    assert "read replica" not in caught.value.message


def test_an_instance_that_disappears_during_the_promotion(stubbed: tuple[Rds, Stubber, list[str]]) -> None:
    rds, stub, _ = stubbed
    stub.add_response("describe_db_instances", _instance("billing-dr", "modifying"))
    stub.add_client_error("describe_db_instances", service_error_code="DBInstanceNotFound",
                          service_message="DBInstance billing-dr not found.", http_status_code=404)  # fmt: skip
    clock = Clock()
    with pytest.raises(UpstreamError, match=f"billing-dr disappeared from {PRIMARY} during its promotion"):
        rds.wait_promoted("billing-dr", timeout=600, sleep=clock.sleep, monotonic=clock.monotonic)


def test_a_replication_error_in_status_infos(stubbed: tuple[Rds, Stubber, list[str]]) -> None:
    rds, stub, _ = stubbed
    infos = [{"StatusType": "read replication", "Normal": False, "Status": "error",
              "Message": "Replication has stopped because of an error"}]  # fmt: skip
    stub.add_response("describe_db_instances", _instance(
        "billing-dr", "available", ReadReplicaSourceDBInstanceIdentifier=SOURCE_ARN, StatusInfos=infos,
        Endpoint={"Address": "billing-dr.example.eu-west-1.rds.amazonaws.com", "Port": 5432}, Engine="postgres",
    ))  # fmt: skip
    info = rds.replica_info("billing-dr", region=SECONDARY)
    assert info["replication"] == {"status": "error", "normal": False,
                                   "message": "Replication has stopped because of an error"}  # fmt: skip
    assert info["is_replica"] is True and info["source"] == SOURCE_ARN
    assert info["endpoint"] == {"host": "billing-dr.example.eu-west-1.rds.amazonaws.com", "port": 5432}


def test_replication_that_is_healthy(stubbed: tuple[Rds, Stubber, list[str]]) -> None:
    rds, stub, _ = stubbed
    infos = [{"StatusType": "read replication", "Normal": True, "Status": "replicating"}]
    stub.add_response("describe_db_instances", _instance("billing-dr", StatusInfos=infos,
                                                         ReadReplicaSourceDBInstanceIdentifier="billing-prod"))  # fmt: skip
    info = rds.replica_info("billing-dr")
    assert info["replication"] == {"status": "replicating", "normal": True, "message": None}
    assert info["endpoint"] == {"host": None, "port": None}  # no endpoint yet (e.g. still creating)


def test_create_replica_from_another_region_sends_the_arn_and_source_region(
    stubbed: tuple[Rds, Stubber, list[str]],
) -> None:
    rds, stub, regions = stubbed
    stub.add_response("describe_db_instances", _instance("billing-prod", DBInstanceArn=SOURCE_ARN),
                      {"DBInstanceIdentifier": "billing-prod"})  # fmt: skip
    stub.add_response("create_db_instance_read_replica", {"DBInstance": {"DBInstanceIdentifier": "billing-old"}}, {
        "DBInstanceIdentifier": "billing-old", "SourceDBInstanceIdentifier": SOURCE_ARN, "SourceRegion": PRIMARY,
        "DBInstanceClass": "db.r6g.large",
    })  # fmt: skip
    created = rds.create_replica("billing-prod", "billing-old", region=SECONDARY, source_region=PRIMARY,
                                 DBInstanceClass="db.r6g.large")  # fmt: skip
    assert created == {"DBInstanceIdentifier": "billing-old"}
    assert regions == [PRIMARY, SECONDARY]  # described where the source lives, created where the replica goes


def test_create_replica_with_an_arn_does_not_look_it_up(stubbed: tuple[Rds, Stubber, list[str]]) -> None:
    rds, stub, regions = stubbed
    stub.add_response("create_db_instance_read_replica", {"DBInstance": {"DBInstanceIdentifier": "billing-old"}}, {
        "DBInstanceIdentifier": "billing-old", "SourceDBInstanceIdentifier": SOURCE_ARN, "SourceRegion": PRIMARY,
    })  # fmt: skip
    rds.create_replica(SOURCE_ARN, "billing-old", region=SECONDARY, source_region=PRIMARY)
    assert regions == [SECONDARY]


def test_aws_errors_are_one_line(stubbed: tuple[Rds, Stubber, list[str]]) -> None:
    rds, stub, _ = stubbed
    stub.add_client_error("promote_read_replica", service_error_code="InvalidDBInstanceState",
                          service_message="DB Instance is not a read replica.\nPlease check", http_status_code=400)  # fmt: skip
    with pytest.raises(UpstreamError) as caught:
        rds.promote("billing-prod")
    assert caught.value.message == (
        f"AWS promote_read_replica billing-prod ({PRIMARY}): InvalidDBInstanceState: "
        "DB Instance is not a read replica. Please check"
    )
    stub.add_client_error("describe_db_instances", service_error_code="Throttling", service_message="Rate exceeded",
                          http_status_code=400)  # fmt: skip
    with pytest.raises(UpstreamError, match="Throttling: Rate exceeded") as caught:
        rds.replica_info("billing-dr", region=SECONDARY)
    assert "\n" not in caught.value.message and SECONDARY in caught.value.message
    stub.add_client_error("create_db_instance_read_replica", service_error_code="DBInstanceAlreadyExists",
                          service_message="DB instance already exists")  # fmt: skip
    with pytest.raises(UpstreamError, match=r"create_db_instance_read_replica .*DBInstanceAlreadyExists"):
        rds.create_replica("billing-prod", "billing-ro")
