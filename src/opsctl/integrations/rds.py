"""AWS RDS for point-in-time restores and backup-policy checks (boto3, through
:class:`opsctl.integrations.aws.AwsClients`, which passes ``verify`` explicitly).

Every AWS failure becomes one line (:class:`~opsctl.errors.UpstreamError`, exit 4) naming the
call and AWS's error code; an instance that does not exist is ``None`` or a
:class:`~opsctl.errors.RefusedError`, never a traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opsctl.errors import RefusedError, UpstreamError

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


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """One line for whatever AWS or the network says went wrong."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), " ".join(str(error.get("Message", "")).split())[:300]
        raise UpstreamError(f"AWS {what}: {code}: {message}".rstrip(": ")) from None
    except BotoCoreError as exc:
        raise UpstreamError(f"AWS {what}: {' '.join(str(exc).split())[:300]}",
                            "check integrations.aws (region, endpoint_url) and the network") from None  # fmt: skip


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
