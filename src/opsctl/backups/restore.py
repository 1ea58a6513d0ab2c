"""`db restore SERVICE --pitr --to TIME`: the database as it was at TIME, in a NEW instance next to
the damaged one — checked against the restorable window before anything starts, verified after,
and measured against the tier's RPO and RTO.

On the runner: the steps (restore, start, wait for promotion / availability) each undo what they
created, so Ctrl-C or a failure stops and removes the new instance and says so; the source is
never touched.  Verification is the last step and never fails the run: its result decides the
exit code (0 verified and within RPO/RTO, 1 otherwise) after the report is printed."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.backups.sources import backup_config
from opsctl.errors import RefusedError, UsageError
from opsctl.operations.model import Operation, Step
from opsctl.operations.runner import execute

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.settings import Service

KIND = "db restore"


@dataclass(frozen=True)
class Options:
    to: str  # "latest" or a time (ISO 8601 with zone, or relative like -15m)
    target: str | None = None
    port: int | None = None
    verify_sql: str | None = None
    mfa_code: str | None = None


@dataclass
class Plan:
    service: Service
    provider: str
    source: str
    target: str
    requested: datetime | None  # None: the latest restorable point
    earliest: datetime | None
    latest: datetime | None
    details: dict[str, Any] = field(default_factory=dict)


def _fmt(t: datetime | None) -> str:
    return "-" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def parse_to(text: str, now: datetime) -> datetime | None:
    from opsctl.timeutil import parse_instant

    if text.strip().lower() == "latest":
        return None
    try:
        at = parse_instant(text, now=now)
    except ValueError as exc:
        raise UsageError(f"--to: {exc}") from None
    if at > now:
        raise RefusedError(f"--to {_fmt(at)} is in the future (now {_fmt(now)})", "pick a past time, or --to latest")
    return at


def check_window(requested: datetime | None, earliest: datetime | None, latest: datetime | None) -> None:
    window = f"restorable window: {_fmt(earliest)} → {_fmt(latest)}"
    if earliest is None:
        raise RefusedError(f"no backup to restore from ({window})", "check 'opsctl db backups'")
    if requested is None:
        return
    if requested < earliest:
        raise RefusedError(f"{_fmt(requested)} is before the oldest backup: {window}", "pick a time inside the window")
    if latest is not None and requested > latest:
        raise RefusedError(f"{_fmt(requested)} is after the newest archived point: {window}",
                           "pick a time inside the window, or --to latest")  # fmt: skip


def prepared(ctx: Context, service: Service, options: Options, requested: datetime | None, now: datetime) -> Any:
    """The provider's engine and its plan for this restore, the window checked (refusals here)."""
    from opsctl.backups import provider as providers

    engine = providers.for_service(ctx, service, backup_config(service), options)
    plan = engine.prepare(requested, now)
    check_window(requested, plan.earliest, plan.latest)
    return engine, plan


def restore(ctx: Context, name: str, options: Options) -> dict[str, Any]:
    from opsctl import mfa

    service = ctx.service(name)
    config = backup_config(service)
    now = ctx.clock()
    requested = parse_to(options.to, now)
    tier = ctx.settings.effective_tiers()[service.tier]
    production = ctx.env in ctx.settings.policy.deploy.production
    params: dict[str, Any] = {"to": options.to, "requested": requested, "provider": config.provider,
                              "verify_sql": bool(options.verify_sql)}  # fmt: skip
    found: dict[str, Any] = {}
    op = Operation(
        KIND, service, params, lock="restore", must_confirm=service.tier <= 1 and production, env=ctx.env,
        resume_hint="the new instance is stopped and removed on failure; rerun the restore",
    )  # fmt: skip

    def check() -> None:
        """Everything that can refuse, before anything changes (and audited like the run)."""
        used = mfa.require(ctx, KIND, service, options.mfa_code, aws_needed=config.provider == "rds")
        if used is not None:
            params["mfa"] = used
        engine, plan = prepared(ctx, service, options, requested, now)
        params.update(target=plan.target, source=plan.source)
        found.update(engine=engine, plan=plan)
        op.confirm = (f"restore {service.name} ({plan.source}) as of "
                      f"{_fmt(requested) if requested else 'the latest point'} into a new instance {plan.target}")  # fmt: skip

    op.check = check
    started = time.monotonic()
    result = execute(ctx, op, lambda run: found["engine"].steps(found["plan"], run))
    plan = found["plan"]
    if result.dry_run:
        return {"dry_run": True, "plan": result.plan, "target": plan.target, "requested_time": plan.requested,
                "window": {"earliest": plan.earliest, "latest": plan.latest}}  # fmt: skip
    elapsed = time.monotonic() - started
    verification = result.results.get("verify") or {}
    recovered = verification.get("recovered_to")
    reference = plan.requested or verification.get("requested_latest") or now
    loss = max(0.0, (reference - recovered).total_seconds()) if isinstance(recovered, datetime) else None
    rpo, rto = tier.rpo.total_seconds(), tier.rto.total_seconds()
    return {
        "service": service.name, "env": ctx.env, "provider": plan.provider, "source": plan.source,
        "mfa": params.get("mfa"),
        "target": plan.target, "run_id": result.run_id, "requested_time": plan.requested,
        "recovered_to": recovered, "data_loss_seconds": loss, "elapsed_seconds": round(elapsed, 3),
        "rpo": {"target_seconds": rpo, "actual_seconds": loss, "met": loss is not None and loss <= rpo},
        "rto": {"target_seconds": rto, "actual_seconds": round(elapsed, 3), "met": elapsed <= rto},
        "verification": verification, "dsn": verification.get("dsn"),
    }  # fmt: skip


def remove_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def step(name: str, action: str, target: str, **kw: Any) -> Step:
    return Step(name, action, target, **kw)
