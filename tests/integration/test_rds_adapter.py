"""The RDS adapter against moto's real server (instances, PITR restore, snapshots and encrypted
cross-region copies) and, for the states moto cannot produce (a real RestoreWindow, a restore that
fails, AWS errors), botocore's Stubber on a real client."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from opsctl.errors import RefusedError, UpstreamError
from opsctl.integrations.aws import AwsClients
from opsctl.integrations.rds import Rds
from tests.fakes.clock import Clock

PRIMARY, SECONDARY = "eu-central-1", "eu-west-1"


def _free_port() -> int:
    """A port nobody listens on: an unreachable endpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def rds(aws_env: str) -> Iterator[Rds]:
    """On the session's moto server, reset for this test (``aws_env``: tests/fakes/moto.py)."""
    clients = AwsClients(verify=False)
    yield Rds(lambda region: clients.client("rds", region=region, endpoint_url=aws_env),
              region=PRIMARY, secondary_region=SECONDARY)  # fmt: skip
    clients.close()


def create_instance(rds: Rds, ident: str = "billing-prod", retention: int = 7) -> dict[str, Any]:
    return dict(rds.client.create_db_instance(
        DBInstanceIdentifier=ident, DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername="admin", MasterUserPassword="not-a-real-pw-123", BackupRetentionPeriod=retention,
    )["DBInstance"])  # fmt: skip


def test_restore_to_a_point_in_time_and_wait_until_available(rds: Rds) -> None:
    create_instance(rds)
    at = datetime.now(UTC) - timedelta(minutes=30)
    started = rds.restore("billing-prod", "billing-restore-1", time=at)
    assert started["DBInstanceIdentifier"] == "billing-restore-1"
    clock, seen = Clock(), []
    done = rds.wait_available("billing-restore-1", timeout=600, sleep=clock.sleep, monotonic=clock.monotonic,
                              on_status=seen.append)  # fmt: skip
    assert seen[-1] == "available"
    host, port = rds.endpoint(done)
    assert host and port
    assert rds.exists("billing-restore-1") and not rds.exists("nope")
    rds.delete("billing-restore-1")
    assert not rds.exists("billing-restore-1")


def test_restore_takes_exactly_one_of_time_and_latest(rds: Rds) -> None:
    with pytest.raises(ValueError):
        rds.restore("a", "b")
    with pytest.raises(ValueError):
        rds.restore("a", "b", time=datetime.now(UTC), latest=True)


def test_window_without_restore_window_is_estimated_from_retention(rds: Rds) -> None:
    instance = create_instance(rds, retention=7)
    now = datetime.now(UTC)
    window = rds.window("billing-prod", now=now)
    created = instance["InstanceCreateTime"]
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    assert window.earliest == max(now - timedelta(days=7), created)
    assert window.basis in ("retention", "LatestRestorableTime")


def test_window_of_a_missing_instance_is_refused(rds: Rds) -> None:
    with pytest.raises(RefusedError, match="does not exist"):
        rds.window("ghost")


def test_snapshots_and_encrypted_copies_in_the_secondary_region(rds: Rds) -> None:
    create_instance(rds)
    rds.client.create_db_snapshot(DBInstanceIdentifier="billing-prod", DBSnapshotIdentifier="billing-daily-1")
    arn = rds.client.describe_db_snapshots(DBSnapshotIdentifier="billing-daily-1")["DBSnapshots"][0]["DBSnapshotArn"]
    kms = boto3.client("kms", region_name=SECONDARY, endpoint_url=rds.client.meta.endpoint_url)
    key = kms.create_key(Description="dr copies")["KeyMetadata"]["Arn"]
    rds.client_for(SECONDARY).copy_db_snapshot(
        SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="billing-daily-1-dr", KmsKeyId=key,
        SourceRegion=PRIMARY,
    )  # fmt: skip
    local = rds.snapshots("billing-prod")
    assert {(s.id, s.type) for s in local} >= {("billing-daily-1", "manual")}
    assert all(s.region == PRIMARY and not s.encrypted for s in local)
    copies = rds.snapshots("billing-prod", region=SECONDARY)
    assert [c.id for c in copies] == ["billing-daily-1-dr"]
    assert copies[0].encrypted and copies[0].kms_key == key and copies[0].region == SECONDARY


