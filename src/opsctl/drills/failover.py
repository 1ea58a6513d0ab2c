"""`drill failover SERVICE`: fail the service's database over to its replica, for real, with every
step timed and each one's rollback ready — then measure the RTO and the RPO against the tier.

Preflight (in the operation's check, so a refusal changes nothing, exits 3 and is audited): the
replica exists and is a replica, it streams (self-managed) or replicates normally (RDS), its lag is
under the tier's RPO, the role may fence and promote, and the DNS records (and health checks) are
there and point at the primary.

The steps: preflight again (the state may have moved since), markers (one a second on the old
primary), failure (the moment, on the old primary's clock), stop writes (fence the old primary;
undo: unfence), promote (``pg_promote()`` or ``promote_read_replica`` + waiter; undo: fence the
promoted one, so two primaries never take writes), switch DNS (undo: switch back), verify write
(the first write the new primary accepts: the RTO), measure (the markers it holds: the RPO), and
with ``--failback`` the return (:mod:`opsctl.drills.failback`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsctl.drills import measure, pgnode
from opsctl.drills.measure import observe
from opsctl.errors import RefusedError, UsageError
from opsctl.operations.model import Operation, Step

if TYPE_CHECKING:
    import psycopg

    from opsctl.context import Context
    from opsctl.integrations.rds import Rds
    from opsctl.integrations.route53 import DnsState, Route53
    from opsctl.operations.run import Run
    from opsctl.settings import Service

KIND = "drill failover"


@dataclass(frozen=True)
class Options:
    scenario: str = "region"
    failback: bool = False
    markers: timedelta | None = None


class Nodes:
    """The two databases' connections, opened once and closed together."""

    def __init__(self, primary_dsn: str, replica_dsn: str | None) -> None:
        self.dsns = {"primary": primary_dsn, "replica": replica_dsn}
        self._conns: dict[str, psycopg.Connection[Any]] = {}

    def __call__(self, role: str, *, fresh: bool = False) -> psycopg.Connection[Any]:
        dsn = self.dsns.get(role)
        if not dsn:
            raise UsageError(f"no connection string for the {role}")
        if fresh or role not in self._conns or self._conns[role].closed:
            self.close(role)
            self._conns[role] = pgnode.connect(dsn, "old primary" if role == "primary" else "replica")
        return self._conns[role]

    def close(self, role: str | None = None) -> None:
        for name in [role] if role else list(self._conns):
            conn = self._conns.pop(name, None) if name else None
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass


def _secret(ctx: Context, ref: str | None) -> str | None:
    return (ctx.resolve(ref) or "").strip() or None if ref else None


def mode_of(service: Service) -> str:
    """``postgres`` (a self-managed standby at database.replica_dsn) or ``rds`` (the read replica
    database.replica, when the database is on RDS or says nothing of its backups)."""
    db = service.database
    if db is None:
        raise UsageError(f"service {service.name} has no database block", "a failover drill needs database.dsn")
    on_rds = db.backup is not None and db.backup.provider == "rds"
    if db.replica_dsn and not on_rds:
        return "postgres"
    if db.replica and (on_rds or db.backup is None):
        return "rds"
    if db.replica:
        raise UsageError(f"service {service.name}: a self-managed database fails over to database.replica_dsn",
                         "set database.replica_dsn (a secret reference to the standby's connection string)")  # fmt: skip
    raise UsageError(f"service {service.name} has no replica to fail over to",
                     "set database.replica_dsn (a self-managed standby) or database.replica (an RDS read replica)")  # fmt: skip


def route53_for(ctx: Context, env: str, timeout: float) -> Route53:
    from opsctl.integrations.route53 import Route53

    aws = ctx.integrations_for(env).aws
    client = ctx.clients.get("aws", env=env).client(
        "route53", region=aws.region or "us-east-1", endpoint_url=aws.endpoint_url, profile=aws.profile
    )
    return Route53(client, timeout=timeout)


