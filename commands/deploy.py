"""`opsctl deploy canary|bluegreen|status|promote|rollback|history|scale`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from opsctl.commands._common import context, duration, plan_table
from opsctl.output import Column

if TYPE_CHECKING:
    from opsctl.context import Context

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

_SERVICE = typer.Argument(..., metavar="SERVICE", help="The service to deploy.")
_STATE_COLOURS = {
    "succeeded": "green",
    "running": "cyan",
    "paused": "yellow",
    "orphaned": "bold red",
    "rolled_back": "yellow",
    "interrupted": "yellow",
    "failed": "red",
}
_HISTORY = [
    Column("run_id", "RUN"),
    Column("kind"),
    Column("state", color=lambda v: _STATE_COLOURS.get(str(v))),
    Column("image"),
    Column("weights", fmt=lambda w: f"{w['stable']:g}/{w['canary']:g}" if isinstance(w, dict) else "-"),
    Column("step"),
    Column("started_at", "STARTED"),
    Column("message"),
]


def _status(c: Context, service: str) -> None:
    from opsctl.deploy.status import status

    data = status(c, service)
    if c.output.format != "table":
        c.output.data(data)
        return
    view = dict(data)
    weights = view.get("weights")
    if isinstance(weights, dict):
        view["weights"] = f"stable {weights['stable']:g}% / canary {weights['canary']:g}%"
    analysis = view.pop("analysis", None)
    if isinstance(analysis, dict):
        view["analysis"] = f"{analysis.get('result')} at {analysis.get('step')}% ({analysis.get('at')})"
    driver = view.get("driver")
    if isinstance(driver, dict):
        view["driver"] = f"{driver['user']}@{driver['host']} (pid {driver['pid']})"
    c.output.data(view)
    if isinstance(analysis, dict) and analysis.get("checks"):
        c.output.data(
            analysis["checks"],
            columns=[
                Column("metric"),
                Column("canary", fmt=_num),
                Column("stable", fmt=_num),
                Column("limit", fmt=_num),
                Column("result", color=lambda v: {"pass": "green", "fail": "red"}.get(str(v), "yellow")),
                Column("reason"),
            ],
        )


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _run(c: Context, service: str, action: Any) -> None:
    """Run an engine action; on a dry run print its plan, otherwise the rollout's status (also
    when it ended badly, before the error line and its exit code)."""
    from opsctl.operations.model import RunError, RunResult

    try:
        result = action()
    except RunError:
        if not c.dry_run:
            _status(c, service)
        raise
    if isinstance(result, RunResult) and result.dry_run:
        plan_table(c, result.plan)
    elif isinstance(result, dict):
        c.output.success(f"asked the driver of {result['run_id']} ({result['driver']}) to {result['requested']}")
        c.output.data(result)
    else:
        _status(c, service)


@app.command("canary")
def canary(
    ctx: typer.Context,
    service: str = _SERVICE,
    image: str = typer.Option(..., "--image", "-i", metavar="IMAGE", help="The image to roll out."),
    steps: str | None = typer.Option(None, "--steps", metavar="5,20,50,100", help="Traffic weights (default: policy)."),
    interval: str | None = typer.Option(
        None, "--interval", metavar="DURATION", help="Bake time per step (default: by tier)."
    ),
    on_inconclusive: str = typer.Option(
        "rollback", "--on-inconclusive", metavar="rollback|pause", help="After repeated inconclusive checks."
    ),
    pause_before_promote: bool = typer.Option(
        False, "--pause-before-promote", help="Hold before 100% until 'deploy promote'."
    ),
    resume: bool = typer.Option(False, "--resume", help="Take over the paused or orphaned canary and carry on."),
    allow_rounding: bool = typer.Option(
        False, "--allow-rounding", help="Accept weights the replica count cannot honour."
    ),
    skip_staging_check: bool = typer.Option(
        False, "--skip-staging-check", help="Allow an image not yet deployed in staging."
    ),
) -> None:
    """Roll out IMAGE step by step, judged by Prometheus; rolled back on its own when worse."""
    from opsctl.deploy.canary import Options
    from opsctl.deploy.canary import canary as run_canary

    c = context(ctx)
    options = Options(
        image=image, weights=_weights(steps), interval=_duration(interval), on_inconclusive=on_inconclusive,
        pause_before_promote=pause_before_promote, resume=resume, allow_rounding=allow_rounding,
        skip_staging_check=skip_staging_check,
    )  # fmt: skip
    _run(c, service, lambda: run_canary(c, service, options))


@app.command("bluegreen")
def bluegreen(
    ctx: typer.Context,
    service: str = _SERVICE,
    image: str = typer.Option(..., "--image", "-i", metavar="IMAGE", help="The image for green."),
    skip_staging_check: bool = typer.Option(
        False, "--skip-staging-check", help="Allow an image not yet deployed in staging."
    ),
) -> None:
    """Bring up green, check it, switch the Service, keep blue a while, scale blue down."""
    from opsctl.deploy.bluegreen import Options
    from opsctl.deploy.bluegreen import bluegreen as run_bluegreen

    c = context(ctx)
    _run(c, service, lambda: run_bluegreen(c, service, Options(image=image, skip_staging_check=skip_staging_check)))


@app.command("status")
def status(ctx: typer.Context, service: str = _SERVICE) -> None:
    """The rollout of SERVICE: state, step, weights achieved, last analysis, driver, heartbeat."""
    _status(context(ctx), service)


@app.command("promote")
def promote(
    ctx: typer.Context,
    service: str = _SERVICE,
    full: bool = typer.Option(False, "--full", help="Skip the remaining steps: straight to 100%."),
) -> None:
    """Go on from a paused step (or end the current bake); --full goes straight to 100%."""
    from opsctl.deploy.control import promote as run_promote

    c = context(ctx)
    _run(c, service, lambda: run_promote(c, service, full=full))


@app.command("rollback")
def rollback(ctx: typer.Context, service: str = _SERVICE) -> None:
    """Abort the rollout in flight (from any terminal), or undo the last one (previous revision)."""
    from opsctl.deploy.control import rollback as run_rollback

    c = context(ctx)
    _run(c, service, lambda: run_rollback(c, service))


@app.command("history")
def history(
    ctx: typer.Context,
    service: str = _SERVICE,
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, metavar="N", help="At most this many."),
) -> None:
    """Past rollouts of SERVICE in this environment, newest first."""
    from opsctl.deploy.status import history as past

    c = context(ctx)
    c.output.data(past(c, service, limit), columns=_HISTORY)


@app.command("scale")
def scale(
    ctx: typer.Context,
    service: str = _SERVICE,
    replicas: int = typer.Option(..., "--replicas", metavar="N", help="The replica count."),
) -> None:
    """Set the replica count (the 'scale up' mitigation); confirmed, locked, audited."""
    from opsctl.deploy.control import scale as run_scale

    c = context(ctx)
    _run(c, service, lambda: run_scale(c, service, replicas))


def _weights(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter("use comma-separated percentages, like 5,20,50,100", param_hint="--steps") from None


def _duration(text: str | None) -> Any:
    return duration(text, "--interval", least=1)