# --------------------------------------------------------------------------- Stubber: what moto cannot do
@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Rds, Stubber]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("rds", region_name=PRIMARY)
    with Stubber(client) as stub:
        yield Rds(lambda region: client, region=PRIMARY), stub
        stub.assert_no_pending_responses()


def _instance(ident: str, status: str = "available", **more: Any) -> dict[str, Any]:
    return {"DBInstances": [{"DBInstanceIdentifier": ident, "DBInstanceStatus": status, **more}]}


def test_window_from_restore_window_capped_by_latest_restorable_time(stubbed: tuple[Rds, Stubber]) -> None:
    rds, stub = stubbed
    earliest = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    latest = datetime(2026, 11, 27, 2, 55, tzinfo=UTC)
    restorable = datetime(2026, 11, 27, 2, 50, tzinfo=UTC)
    stub.add_response("describe_db_instances", _instance("billing-prod", LatestRestorableTime=restorable,
                                                         BackupRetentionPeriod=7))  # fmt: skip
    stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": [
        {"DBInstanceIdentifier": "billing-prod", "RestoreWindow": {"EarliestTime": earliest, "LatestTime": latest}}
    ]})  # fmt: skip
    window = rds.window("billing-prod")
    assert (window.earliest, window.latest, window.basis) == (earliest, restorable, "RestoreWindow")


def test_window_when_backups_are_disabled(stubbed: tuple[Rds, Stubber]) -> None:
    rds, stub = stubbed
    stub.add_response("describe_db_instances", _instance("jobs", BackupRetentionPeriod=0))
    stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": []})
    window = rds.window("jobs")
    assert window.earliest is None and window.latest is None and "disabled" in window.basis


def test_wait_stops_on_a_failed_restore(stubbed: tuple[Rds, Stubber]) -> None:
    rds, stub = stubbed
    for status in ("creating", "creating", "failed"):
        stub.add_response("describe_db_instances", _instance("r1", status))
    clock = Clock()
    with pytest.raises(UpstreamError, match="r1 is failed"):
        rds.wait_available("r1", timeout=3600, sleep=clock.sleep, monotonic=clock.monotonic, poll=15)
    assert clock.sleeps == [15, 15]


def test_wait_gives_up_after_its_timeout(stubbed: tuple[Rds, Stubber]) -> None:
    rds, stub = stubbed
    for _ in range(3):
        stub.add_response("describe_db_instances", _instance("r1", "creating"))
    clock = Clock()
    with pytest.raises(UpstreamError, match="still creating after 30s"):
        rds.wait_available("r1", timeout=30, sleep=clock.sleep, monotonic=clock.monotonic, poll=15)


def test_aws_errors_are_one_line(stubbed: tuple[Rds, Stubber]) -> None:
    rds, stub = stubbed
    stub.add_client_error("restore_db_instance_to_point_in_time", service_error_code="InvalidRestoreFault",
                          service_message="Restore time is\noutside the window", http_status_code=400)  # fmt: skip
    with pytest.raises(UpstreamError) as caught:
        rds.restore("billing-prod", "b2", time=datetime(2026, 1, 1, tzinfo=UTC))
    assert "InvalidRestoreFault" in caught.value.message and "\n" not in caught.value.message
    stub.add_client_error("describe_db_instances", service_error_code="AccessDenied", service_message="no")
    with pytest.raises(UpstreamError, match="AccessDenied"):
        rds.exists("billing-prod")


def test_an_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients = AwsClients(verify=False, connect_timeout=1, read_timeout=1)
    rds = Rds(lambda region: clients.client("rds", region=region, endpoint_url=f"http://127.0.0.1:{_free_port()}"),
              region=PRIMARY)  # fmt: skip
    with pytest.raises(UpstreamError, match="describe_db_instances"):
        rds.exists("billing-prod")
