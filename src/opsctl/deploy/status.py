"""What a rollout looks like from outside: ``deploy status``, ``deploy history``, and the
service's recent changes that an incident shows (with the command that rolls each back)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsctl.deploy.target import resolve
from opsctl.operations import views
from opsctl.timeutil import isoformat

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.state.base import RunRecord

DEPLOY_PREFIX = "deploy "
CHANGE_PREFIXES = ("deploy ", "db ")  # the changes an incident lists (migrations join them later)


def describe(run: RunRecord, now: Any) -> dict[str, Any]:
    """One rollout as ``deploy status -o json`` prints it."""
    data = run.data
    return {
        "run_id": run.id,
        "kind": run.kind,
        "service": run.service,
        "env": run.env,
        "state": views.state_of(run, now),
        "step": run.step,
        "weights": data.get("weights") or {"stable": 100.0, "canary": 0.0},
        "image": run.params.get("image") or data.get("image"),
        "previous_image": data.get("stable_image") or data.get("previous_image"),
        "analysis": data.get("analysis"),
        "driver": {"user": run.driver_user, "host": run.driver_host, "pid": run.driver_pid},
        "started_at": isoformat(run.started_at),
        "heartbeat_at": isoformat(run.heartbeat_at),
        "heartbeat_age_seconds": max(0, int((now - run.heartbeat_at).total_seconds()))
        if run.state == "running"
        else None,
        "finished_at": isoformat(run.finished_at),
        "message": run.message,
    }


def _deploys(ctx: Context, service: str, env: str, limit: int) -> list[RunRecord]:
    runs = ctx.store.list_runs(service=service, env=env, limit=max(limit * 4, 50))
    return [r for r in runs if r.kind.startswith(DEPLOY_PREFIX)][:limit]


def status(ctx: Context, service: str) -> dict[str, Any]:
    target = resolve(ctx, service)
    runs = _deploys(ctx, target.name, target.env, 1)
    if not runs:
        return {"service": target.name, "env": target.env, "state": "none", "step": None, "weights": None,
                "image": None, "analysis": None, "driver": None, "heartbeat_at": None}  # fmt: skip
    return describe(runs[0], ctx.clock())


def history(ctx: Context, service: str, limit: int) -> list[dict[str, Any]]:
    target = resolve(ctx, service)
    now = ctx.clock()
    return [describe(r, now) for r in _deploys(ctx, target.name, target.env, limit)]


def changes(ctx: Context, service: str, env: str, *, since: timedelta = timedelta(hours=24)) -> list[dict[str, Any]]:
    """The service's changes in ``env`` since ``since`` ago (newest first), with how to roll each back."""
    now = ctx.clock()
    cutoff = now - since
    found = []
    for run in ctx.store.list_runs(service=service, env=env, limit=200):
        if run.started_at < cutoff:
            break
        if not run.kind.startswith(CHANGE_PREFIXES):
            continue
        rollback = f"opsctl -e {env} deploy rollback {service}" if run.kind.startswith(DEPLOY_PREFIX) else None
        found.append({
            "at": isoformat(run.started_at), "kind": run.kind, "state": views.state_of(run, now),
            "image": run.params.get("image") or run.data.get("image"), "run_id": run.id,
            "by": f"{run.driver_user}@{run.driver_host}", "rollback": rollback,
        })  # fmt: skip
    return found