class Failover:
    def __init__(self, ctx: Context, service: Service, options: Options) -> None:
        db = service.database
        assert db is not None
        self.ctx, self.service, self.options = ctx, service, options
        self.policy = ctx.settings.policy.drills
        self.tier = ctx.settings.effective_tiers()[service.tier]
        self.mode = mode_of(service)
        primary = _secret(ctx, db.dsn)
        if primary is None:
            raise UsageError(f"database.dsn of {service.name} is empty")
        self.nodes = Nodes(primary, _secret(ctx, db.replica_dsn))
        self.rds: Rds | None = None
        self.replica_region: str | None = None
        self.dns: Route53 | None = None
        self.dns_state: DnsState | None = None
        self.facts: dict[str, Any] = {}
        self.clock: dict[str, float] = {}
        self.undoable: list[Step] = []

    # ------------------------------------------------------------------ preflight
    @property
    def max_lag(self) -> float:
        if self.policy.max_lag is not None:
            return self.policy.max_lag.total_seconds()
        rpo = self.tier.rpo.total_seconds()
        return rpo if rpo > 0 else 1.0

    def preflight(self) -> list[str]:
        """Every reason to refuse, in one pass (empty: go)."""
        problems: list[str] = []
        try:
            primary = self.nodes("primary", fresh=True)
        except Exception as exc:
            return [f"the old primary: {getattr(exc, 'message', exc)}"]
        missing = pgnode.privileges(primary)
        if missing:
            problems.append("the role on the primary lacks " + " and ".join(missing))
        if self.mode == "rds":
            problems += self._preflight_rds()
        if self.nodes.dsns["replica"]:
            problems += self._preflight_standby(primary)
        problems += self._preflight_dns()
        self._replication_mode(primary)
        if self.options.failback:
            from opsctl.drills import failback

            problems += failback.preflight(self)
        return problems

    def _preflight_standby(self, primary: psycopg.Connection[Any]) -> list[str]:
        try:
            replica = self.nodes("replica", fresh=True)
        except Exception as exc:
            return [f"the replica: {getattr(exc, 'message', exc)}"]
        state = pgnode.standby_state(primary, replica)
        self.facts["standby"] = state.to_dict()
        problems = []
        if self.mode == "postgres":
            if not state.in_recovery:
                problems.append("the replica is not in recovery: it is not a standby")
            elif not state.streaming:
                problems.append(f"the replica is not streaming (wal receiver: {state.receiver or 'none'})")
            if not pgnode.can_promote(replica):
                problems.append("the role on the replica may not run pg_promote()")
        lag = state.lag_seconds
        if lag is not None and lag > self.max_lag:
            problems.append(f"the replica lags {lag:.1f}s, more than {self.max_lag:.0f}s (the tier's RPO)")
        return problems

    def _preflight_rds(self) -> list[str]:
        from opsctl.backups.sources import rds_for

        db = self.service.database
        assert db is not None and db.replica
        self.rds = rds_for(self.ctx, self.ctx.env)
        aws = self.ctx.integrations_for().aws
        problems = []
        info: dict[str, Any] | None = None
        for region in dict.fromkeys(r for r in (aws.secondary_region, aws.region) if r):
            try:
                info = self.rds.replica_info(db.replica, region=region)
                self.replica_region = region
                break
            except RefusedError:
                continue
        if info is None:
            return [f"RDS instance {db.replica} does not exist in {aws.secondary_region or aws.region}"]
        self.facts["rds_replica"] = info
        source = db.backup.instance if db.backup is not None else None
        if not info.get("is_replica"):
            problems.append(f"RDS instance {db.replica} is not a read replica (no source instance)")
        elif source and not str(info.get("source") or "").endswith(source):
            problems.append(f"RDS instance {db.replica} replicates {info.get('source')}, not {source}")
        replication = info.get("replication")
        if replication is not None and not replication.get("normal", True):
            problems.append(f"replication of {db.replica} is {replication.get('status')}: {replication.get('message')}")
        if info.get("status") != "available":
            problems.append(f"RDS instance {db.replica} is {info.get('status')}, not available")
        if not self.nodes.dsns["replica"]:
            endpoint = info.get("endpoint") or {}
            if endpoint.get("host"):
                from opsctl.backups.provider import _with_host

                self.nodes.dsns["replica"] = _with_host(self.nodes.dsns["primary"] or "", str(endpoint["host"]),
                                                        int(endpoint.get("port") or 5432))  # fmt: skip
        return problems

    def _preflight_dns(self) -> list[str]:
        dns = self.service.dns
        if dns is None:
            return []
        self.dns = route53_for(self.ctx, self.ctx.env, self.policy.dns_timeout.total_seconds())
        self.dns_state = self.dns.inspect(dns.zone, dns.record, dns.type, primary=dns.primary,
                                          secondary=dns.secondary, expect="primary")  # fmt: skip
        self.facts["dns"] = self.dns_state.to_dict()
        return [f"DNS: {p}" for p in self.dns_state.problems]

    def _replication_mode(self, primary: psycopg.Connection[Any]) -> None:
        row = primary.execute(
            "SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit'),"
            " (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))"
        ).fetchone()
        names, commit, sync = row if row else ("", "on", 0)
        self.facts["synchronous"] = bool(names) and int(sync) > 0 and commit in ("on", "remote_write", "remote_apply")

    # ------------------------------------------------------------------ the steps
    def steps(self, run: Run) -> list[Step]:
        where = {"primary": _where(self.nodes.dsns["primary"]), "replica": self.replica_name()}
        given = self.options.markers
        seconds = max(1.0, (given if given is not None else self.policy.markers).total_seconds())
        steps = [
            Step("preflight", "check the replica, its lag and the DNS records again", where["replica"],
                 apply=self._recheck, changes=False),
            Step("markers", f"write a marker a second for {seconds:.0f}s to the old primary", where["primary"],
                 detail={"table": pgnode.MARKERS}, apply=lambda r: self._markers(r, seconds)),
            Step("failure", "mark the moment of failure", where["primary"], apply=self._failure, changes=False),
            Step("stop writes", "fence the old primary: read-only, open sessions ended", where["primary"],
                 apply=self._fence, compensate=self._unfence, undo="make the old primary writable again"),
            Step("promote", "pg_promote() on the standby" if self.mode == "postgres"
                 else "promote_read_replica and wait", where["replica"], apply=self._promote,
                 compensate=self._fence_new, undo="fence the promoted replica (it must be rebuilt)"),
        ]  # fmt: skip
        dns = self.service.dns
        if dns is not None:
            steps.append(Step("switch dns", f"UPSERT {dns.record} → {self._dns_value('secondary')}", dns.record,
                              detail={"zone": dns.zone, "type": dns.type}, apply=self._switch_dns,
                              compensate=self._switch_back, undo=f"point {dns.record} at the primary again"))  # fmt: skip
        self.undoable = [st for st in steps if st.compensate is not None]
        steps += [
            Step("verify write", "a committed write on the new primary", where["replica"], apply=self._verify_write),
            Step("measure", "compare the markers: RPO; failure → first write: RTO", where["replica"],
                 apply=self._measure, changes=False),
        ]  # fmt: skip
        if self.options.failback:
            from opsctl.drills.failback import failback_steps

            steps += failback_steps(self, run)
        return steps

    def replica_name(self) -> str:
        db = self.service.database
        if self.mode == "rds" and db is not None and db.replica:
            return f"RDS {db.replica} ({self.replica_region or '-'})"
        return _where(self.nodes.dsns["replica"])

    def _dns_value(self, side: str) -> str:
        """The primary's or the secondary's value (from config, or read from the failover records:
        the adapter follows a value whichever record set holds it)."""
        state = self.dns_state
        if state is not None:
            found = state.primary if side == "primary" else state.secondary
            if found:
                return str(found)
        return str(getattr(self.service.dns, side, None) or "-")

    def _recheck(self, run: Run) -> dict[str, Any]:
        problems = self.preflight()
        tier_rpo = self.tier.rpo.total_seconds()
        run.save(tier=self.service.tier, systems=[{"system": f"{self.service.name} database", "role": "primary → replica",
                                                    "primary": _where(self.nodes.dsns['primary']),
                                                    "replica": self.replica_name()}])  # fmt: skip
        if tier_rpo == 0 and not self.facts.get("synchronous"):
            observe(run, "the tier's RPO is 0, which asynchronous replication cannot meet: a transaction committed on"
                         " the primary but not yet streamed is lost on failover, whatever this drill measured",
                    follow_up="make the replica synchronous (synchronous_standby_names, synchronous_commit = on) or"
                              " accept an RPO above 0 for this tier")  # fmt: skip
            run.save(conditions=[*(run.data.get("conditions") or []), "asynchronous replication against an RPO of 0"])
        if self.service.dns is None:
            observe(run, "no dns block: clients were not moved to the new primary by this drill",
                    follow_up="configure dns (record, primary, secondary) so a failover moves the clients")  # fmt: skip
            run.save(conditions=[*(run.data.get("conditions") or []), "clients not moved (no DNS)"])
        if problems:
            raise RefusedError("preflight failed: " + "; ".join(problems))
        return {k: v for k, v in self.facts.items() if k in ("standby", "synchronous")}

    def _markers(self, run: Run, seconds: float) -> dict[str, Any]:
        written = measure.write_markers(run, self.nodes("primary"), seconds)
        return {"written": len(written)}

    def _failure(self, run: Run) -> dict[str, Any]:
        at = measure.when(self.nodes("primary"))
        self.clock["failure"] = time.monotonic()
        run.save(failure_at=measure.isoformat_precise(at) if at else None)
        run.progress.note(f"failure declared at {at}")
        return {"failure_at": measure.isoformat_precise(at) if at else None}

    def _fence(self, run: Run) -> dict[str, Any]:
        ended = pgnode.fence(self.nodes("primary"))
        self.nodes.close("primary")  # our own session is the last one that could write
        return {"sessions_ended": ended}

    def _unfence(self, run: Run) -> None:
        pgnode.unfence(self.nodes("primary", fresh=True))
        run.progress.note("the old primary takes writes again")

    def _promote(self, run: Run) -> dict[str, Any]:
        timeout = self.policy.promote_timeout.total_seconds()
        if self.mode == "rds":
            db = self.service.database
            assert self.rds is not None and db is not None and db.replica
            self.rds.promote(db.replica, region=self.replica_region)
            self.rds.wait_promoted(db.replica, region=self.replica_region, timeout=timeout, sleep=run.sleep,
                                   monotonic=time.monotonic, poll=min(10.0, max(0.5, timeout / 5)),
                                   on_status=lambda s: run.progress.status(f"{db.replica}: {s}"))  # fmt: skip
            self.nodes.close("replica")
        else:
            pgnode.promote(self.nodes("replica"), timeout)
        pgnode.unfence(self.nodes("replica"))  # the fence of the old primary replicated here: clear it
        return {"promoted": self.replica_name()}

    def _fence_new(self, run: Run) -> None:
        try:
            in_recovery = bool(self.nodes("replica", fresh=True).execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]
        except Exception as exc:
            observe(run, f"the replica could not be reached during the rollback ({_line(exc)}): if it was promoted,"
                         " fence it by hand before anything writes to it",
                    follow_up=f"check {self.replica_name()}: rebuild it as a replica of the primary")  # fmt: skip
            return
        if in_recovery:
            return  # never promoted: nothing to fence
        pgnode.fence(self.nodes("replica"))
        observe(run, f"the replica {self.replica_name()} was promoted and then fenced by the rollback: it is no"
                     " longer a replica", follow_up=f"rebuild {self.replica_name()} as a replica of the primary"
                                                   " (pg_basebackup -R, or a new RDS read replica)")  # fmt: skip

    def _switch_dns(self, run: Run) -> dict[str, Any]:
        return self._point(run, "secondary")

    def _switch_back(self, run: Run) -> None:
        self._point(run, "primary")

    def _point(self, run: Run, side: str) -> dict[str, Any]:
        dns = self.service.dns
        assert dns is not None and self.dns is not None and self.dns_state is not None
        value = self._dns_value(side)
        change = self.dns.point(self.dns_state, value, ttl=dns.ttl, comment=f"opsctl {KIND} {run.id}: {side}")
        self.dns_state = self.dns.inspect(dns.zone, dns.record, dns.type, primary=dns.primary,
                                          secondary=dns.secondary, expect=side)  # fmt: skip
        return {"record": dns.record, "value": value, "change": change}

    def _verify_write(self, run: Run) -> dict[str, Any]:
        deadline = time.monotonic() + self.policy.promote_timeout.total_seconds()
        last = ""
        while True:
            try:
                conn = self.nodes("replica", fresh=True)
                pgnode.ensure_markers(conn)
                at = pgnode.proof_write(conn, run.id)
                break
            except Exception as exc:
                last = _line(exc)
                if time.monotonic() >= deadline:
                    raise RefusedError(f"the new primary never accepted a write: {last}") from None
                run.progress.status(f"waiting for a write to succeed: {last}")
                run.sleep(1.0)
        self.clock["write"] = time.monotonic()
        rto = round(self.clock["write"] - self.clock.get("failure", self.clock["write"]), 3)
        run.save(write_at=measure.isoformat_precise(at), rto=measure.target(self.tier.rto, rto))
        return {"written_at": measure.isoformat_precise(at), "rto_seconds": rto}

    def _measure(self, run: Run) -> dict[str, Any]:
        from datetime import datetime

        conn = self.nodes("replica")
        survived = [m.seq for m in pgnode.markers(conn, run.id)]
        written = list(run.data.get("markers_written") or [])
        failure = run.data.get("failure_at")
        found = measure.rpo(written, survived, datetime.fromisoformat(failure) if failure else None)
        run.save(marker_result=found, rpo=measure.target(self.tier.rpo, found["actual_seconds"]), failover_done=True)
        for step in self.undoable:  # measured: from here on the new primary serves (and may hold writes the old one
            step.compensate = None  # lacks), so a failure or Ctrl-C in the failback never turns the failover back
        if found["lost"]:
            observe(run, f"{len(found['lost'])} of {found['markers_written']} markers written before the failure"
                         f" are missing on the new primary (#{', #'.join(str(s) for s in found['lost'])})")  # fmt: skip
        return {"rpo_seconds": found["actual_seconds"], "lost": found["lost"]}


