"""`deploy canary`: traffic 5 → 20 → 50 → 100 %, each step judged by Prometheus, rolled back on
its own when the canary is worse.

The run's steps: the canary Deployment; then per weight a traffic shift (its undo: all traffic
back to stable, canary at zero) and an analysis (bake, checking as it goes: a failure rolls back
at once; at the end of the bake it must pass — inconclusive holds and re-measures, and after
``inconclusive_limit`` checks rolls back or pauses); then the promotion (the stable Deployment
gets the image; its undo sets the old image back).  A rollout is resumable: every step can be
applied again, and the engine's state (image, weights achieved, the last analysis) lives in the
run record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsctl.deploy import objects, steps
from opsctl.deploy.target import Target, kube, prometheus, resolve
from opsctl.deploy.traffic import rounding_problems
from opsctl.errors import RefusedError, UsageError
from opsctl.operations.model import Operation, RunResult, Step
from opsctl.operations.runner import execute

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.operations.run import Run

KIND = "deploy canary"


@dataclass(frozen=True)
class Options:
    image: str
    weights: list[int] | None = None
    interval: timedelta | None = None
    on_inconclusive: str = "rollback"  # or "pause"
    pause_before_promote: bool = False
    resume: bool = False
    allow_rounding: bool = False
    skip_staging_check: bool = False


def check_image(image: str) -> None:
    if not image or len(image) > 512 or any(c.isspace() or not c.isprintable() for c in image):
        raise UsageError(f"--image {image[:80]!r} is not an image reference", "e.g. registry.example.com/api:2.4.1")


def canary(ctx: Context, service: str, options: Options) -> RunResult:
    target = resolve(ctx, service)
    policy = ctx.settings.policy.deploy
    weights = options.weights or policy.steps
    interval = options.interval or policy.bake_for(target.service.tier)
    params = {
        "image": options.image,
        "weights": weights,
        "interval": interval.total_seconds(),
        "on_inconclusive": options.on_inconclusive,
        "pause_before_promote": options.pause_before_promote,
    }

    def check() -> None:
        check_image(options.image)
        if options.on_inconclusive not in ("rollback", "pause"):
            raise UsageError("--on-inconclusive takes rollback or pause")
        from opsctl.settings.deploy import check_steps

        try:
            check_steps(list(weights))
        except ValueError as exc:
            raise UsageError(f"--steps: {exc}") from None

    takeover = None
    if options.resume:
        found = steps.resumable(ctx, target, KIND)
        if found.params.get("image") != options.image:
            raise UsageError(
                f"the {KIND} to resume ({found.id}) rolls out {found.params.get('image')}, not {options.image}",
                "resume it with its own image, or roll it back first",
            )
        if options.weights or options.interval:
            ctx.output.warn(f"resuming {found.id} with its own steps and interval; --steps/--interval are ignored")
        takeover = found.id
    op = Operation(
        KIND,
        target.service,
        params,
        lock="deploy",
        confirm=f"start a canary of {options.image} on {target.name}",
        must_confirm=steps.must_confirm(ctx, target),
        env=target.env,
        check=check,
        resume_hint=f"'opsctl deploy rollback {target.name}' or 'opsctl deploy canary {target.name} --resume'",
    )
    return execute(ctx, op, lambda run: plan(ctx, target, run, options), takeover=takeover)


def plan(ctx: Context, target: Target, run: Run, options: Options, *, promote_now: bool = False) -> list[Step]:
    """The rollout's steps, from the run's parameters (the same on a resume or a takeover)."""
    params = run.params
    image, weights = str(params["image"]), [int(w) for w in params["weights"]]
    interval = timedelta(seconds=float(params["interval"]))
    policy = ctx.settings.policy.deploy
    client = kube(ctx, target)
    stable = client.get_deployment(target.namespace, target.deployment)
    if stable is None:
        raise RefusedError(f"Deployment {target.where} does not exist", "check kubernetes.deployment and the context")
    container = objects.container_name(stable, target.container)
    fresh = not run.persisted
    if fresh:
        steps.refuse_in_flight(ctx, target)
        prometheus(ctx, target.env).value("vector(1)")  # unreachable: exit 4 before anything changed
        if not options.skip_staging_check:
            steps.staging_check(ctx, target, image)
        replicas = objects.replicas(stable)
        if target.traffic == "service" and not options.allow_rounding:
            problems = rounding_problems(weights, replicas)
            if problems:
                raise RefusedError(
                    f"{target.deployment} has {replicas} replicas: the replica ratio cannot honour "
                    + "; ".join(problems),
                    "use --allow-rounding to accept the achieved weights, --steps to choose others, or scale first",
                )
        run.save(image=image, stable_image=objects.image_of(stable, container), stable_replicas=replicas,
                 container=container, traffic=target.traffic)  # fmt: skip
    rollout = steps.Rollout(ctx, target, run, client, interval=interval, policy=policy)
    plan_steps = [rollout.canary_step(stable, container, image)]
    for weight in weights[:-1]:
        plan_steps.append(rollout.shift_step(weight))
        plan_steps.append(rollout.analysis_step(weight, params.get("on_inconclusive", "rollback")))
    plan_steps.append(rollout.promote_step(image, hold=bool(params.get("pause_before_promote")) and not promote_now))
    return plan_steps


def weights_of(run_data: dict[str, Any]) -> dict[str, float]:
    weights = run_data.get("weights")
    return dict(weights) if isinstance(weights, dict) else {"stable": 100.0, "canary": 0.0}
