"""`drill restore SERVICE`: the monthly restore drill — a point-in-time restore of a recent point into
a scratch instance (the same provider steps as ``db restore``), verified, measured against the
tier's RTO and RPO, and torn down (``--keep`` keeps it).

With ``--to latest`` (the default) the drill first writes its marker sequence to the source, marks
the failure, and the RPO is what the restored copy lost of the markers (what a real restore after
losing the primary now would lose: WAL not yet archived is gone).  With ``--to TIME`` the RPO is the
distance between the requested point and the point the copy reached.  The RTO runs from the
failure to the moment the copy took its verification write."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsctl.drills import measure
from opsctl.drills.measure import observe
from opsctl.errors import FailedError, UsageError
from opsctl.operations.model import Operation, Step

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.drills.outcome import Outcome
    from opsctl.operations.run import Run
    from opsctl.settings import Service

KIND = "drill restore"


@dataclass(frozen=True)
class Options:
    to: str = "latest"
    keep: bool = False
    target: str | None = None
    port: int | None = None
    verify_sql: str | None = None
    markers: timedelta | None = None


class RestoreDrill:
    def __init__(self, ctx: Context, service: Service, options: Options) -> None:
        from opsctl.backups.restore import parse_to

        self.ctx, self.service, self.options = ctx, service, options
        self.tier = ctx.settings.effective_tiers()[service.tier]
        self.now = ctx.clock()
        self.requested = parse_to(options.to, self.now)
        self.engine: Any = None
        self.plan: Any = None
        self.started = 0.0

    def check(self) -> None:
        from opsctl.backups import restore

        target = self.options.target or f"{self.service.name}-drill-{self.now.astimezone(UTC):%Y%m%d-%H%M%S}"
        options = restore.Options(self.options.to, target, self.options.port, self.options.verify_sql)
        self.engine, self.plan = restore.prepared(self.ctx, self.service, options, self.requested, self.now)

    def _source(self) -> str | None:
        db = self.service.database
        return (self.ctx.resolve(db.dsn) or "").strip() or None if db is not None else None

    def steps(self, run: Run) -> list[Step]:
        plan = self.plan
        restored = self.engine.steps(plan, run)
        where = f"{plan.provider} {plan.source}"
        given = self.options.markers
        seconds = (given if given is not None else self.ctx.settings.policy.drills.markers).total_seconds()
        steps: list[Step] = []
        if self.requested is None and seconds > 0:
            steps.append(Step("markers", f"write a marker a second for {seconds:.0f}s to the source", where,
                              apply=lambda r: self._markers(r, seconds)))  # fmt: skip
        steps.append(Step("failure", "mark the moment of failure", where, apply=self._failure, changes=False))
        steps += restored
        steps.append(Step("measure", "RPO from the markers (or the recovery point), RTO to the verified copy",
                          plan.target, apply=self._measure, changes=False))  # fmt: skip
        if not self.options.keep:
            steps.append(Step("teardown", "stop and remove the scratch instance", plan.target, apply=self._teardown))
        return steps

    def _markers(self, run: Run, seconds: float) -> dict[str, Any]:
        from opsctl.drills import pgnode

        source = self._source()
        if source is None:
            raise UsageError(f"database.dsn of {self.service.name} is empty")
        with pgnode.connect(source, "source database") as conn:
            written = measure.write_markers(run, conn, seconds)
        return {"written": len(written)}

    def _failure(self, run: Run) -> dict[str, Any]:
        from opsctl.drills import pgnode

        at: datetime | None = None
        source = self._source()
        if source is not None and run.data.get("markers_written"):
            with pgnode.connect(source, "source database") as conn:
                at = measure.when(conn)
        at = at or self.ctx.clock()
        self.started = time.monotonic()
        run.save(failure_at=measure.isoformat_precise(at), tier=self.service.tier,
                 systems=[{"system": f"{self.service.name} database", "role": f"restore from {self.plan.provider}",
                           "source": self.plan.source, "target": self.plan.target}])  # fmt: skip
        return {"failure_at": measure.isoformat_precise(at)}

    def _measure(self, run: Run) -> dict[str, Any]:
        from opsctl.drills import pgnode

        verification = run.data.get("verification") or {}
        rto = round(time.monotonic() - self.started, 3)
        recovered = _parse(verification.get("recovered_to"))
        failure = _parse(run.data.get("failure_at"))
        written = list(run.data.get("markers_written") or [])
        if written:
            with pgnode.connect(self.engine.copy_dsn(self.plan, run), "restored copy") as conn:
                survived = [m.seq for m in pgnode.markers(conn, run.id)] if _has_markers(conn) else []
            found = measure.rpo(written, survived, failure, recovered)
        else:
            reference = self.requested or failure
            loss = (
                None
                if recovered is None or reference is None
                else round(max(0.0, (reference - recovered).total_seconds()), 3)
            )
            found = {"actual_seconds": loss, "basis": "requested point − recovered point", "lost": [],
                     "markers_written": 0, "markers_survived": 0, "lower_bound": False}  # fmt: skip
        run.save(marker_result=found if written else None, rpo=measure.target(self.tier.rpo, found["actual_seconds"]),
                 rto=measure.target(self.tier.rto, rto))  # fmt: skip
        if found["lost"]:
            observe(run, f"{len(found['lost'])} of {found['markers_written']} markers written before the failure are"
                         " not in the restored copy: their WAL was not archived yet",
                    follow_up="bound the archive lag (archive_timeout) to what the tier's RPO allows")  # fmt: skip
        if not verification.get("ok"):
            problems = "; ".join(verification.get("problems") or []) or "verification failed"
            raise FailedError(f"the restored copy failed its verification: {problems}")
        return {"rpo_seconds": found["actual_seconds"], "rto_seconds": rto}

    def _teardown(self, run: Run) -> dict[str, Any]:
        said = self.engine.teardown(self.plan)
        run.note(said)
        return {"teardown": said}


def _has_markers(conn: Any) -> bool:
    from opsctl.drills.pgnode import MARKERS

    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MARKERS,)).fetchone()
    return bool(row and row[0])


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def restore_drill(ctx: Context, name: str, options: Options) -> Outcome:
    from opsctl.drills.outcome import run_drill

    service = ctx.service(name)
    drill = RestoreDrill(ctx, service, options)
    params: dict[str, Any] = {"scenario": "point-in-time restore", "to": options.to, "keep": options.keep,
                              "tier": service.tier}  # fmt: skip
    production = ctx.env in ctx.settings.policy.deploy.production
    op = Operation(
        KIND, service, params, lock="drill", must_confirm=service.tier <= 1 and production, env=ctx.env,
        check=drill.check, confirm=f"restore drill of {service.name}: a scratch restore next to the source",
        resume_hint="the scratch instance is removed on failure; run the drill again",
    )  # fmt: skip
    return run_drill(ctx, op, drill.steps)