def _line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0][:300]


def _where(dsn: str | None) -> str:
    if not dsn:
        return "-"
    from opsctl.migrate.db import location

    return location(dsn)


def failover(ctx: Context, name: str, options: Options) -> Any:
    """Run the drill; the report (also when it failed or was interrupted) and the error to raise."""
    from opsctl.drills.outcome import run_drill

    service = ctx.service(name)
    if options.scenario != "region":
        raise UsageError(f"--scenario {options.scenario!r}: only 'region' exists")
    params: dict[str, Any] = {"scenario": options.scenario, "failback": options.failback, "tier": service.tier}
    op = Operation(
        KIND, service, params, lock="drill", must_confirm=True, env=ctx.env,
        resume_hint="the drill rolls back on failure; check 'opsctl drill report --last'",
    )  # fmt: skip
    found: dict[str, Failover] = {}

    def check() -> None:
        """Everything that can refuse (config, secrets, the preflight), audited, before any change."""
        engine = found["engine"] = Failover(ctx, service, options)
        params["mode"] = engine.mode
        problems = engine.preflight()
        if problems:
            raise RefusedError("preflight: " + "; ".join(problems), "nothing was changed")
        op.confirm = (f"fail {service.name}'s database over to {engine.replica_name()} (a real failover"
                      f"{', and back' if options.failback else ''})")  # fmt: skip

    op.check = check
    try:
        return run_drill(ctx, op, lambda run: found["engine"].steps(run))
    finally:
        if "engine" in found:
            found["engine"].nodes.close()
