"""AWS RDS for point-in-time restores and backup-policy checks (boto3, through
:class:`opsctl.integrations.aws.AwsClients`, which passes ``verify`` explicitly).

Every AWS failure becomes one line (:class:`~opsctl.errors.UpstreamError`, exit 4) naming the
call and AWS's error code; an instance that does not exist is ``None`` or a
:class:`~opsctl.errors.RefusedError`, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opsctl.errors import RefusedError, UpstreamError
from opsctl.integrations.aws import aws_call  # defined there; importable from here for existing callers

ClientFor = Callable[[str], Any]  # region -> boto3 RDS client

FAILED_STATES = ("failed", "incompatible-restore", "incompatible-parameters", "incompatible-network",
                 "storage-full", "inaccessible-encryption-credentials", "deleting")  # fmt: skip


@dataclass(frozen=True)
class Window:
    earliest: datetime | None
    latest: datetime | None
    basis: str  # where the bounds came from: "RestoreWindow", "LatestRestorableTime", "retention"


@dataclass(frozen=True)
class Snapshot:
    id: str
    region: str
    type: str  # "automated" | "manual" | …
    status: str
    created_at: datetime | None
    encrypted: bool
    kms_key: str | None
    source: str | None  # the snapshot it was copied from (a cross-region copy)
    size_gb: int | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Rds:
    def __init__(self, client_for: ClientFor, *, region: str, secondary_region: str | None = None) -> None:
        self.client_for, self.region, self.secondary_region = client_for, region, secondary_region

    @property
    def client(self) -> Any:
        return self.client_for(self.region)

    # ------------------------------------------------------------ instances
    def instance(self, ident: str) -> dict[str, Any] | None:
        """The instance, or None when it does not exist."""
        from botocore.exceptions import ClientError

        with aws_call(f"describe_db_instances {ident}"):
            try:
                found = self.client.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
                    return None
                raise
        return dict(found[0]) if found else None

    def exists(self, ident: str) -> bool:
        return self.instance(ident) is not None

    def require(self, ident: str) -> dict[str, Any]:
        found = self.instance(ident)
        if found is None:
            raise RefusedError(f"RDS instance {ident} does not exist in {self.region}",
                               "check database.backup.instance and integrations.aws.region")  # fmt: skip
        return found

    # ------------------------------------------------------------ the restorable window
    def window(self, ident: str, *, now: datetime | None = None) -> Window:
        """From the automated backups' ``RestoreWindow`` when AWS gives it; the latest bound is
        also capped by the instance's ``LatestRestorableTime``; without a RestoreWindow the
        earliest bound is estimated from the retention period (and the instance's creation)."""
        instance = self.require(ident)
        with aws_call(f"describe_db_instance_automated_backups {ident}"):
            backups = self.client.describe_db_instance_automated_backups(DBInstanceIdentifier=ident).get(
                "DBInstanceAutomatedBackups", []
            )
        earliest = latest = None
        basis = "retention"
        for backup in backups:
            restore = backup.get("RestoreWindow") or {}
            if restore.get("EarliestTime"):
                earliest = _utc(restore["EarliestTime"])
                latest = _utc(restore.get("LatestTime"))
                basis = "RestoreWindow"
        restorable = _utc(instance.get("LatestRestorableTime"))
        if restorable is not None and (latest is None or restorable < latest):
            latest = restorable
            basis = basis if basis == "RestoreWindow" else "LatestRestorableTime"
        if earliest is None:
            days = int(instance.get("BackupRetentionPeriod") or 0)
            if days == 0:
                return Window(None, None, "backups disabled (BackupRetentionPeriod 0)")
            created = _utc(instance.get("InstanceCreateTime"))
            start = (now or datetime.now(UTC)) - timedelta(days=days)
            earliest = max(start, created) if created is not None else start
        return Window(earliest, latest, basis)

    # ------------------------------------------------------------ restore
    def restore(
        self, source: str, target: str, *, time: datetime | None = None, latest: bool = False, **extra: Any
    ) -> dict[str, Any]:
        """``RestoreTime`` or ``UseLatestRestorableTime`` — exactly one of them, never both."""
        if (time is None) == (not latest):
            raise ValueError("give either a time or latest=True")
        args: dict[str, Any] = {"SourceDBInstanceIdentifier": source, "TargetDBInstanceIdentifier": target, **extra}
        if latest:
            args["UseLatestRestorableTime"] = True
        else:
            assert time is not None
            args["RestoreTime"] = time.astimezone(UTC)
        with aws_call(f"restore_db_instance_to_point_in_time {source} -> {target}"):
            return dict(self.client.restore_db_instance_to_point_in_time(**args)["DBInstance"])

    def wait_available(
        self,
        ident: str,
        *,
        timeout: float,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        poll: float = 15.0,
        on_status: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the instance is ``available``; a failed state or the timeout is an UpstreamError."""
        deadline = monotonic() + timeout
        last = ""
        while True:
            found = self.instance(ident)
            status = str(found.get("DBInstanceStatus", "")) if found else "missing"
            if status != last and on_status is not None:
                on_status(status)
            last = status
            if status == "available" and found is not None:
                return found
            if status in FAILED_STATES:
                raise UpstreamError(f"RDS instance {ident} is {status}", "see its events in the RDS console")
            if monotonic() >= deadline:
                raise UpstreamError(f"RDS instance {ident} still {status} after {timeout:.0f}s",
                                    "it may still finish: watch it, or delete it")  # fmt: skip
            sleep(poll)

    def endpoint(self, instance: dict[str, Any]) -> tuple[str | None, int | None]:
        endpoint = instance.get("Endpoint") or {}
        return endpoint.get("Address"), endpoint.get("Port")

    def delete(self, ident: str) -> None:
        """Remove an instance opsctl created (an interrupted restore): no final snapshot."""
        if not self.exists(ident):
            return
        with aws_call(f"delete_db_instance {ident}"):
            self.client.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True,
                                           DeleteAutomatedBackups=True)  # fmt: skip

    # ------------------------------------------------------------ snapshots (backup policy)
    def snapshots(self, ident: str, *, region: str | None = None) -> list[Snapshot]:
        """The instance's snapshots in ``region`` (default: the primary), oldest first.  In another
        region, copies are found by their source ARN naming the instance's snapshots."""
        where = region or self.region
        client = self.client_for(where)
        found: list[dict[str, Any]] = []
        with aws_call(f"describe_db_snapshots {ident} ({where})"):
            paginator = client.get_paginator("describe_db_snapshots")
            args = {"DBInstanceIdentifier": ident} if where == self.region else {}
            for page in paginator.paginate(**args):
                found.extend(page.get("DBSnapshots", []))
        out = []
        for s in found:
            copied_from = s.get("SourceDBSnapshotIdentifier")
            if where != self.region and s.get("DBInstanceIdentifier") != ident and ident not in str(copied_from or ""):
                continue
            out.append(Snapshot(
                str(s.get("DBSnapshotIdentifier")), where, str(s.get("SnapshotType", "")), str(s.get("Status", "")),
                _utc(s.get("SnapshotCreateTime")), bool(s.get("Encrypted")), s.get("KmsKeyId"), copied_from,
                s.get("AllocatedStorage"),
            ))  # fmt: skip
        return sorted(out, key=lambda s: s.created_at or datetime.min.replace(tzinfo=UTC))

    # ------------------------------------------------------------ read replicas (failover drills)
    def _instance_in(self, ident: str, where: str) -> dict[str, Any] | None:
        """The instance in region ``where``, or None when it does not exist there."""
        from botocore.exceptions import ClientError

        with aws_call(f"describe_db_instances {ident} ({where})"):
            try:
                found = self.client_for(where).describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
                    return None
                raise
        return dict(found[0]) if found else None

    @staticmethod
    def _missing(ident: str, where: str) -> RefusedError:
        return RefusedError(f"RDS instance {ident} does not exist in {where}",
                            "check database.replica and integrations.aws (region, secondary_region)")  # fmt: skip

    def _require_in(self, ident: str, where: str) -> dict[str, Any]:
        found = self._instance_in(ident, where)
        if found is None:
            raise self._missing(ident, where)
        return found

    def replica_info(self, ident: str, *, region: str | None = None) -> dict[str, Any]:
        """What a failover needs to know about a (read replica) instance: its status, the instance
        it replicates from (an ARN for a cross-region replica), and how replication is doing
        (``None`` when AWS reports nothing on it, as for an instance that is not a replica)."""
        where = region or self.region
        instance = self._require_in(ident, where)
        source = instance.get("ReadReplicaSourceDBInstanceIdentifier") or None
        replication = None
        for info in instance.get("StatusInfos") or []:
            if str(info.get("StatusType", "")).lower() == "read replication":
                replication = {"status": info.get("Status"), "normal": bool(info.get("Normal")),
                               "message": info.get("Message")}  # fmt: skip
                break
        host, port = self.endpoint(instance)
        return {
            "id": ident,
            "region": where,
            "status": str(instance.get("DBInstanceStatus", "")),
            "source": source,
            "is_replica": source is not None,
            "replication": replication,
            "endpoint": {"host": host, "port": port},
            "engine": instance.get("Engine"),
        }

    def promote(self, ident: str, *, region: str | None = None) -> None:
        """Start promoting a read replica to a standalone instance (its backup retention kept as
        is); :meth:`wait_promoted` tells when it is done."""
        where = region or self.region
        with aws_call(f"promote_read_replica {ident} ({where})"):
            self.client_for(where).promote_read_replica(DBInstanceIdentifier=ident)

    def wait_promoted(
        self,
        ident: str,
        *,
        region: str | None = None,
        timeout: float,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        poll: float = 15.0,
        on_status: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the instance is ``available`` and no longer linked to its source.  Right
        after the call AWS may still show it ``available`` as a replica, so "available" alone is not
        enough.  A failed state, the instance vanishing, or the timeout is an UpstreamError."""
        where = region or self.region
        deadline = monotonic() + timeout
        last, polls = "", 0
        while True:
            found = self._instance_in(ident, where)
            polls += 1
            if found is None:
                if polls == 1:
                    raise self._missing(ident, where)
                raise UpstreamError(f"RDS instance {ident} disappeared from {where} during its promotion",
                                    "see its events in the RDS console")  # fmt: skip
            status = str(found.get("DBInstanceStatus", ""))
            source = found.get("ReadReplicaSourceDBInstanceIdentifier") or None
            shown = f"{status} (still a replica)" if status == "available" and source else status
            if shown != last and on_status is not None:
                on_status(shown)
            last = shown
            if status == "available" and source is None:
                return found
            if status in FAILED_STATES:
                raise UpstreamError(f"RDS instance {ident} is {status} during its promotion",
                                    "see its events in the RDS console")  # fmt: skip
            if monotonic() >= deadline:
                if source is not None:
                    raise UpstreamError(
                        f"RDS instance {ident} is {status} and still a read replica of {source} after {timeout:.0f}s: "
                        "the promotion did not complete",
                        "see its events in the RDS console; the old primary is unchanged",
                    )
                raise UpstreamError(f"RDS instance {ident} still {status} after {timeout:.0f}s: the promotion did "
                                    "not complete", "it may still finish: watch it in the RDS console")  # fmt: skip
            sleep(poll)

    def create_replica(
        self, source: str, target: str, *, region: str | None = None, source_region: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Create ``target`` in ``region`` as a read replica of ``source`` (for a failback: the old
        primary rebuilt as a replica of the new one).  From another region AWS wants the source's
        ARN and ``SourceRegion``; the ARN is looked up there unless ``source`` already is one."""
        where = region or self.region
        origin = source_region or where
        args: dict[str, Any] = {"DBInstanceIdentifier": target, "SourceDBInstanceIdentifier": source, **extra}
        if origin != where:
            if not source.startswith("arn:"):
                arn = self._require_in(source, origin).get("DBInstanceArn")
                if not arn:
                    raise UpstreamError(f"AWS describe_db_instances {source} ({origin}): no DBInstanceArn")
                args["SourceDBInstanceIdentifier"] = arn
            args["SourceRegion"] = origin
        with aws_call(f"create_db_instance_read_replica {source} ({origin}) -> {target} ({where})"):
            return dict(self.client_for(where).create_db_instance_read_replica(**args)["DBInstance"])
