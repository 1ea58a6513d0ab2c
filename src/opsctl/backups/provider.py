"""The two ways a restore is made: pgBackRest (a new data directory on a new port of this host)
and RDS (a new DB instance).  Each prepares (window, target) and builds the runner's steps."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.backups.restore import Options, Plan, remove_dir
from opsctl.backups.verify import verify
from opsctl.errors import RefusedError, UsageError
from opsctl.operations.model import Step

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.operations.run import Run
    from opsctl.settings import Service


def for_service(ctx: Context, service: Service, config: Any, options: Options) -> Any:
    if config.provider == "rds":
        return RdsProvider(ctx, service, config, options)
    return PgBackRestProvider(ctx, service, config, options)


def _target_name(service: Service, given: str | None, now: datetime) -> str:
    import re

    name = given or f"{service.name}-pitr-{now.astimezone(UTC):%Y%m%d-%H%M%S}"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,62}", name):
        raise UsageError(f"--target {name[:80]!r}: letters, digits and '-', starting with a letter, at most 63")
    return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _source_dsn(ctx: Context, service: Service) -> str | None:
    if service.database is None:
        return None
    return (ctx.resolve(service.database.dsn) or "").strip() or None


def _with_host(dsn: str, host: str, port: int) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(dsn)
    parts.update(host=host, port=str(port))
    parts.pop("hostaddr", None)
    return make_conninfo("", **{k: str(v) for k, v in parts.items() if v is not None})


def masked(dsn: str) -> str:
    """The connection string with its password replaced (the value is a secret reference's)."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    user, password = parts.get("user", ""), parts.get("password")
    auth = f"{user}:****@" if password else (f"{user}@" if user else "")
    return f"postgresql://{auth}{parts.get('host', '')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


class PgBackRestProvider:
    def __init__(self, ctx: Context, service: Service, config: Any, options: Options) -> None:
        from opsctl.integrations.pgbackrest import PgBackRest

        if not config.stanza:
            raise UsageError(f"database.backup of {service.name} (pgbackrest) needs 'stanza'")
        self.ctx, self.service, self.config, self.options = ctx, service, config, options
        path = str(Path(config.config).expanduser()) if config.config else None
        self.repo = PgBackRest(config=path, stanza=config.stanza)

    def _root(self) -> Path:
        from opsctl.state import default_state_dir

        db = self.service.database
        if db is not None and db.restore_root:
            return Path(db.restore_root).expanduser()
        return (self.ctx.state_dir or default_state_dir()) / "restores"

    def _archived_until(self) -> tuple[datetime | None, str]:
        """The newest archived WAL's time, read on the primary (pg_stat_archiver)."""
        import psycopg

        dsn = _source_dsn(self.ctx, self.service)
        if dsn is None:
            return None, "no database.dsn"
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute("SELECT last_archived_time FROM pg_stat_archiver").fetchone()
        except psycopg.Error:
            return None, "the primary is unreachable: latest = the newest backup's end"
        return (row[0].astimezone(UTC) if row and row[0] else None), "pg_stat_archiver on the primary"

    def prepare(self, requested: datetime | None, now: datetime) -> Plan:
        backups = self.repo.backups()
        earliest = min((b.stopped_at for b in backups), default=None)
        latest, basis = self._archived_until()
        if latest is None and backups:
            latest = max(b.stopped_at for b in backups)
        target = _target_name(self.service, self.options.target, now)
        root = self._root()
        path = root / target
        if path.exists():
            raise RefusedError(f"restore target {path} already exists", "pick another --target: nothing is overwritten")
        from opsctl.backups.pgbackrest_source import read_config

        source_path = read_config(self.repo.config, self.config.stanza).get("pg1-path")
        if source_path and Path(source_path).resolve() in (path.resolve(), *path.resolve().parents):
            raise RefusedError(f"restore target {path} is (inside) the source's data directory {source_path}",
                               "set database.restore_root elsewhere: nothing is restored over the source")  # fmt: skip
        port = self.options.port or _free_port()
        return Plan(self.service, "pgbackrest", self.config.stanza, target, requested, earliest, latest,
                    {"path": str(path), "port": port, "root": str(root), "basis": basis,
                     "backups": len(backups)})  # fmt: skip

    def steps(self, plan: Plan, run: Run) -> list[Step]:
        from opsctl.integrations.pgbackrest import recovery_result, start_restored, wait_promoted

        path, port = Path(plan.details["path"]), int(plan.details["port"])
        log = str(path.parent / f"{plan.target}.log")
        dsn = self._dsn(port)

        def do_restore(r: Run) -> dict[str, Any]:
            root = Path(plan.details["root"])
            root.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0 and self.repo.run_as:
                import shutil

                shutil.chown(root, self.repo.run_as, self.repo.run_as)
            r.progress.status(f"pgbackrest restore into {path}")
            self.repo.restore(target_time=plan.requested, pg_path=str(path), port=port)
            return {"path": str(path)}

        def undo_restore(r: Run) -> None:
            remove_dir(path)
            _say(r, f"removed the partial restore in {path}")

        def start(r: Run) -> dict[str, Any]:
            start_restored(str(path), port, "/tmp", log)
            return {"port": port}

        def stop(r: Run) -> None:
            self._stop(path)
            _say(r, f"stopped the new instance on port {port} (the restore was not finished)")

        def promoted(r: Run) -> None:
            wait_promoted(_admin(dsn), timeout=600, log=log)

        def check(r: Run) -> dict[str, Any]:
            try:
                text = Path(log).read_text(errors="replace")
            except OSError:
                text = ""
            found = recovery_result(text)
            recovered = found.get("last_transaction")
            result = verify(dsn, self.service, self.options.verify_sql)
            result.update(recovered_to=recovered, stopped_before=found.get("stopped_before"), dsn=masked(dsn),
                          log=log, data_directory=str(path), port=port,
                          recovery_confirmed=recovered is not None or found.get("stopped_before") is not None)  # fmt: skip
            if plan.requested is None:
                result["requested_latest"] = plan.latest
            if not result["recovery_confirmed"]:
                result["ok"] = False
                result.setdefault("problems", []).append("the server log does not confirm the recovery point")
            _keep(r, result)
            return result

        target = f"{path} (port {port})"
        return [
            Step("restore", f"pgbackrest restore --type={'time' if plan.requested else 'default'}"
                 " --target-action=promote --archive-mode=off", target, detail={"stanza": plan.source,
                 "to": plan.requested or "latest"}, apply=do_restore, compensate=undo_restore,
                 undo="remove the new data directory"),
            Step("start", "pg_ctl start (archive_mode=off)", target, apply=start, compensate=stop,
                 undo="stop the new instance"),
            Step("promote", "wait until it leaves recovery", target, apply=promoted, changes=False),
            Step("verify", "connect, write, count key tables, read the recovery point", target, apply=check,
                 changes=False),
        ]  # fmt: skip

    def copy_dsn(self, plan: Plan, run: Run) -> str:
        """The new instance's connection string (the source's, on the new port)."""
        return self._dsn(int(plan.details["port"]))

    def teardown(self, plan: Plan) -> str:
        """Stop the new instance and remove its data directory and log (a drill's scratch copy)."""
        path = Path(plan.details["path"])
        self._stop(path)
        remove_dir(path)
        Path(path.parent / f"{plan.target}.log").unlink(missing_ok=True)
        return f"stopped the instance on port {plan.details['port']} and removed {path}"

    def _dsn(self, port: int) -> str:
        source = _source_dsn(self.ctx, self.service)
        if source is None:
            return f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return _with_host(source, "127.0.0.1", port)

    def _stop(self, path: Path) -> None:
        from opsctl.integrations import pgctl

        pgctl.stop(str(path), timeout=60)


def _admin(dsn: str) -> str:
    return dsn


class RdsProvider:
    def __init__(self, ctx: Context, service: Service, config: Any, options: Options) -> None:
        from opsctl.backups.sources import rds_for

        if not config.instance:
            raise UsageError(f"database.backup of {service.name} (rds) needs 'instance'")
        self.ctx, self.service, self.config, self.options = ctx, service, config, options
        self.rds = rds_for(ctx, ctx.env)

    def prepare(self, requested: datetime | None, now: datetime) -> Plan:
        window = self.rds.window(self.config.instance, now=now)
        target = _target_name(self.service, self.options.target, now)
        if target == self.config.instance:
            raise RefusedError(f"restore target {target} is the source instance", "pick a new --target")
        if self.rds.exists(target):
            raise RefusedError(f"RDS instance {target} already exists", "pick another --target: nothing is overwritten")
        return Plan(self.service, "rds", self.config.instance, target, requested, window.earliest, window.latest,
                    {"basis": window.basis})  # fmt: skip

    def steps(self, plan: Plan, run: Run) -> list[Step]:
        def start(r: Run) -> dict[str, Any]:
            r.progress.status(f"restore_db_instance_to_point_in_time → {plan.target}")
            if plan.requested is None:
                made = self.rds.restore(plan.source, plan.target, latest=True)
            else:
                made = self.rds.restore(plan.source, plan.target, time=plan.requested)
            return {"instance": made.get("DBInstanceIdentifier"), "status": made.get("DBInstanceStatus")}

        def delete(r: Run) -> None:
            self.rds.delete(plan.target)
            _say(r, f"deleted the new RDS instance {plan.target} (the restore was not finished)")

        def wait(r: Run) -> dict[str, Any]:
            import time as clock

            done = self.rds.wait_available(plan.target, timeout=4 * 3600, sleep=r.sleep, monotonic=clock.monotonic,
                                           poll=10, on_status=lambda s: r.progress.status(f"{plan.target}: {s}"))  # fmt: skip
            host, port = self.rds.endpoint(done)
            r.save(endpoint=host, port=port, restorable=str(done.get("LatestRestorableTime") or ""))
            return {"endpoint": host, "port": port}

        def check(r: Run) -> dict[str, Any]:
            dsn = self.copy_dsn(plan, r)
            result = verify(dsn, self.service, self.options.verify_sql)
            # RDS restores to the requested second (or the latest restorable time); it reports no finer point
            result.update(recovered_to=plan.requested or plan.latest, dsn=masked(dsn),
                          recovery_basis="RDS RestoreTime" if plan.requested else "LatestRestorableTime")  # fmt: skip
            if plan.requested is None:
                result["requested_latest"] = plan.latest
            _keep(r, result)
            return result

        target = f"RDS instance {plan.target}"
        return [
            Step("restore", "restore_db_instance_to_point_in_time", target,
                 detail={"source": plan.source, "RestoreTime" if plan.requested else "UseLatestRestorableTime":
                         plan.requested or True}, apply=start, compensate=delete, undo="delete the new instance"),
            Step("available", "wait until the instance is available", target, apply=wait, changes=False),
            Step("verify", "connect, write, count key tables", target, apply=check, changes=False),
        ]  # fmt: skip

    def copy_dsn(self, plan: Plan, run: Run) -> str:
        source = _source_dsn(self.ctx, self.service) or "postgresql://postgres@localhost/postgres"
        return _with_host(source, str(run.data.get("endpoint") or "unknown"), int(run.data.get("port") or 5432))

    def teardown(self, plan: Plan) -> str:
        self.rds.delete(plan.target)
        return f"deleted the RDS instance {plan.target}"


def _say(run: Run, text: str) -> None:
    """A line for the engineer now (stderr) and for the run's timeline."""
    run.note(text)
    run.progress.note(text)


def _keep(run: Run, verification: dict[str, Any]) -> None:
    """The result stays in the run record (drills and reports read it from there)."""
    from opsctl.output import to_plain

    run.save(verification=to_plain(verification))
