"""`db backups` on an RDS service through the real CLI against moto's server."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import boto3
import pytest

from tests.cli.conftest import Runner

CONFIG = """\
version: 1
environments: [production]
default_env: production
teams: {{platform: {{}}}}
integrations:
  aws: {{region: eu-central-1, secondary_region: eu-west-1, endpoint_url: "{url}",
        mfa_serial: "arn:aws:iam::123456789012:mfa/oncall"}}
services:
  - name: billing
    tier: 0
    owner: platform
    database:
      dsn: file:{dsn}
      backup: {{provider: rds, instance: billing-prod}}
"""


def _free_port() -> int:
    """A port nobody listens on: an unreachable endpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cli(aws_env: str, isolated: Path) -> Runner:
    """The installed opsctl, with the test's environment: ``aws_env`` (tests/fakes/moto.py) has reset the
    session's moto server and set dummy AWS credentials, which the CLI inherits."""
    return Runner(dict(os.environ))


def write_config(tmp: Path, url: str) -> Path:
    (tmp / "dsn").write_text("postgresql://billing@db.internal/billing\n")
    path = tmp / "opsctl.yaml"
    path.write_text(CONFIG.format(url=url, dsn=tmp / "dsn"))
    return path


def test_backups_of_a_fresh_rds_instance_report_every_violation(aws_env: str, isolated: Path, cli: Runner) -> None:
    rds = boto3.client("rds", region_name="eu-central-1", endpoint_url=aws_env)
    rds.create_db_instance(
        DBInstanceIdentifier="billing-prod", DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername="admin", MasterUserPassword="not-a-real-pw-123", BackupRetentionPeriod=7,
    )  # fmt: skip
    config = write_config(isolated, aws_env)
    r = cli("--config", str(config), "-o", "json", "db", "backups", "billing")
    assert r.code == 1, r.stderr
    data = r.json()
    assert data["provider"] == "rds" and data["source"] == "billing-prod"
    assert {"type", "started_at", "stopped_at", "size"} <= set(data["backups"][0])
    assert set(data["window"]) >= {"earliest", "latest"}
    by_rule = {p["rule"]: p for p in data["policy"]}
    assert by_rule["pitr covers 7 days"]["status"] == "VIOLATION"  # the instance is minutes old
    assert by_rule["backups kept 30 days"]["status"] == "VIOLATION"
    assert "retention 7 days" in by_rule["backups kept 30 days"]["evidence"]
    assert by_rule["encrypted copy in another region"]["status"] == "VIOLATION"
    assert "policy violation" in r.stderr


def test_an_encrypted_copy_in_the_secondary_region_satisfies_the_copy_rule(
    aws_env: str, isolated: Path, cli: Runner
) -> None:
    rds = boto3.client("rds", region_name="eu-central-1", endpoint_url=aws_env)
    rds.create_db_instance(
        DBInstanceIdentifier="billing-prod", DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername="admin", MasterUserPassword="not-a-real-pw-123", BackupRetentionPeriod=35,
    )  # fmt: skip
    rds.create_db_snapshot(DBInstanceIdentifier="billing-prod", DBSnapshotIdentifier="billing-daily")
    arn = rds.describe_db_snapshots(DBSnapshotIdentifier="billing-daily")["DBSnapshots"][0]["DBSnapshotArn"]
    key = boto3.client("kms", region_name="eu-west-1", endpoint_url=aws_env).create_key()["KeyMetadata"]["Arn"]
    boto3.client("rds", region_name="eu-west-1", endpoint_url=aws_env).copy_db_snapshot(
        SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="billing-daily-dr", KmsKeyId=key,
        SourceRegion="eu-central-1",
    )  # fmt: skip
    config = write_config(isolated, aws_env)
    r = cli("--config", str(config), "-o", "json", "db", "backups", "billing")
    by_rule = {p["rule"]: p for p in json.loads(r.stdout)["policy"]}
    assert by_rule["encrypted copy in another region"]["status"] == "OK"
    assert "billing-daily-dr" in by_rule["encrypted copy in another region"]["evidence"]
    assert by_rule["backups kept 30 days"]["status"] == "OK"
    table = cli("--config", str(config), "db", "backups", "billing")
    assert table.code == 1 and "VIOLATION" in table.stdout and "billing-daily" in table.stdout


def test_unknown_instance_and_unreachable_aws(aws_env: str, isolated: Path, cli: Runner) -> None:
    config = write_config(isolated, aws_env)
    r = cli("--config", str(config), "db", "backups", "billing")
    assert r.code == 3 and "billing-prod does not exist" in r.stderr
    dead = write_config(isolated, f"http://127.0.0.1:{_free_port()}")
    r = cli("--config", str(dead), "db", "backups", "billing")
    assert r.code == 4 and "Traceback" not in r.stderr and r.stderr.count("\n") <= 2


def test_rds_restore_creates_a_new_instance_and_reports(aws_env: str, isolated: Path, cli: Runner) -> None:
    rds = boto3.client("rds", region_name="eu-central-1", endpoint_url=aws_env)
    rds.create_db_instance(
        DBInstanceIdentifier="billing-prod", DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername="admin", MasterUserPassword="not-a-real-pw-123", BackupRetentionPeriod=7,
    )  # fmt: skip
    config = write_config(isolated, aws_env)
    (isolated / "dsn").write_text("postgresql://billing:Db-Secret-9@db.internal/billing\n")
    base = (
        "--config",
        str(config),
        "--yes",
        "-o",
        "json",
        "db",
        "restore",
        "billing",
        "--pitr",
        "--mfa-code",
        "246810",
    )
    refused = cli(*base, "--to", "-30d")
    assert refused.code == 3 and "restorable window" in refused.stderr
    same = cli(*base, "--to", "latest", "--target", "billing-prod")
    assert same.code == 3 and "is the source" in same.stderr
    r = cli(*base, "--to", "latest", "--target", "billing-pitr")
    # moto's instances have no reachable endpoint: restored, but verification fails (exit 1)
    assert r.code == 1, r.stderr
    report = r.json()
    assert report["target"] == "billing-pitr" and report["provider"] == "rds"
    assert report["verification"]["ok"] is False and "verification failed" in r.stderr
    assert "Db-Secret-9" not in r.stdout + r.stderr and re.search(r"billing:\*+@billing-pitr", report["dsn"])
    assert set(report) >= {"requested_time", "recovered_to", "data_loss_seconds", "elapsed_seconds", "rpo", "rto"}
    instances = {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]}
    assert instances == {"billing-prod", "billing-pitr"}
    assert report["mfa"] == "sts-verified"  # moto's STS answered get_session_token; its credentials were used
    again = cli(*base, "--to", "latest", "--target", "billing-pitr")
    assert again.code == 3 and "already exists" in again.stderr
    audit = cli("--config", str(config), "audit", "-o", "json").json()
    assert any(a["command"] == "db restore" and "sts-verified" in json.dumps(a["args"]) for a in audit)
    assert "246810" not in json.dumps(audit)
