"""`drill failover` with AWS parts on moto's real server: the DNS switch on Route53 (a plain record,
and failover record sets with a health check) during a real PostgreSQL failover, and an RDS read
replica whose promotion moto never completes (it leaves the replica link in place), which the
drill notices, rolls back and reports as Failed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.cli.conftest import Runner
from tests.drills.test_failover_pg import in_recovery, sql
from tests.migrate.replica import Pair

pytestmark = pytest.mark.postgres

ZONE, RECORD = "example.com", "db.billing.example.com"
PRIMARY, SECONDARY = "billing-eu.example.net", "billing-us.example.net"

CONFIG = """\
version: 1
environments: [production]
default_env: production
teams: {{platform: {{}}}}
integrations:
  aws: {{region: eu-central-1, secondary_region: us-east-1, endpoint_url: "{url}"}}
policy:
  drills: {{promote_timeout: 3s}}
services:
  - name: billing
    tier: 1
    owner: platform
    database:
      dsn: file:{dsn}
      replica_dsn: file:{replica}
{database}{dns}"""


def write_config(tmp: Path, pair: Pair, url: str, *, database: str = "", dns: str = "") -> Path:
    (tmp / "dsn").write_text(pair.primary + "\n")
    (tmp / "replica").write_text(pair.standby + "\n")
    path = tmp / "opsctl.yaml"
    path.write_text(CONFIG.format(url=url, dsn=tmp / "dsn", replica=tmp / "replica", database=database, dns=dns))
    return path


@pytest.fixture
def cli(aws_env: str, isolated: Path) -> Runner:
    return Runner(dict(os.environ))


def route53(url: str) -> Any:
    return boto3.client("route53", region_name="us-east-1", endpoint_url=url)


def zone(url: str) -> str:
    made = route53(url).create_hosted_zone(Name=ZONE, CallerReference="drill-test")
    return str(made["HostedZone"]["Id"]).rsplit("/", 1)[-1]


def upsert(url: str, zone_id: str, *sets: dict[str, Any]) -> None:
    route53(url).change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": s} for s in sets]}
    )


def records(url: str, zone_id: str) -> list[dict[str, Any]]:
    listed = route53(url).list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [r for r in listed if r["Name"].rstrip(".") == RECORD]


def test_the_failover_drill_moves_a_plain_record_and_the_failback_moves_it_home(
    replica_pair: Pair, aws_env: str, isolated: Path, cli: Runner
) -> None:
    zone_id = zone(aws_env)
    upsert(aws_env, zone_id, {"Name": RECORD, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": PRIMARY}]})
    dns = f"    dns: {{zone: {ZONE}, record: {RECORD}, type: CNAME, primary: {PRIMARY}, secondary: {SECONDARY}, ttl: 30}}\n"
    config = write_config(isolated, replica_pair, aws_env, dns=dns)
    r = cli("--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing", "--markers", "1s",
            timeout=120)  # fmt: skip
    assert r.code == 0, r.stderr
    report = r.json()
    assert "switch dns" in [t["step"] for t in report["timeline"]]
    assert not any("no dns block" in o for o in report["observations"])
    (moved,) = records(aws_env, zone_id)
    assert moved["ResourceRecords"] == [{"Value": SECONDARY}] and moved["TTL"] == 30
    again = cli("--config", str(config), "--yes", "drill", "failover", "billing", timeout=60)
    assert again.code == 3 and "failed over already" in again.stderr  # preflight: the record is not on the primary


def test_failover_record_sets_are_swapped_with_their_health_checks_and_swapped_back_on_failback(
    replica_pair: Pair, aws_env: str, isolated: Path, cli: Runner
) -> None:
    zone_id = zone(aws_env)
    client = route53(aws_env)
    check = client.create_health_check(CallerReference="hc-eu", HealthCheckConfig={
        "Type": "TCP", "FullyQualifiedDomainName": PRIMARY, "Port": 5432})["HealthCheck"]["Id"]  # fmt: skip
    upsert(aws_env, zone_id,
           {"Name": RECORD, "Type": "CNAME", "TTL": 60, "SetIdentifier": "eu", "Failover": "PRIMARY",
            "HealthCheckId": check, "ResourceRecords": [{"Value": PRIMARY}]},
           {"Name": RECORD, "Type": "CNAME", "TTL": 60, "SetIdentifier": "us", "Failover": "SECONDARY",
            "ResourceRecords": [{"Value": SECONDARY}]})  # fmt: skip
    config = write_config(isolated, replica_pair, aws_env, dns=f"    dns: {{zone: {ZONE}, record: {RECORD}}}\n")
    dry = cli("--config", str(config), "--dry-run", "-o", "json", "drill", "failover", "billing")
    assert dry.code == 0, dry.stderr
    assert next(s for s in dry.json() if s["name"] == "switch dns")["action"] == f"UPSERT {RECORD} → {SECONDARY}"
    r = cli("--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing", "--markers", "1s",
            "--failback", timeout=300)  # fmt: skip
    assert r.code == 0, r.stderr
    timeline = {t["step"]: t for t in r.json()["timeline"]}
    assert timeline["switch dns"]["outcome"] == "done" and timeline["switch back"]["outcome"] == "done"
    by_id = {s["SetIdentifier"]: s for s in records(aws_env, zone_id)}
    assert by_id["eu"]["Failover"] == "PRIMARY" and by_id["eu"]["ResourceRecords"] == [{"Value": PRIMARY}]
    assert by_id["eu"]["HealthCheckId"] == check and "HealthCheckId" not in by_id["us"]
    assert by_id["us"]["ResourceRecords"] == [{"Value": SECONDARY}]
    events = cli("--config", str(config), "-o", "json", "runs", "show", r.json()["id"]).json()["timeline"]
    switched = next(e for e in events if e["event"] == "step_done" and e["data"]["step"] == "switch dns")
    assert switched["data"]["result"]["value"] == SECONDARY  # during the drill it pointed at the secondary


def test_a_missing_health_check_on_the_primary_is_refused_by_the_preflight(
    replica_pair: Pair, aws_env: str, isolated: Path, cli: Runner
) -> None:
    zone_id = zone(aws_env)
    upsert(aws_env, zone_id,
           {"Name": RECORD, "Type": "CNAME", "TTL": 60, "SetIdentifier": "eu", "Failover": "PRIMARY",
            "ResourceRecords": [{"Value": PRIMARY}]},
           {"Name": RECORD, "Type": "CNAME", "TTL": 60, "SetIdentifier": "us", "Failover": "SECONDARY",
            "ResourceRecords": [{"Value": SECONDARY}]})  # fmt: skip
    config = write_config(isolated, replica_pair, aws_env, dns=f"    dns: {{zone: {ZONE}, record: {RECORD}}}\n")
    r = cli("--config", str(config), "--yes", "drill", "failover", "billing", timeout=60)
    assert r.code == 3 and "has no HealthCheckId" in r.stderr, r.stderr
    assert in_recovery(replica_pair.standby)


def rds(url: str, region: str) -> Any:
    return boto3.client("rds", region_name=region, endpoint_url=url)


def test_an_rds_promotion_that_never_completes_is_rolled_back_and_reported_failed(
    replica_pair: Pair, aws_env: str, isolated: Path, cli: Runner
) -> None:
    source = rds(aws_env, "eu-central-1").create_db_instance(
        DBInstanceIdentifier="billing-prod", DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername="admin", MasterUserPassword="not-a-real-pw-123", BackupRetentionPeriod=7,
    )["DBInstance"]  # fmt: skip
    rds(aws_env, "us-east-1").create_db_instance_read_replica(
        DBInstanceIdentifier="billing-dr", SourceDBInstanceIdentifier=source["DBInstanceArn"], SourceRegion="eu-central-1"
    )  # fmt: skip
    database = "      replica: billing-dr\n      backup: {provider: rds, instance: billing-prod}\n"
    config = write_config(isolated, replica_pair, aws_env, database=database)
    r = cli("--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing", "--markers", "1s",
            timeout=120)  # fmt: skip
    assert r.code == 1, r.stderr
    report = r.json()
    assert report["result"] == "failed" and "still a read replica" in r.stderr
    timeline = {t["step"]: t["outcome"] for t in report["timeline"]}
    assert timeline["promote"].startswith("failed") and timeline["stop writes"] == "done, rolled back"
    sql(replica_pair.primary, "INSERT INTO opsctl_drill_markers (run_id, seq) VALUES ('after', 1)")  # unfenced
    # a plain instance is not a replica: refused before anything changes
    rds(aws_env, "us-east-1").create_db_instance(
        DBInstanceIdentifier="billing-plain", DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername="admin", MasterUserPassword="not-a-real-pw-123",
    )  # fmt: skip
    plain = write_config(isolated, replica_pair, aws_env,
                         database=database.replace("billing-dr", "billing-plain"))  # fmt: skip
    refused = cli("--config", str(plain), "--yes", "drill", "failover", "billing", timeout=60)
    assert refused.code == 3 and "is not a read replica" in refused.stderr, refused.stderr
    failback = cli("--config", str(config), "--yes", "drill", "failover", "billing", "--failback", timeout=60)
    assert failback.code == 3 and "--failback needs self-managed PostgreSQL" in failback.stderr
