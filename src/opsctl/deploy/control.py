"""Steering a rollout from any terminal: promote, roll back, undo a finished rollout, scale.

A rollout whose driver is alive is asked (a request in its run's timeline, acted on at its
next check); one whose driver is gone (orphaned), or that is paused or stopped half-way, is
taken over atomically — resumed towards 100 % by ``promote``, undone by ``rollback``.  With
nothing in flight, ``rollback`` rolls the Deployment back to its previous revision the way
``kubectl rollout undo`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsctl.deploy import objects
from opsctl.deploy.steps import latest
from opsctl.deploy.target import Target, kube, resolve
from opsctl.deploy.traffic import wait_ready
from opsctl.errors import RefusedError, UpstreamError, UsageError
from opsctl.operations import views
from opsctl.operations.model import PAUSED, RUNNING, Operation, RunResult, Step
from opsctl.operations.runner import execute

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.operations.run import Run
    from opsctl.state.base import RunRecord

ACK_WAIT = 30.0  # seconds a live driver has to pick up a request


def _alive(ctx: Context, run: RunRecord) -> bool:
    return run.state == RUNNING and not views.is_orphaned(run, ctx.clock())


def _ask(ctx: Context, run: RunRecord, action: str, **data: Any) -> dict[str, Any]:
    """Leave the request and wait (bounded) until the live driver picked it up."""
    seq = views.request(ctx, run.id, action, **data)
    waited = 0.0
    while not views.seen(ctx, run.id, seq):
        if waited >= ACK_WAIT:
            raise UpstreamError(
                f"the driver of run {run.id} ({run.driver_user}@{run.driver_host}, pid {run.driver_pid}) has not picked"
                f" up the {action} request after {ACK_WAIT:g}s",
                "it may be frozen; once it is orphaned, this command takes the run over",
            )
        ctx.sleep(0.5)
        waited += 0.5
    return {"run_id": run.id, "requested": action, "driver": f"{run.driver_user}@{run.driver_host}:{run.driver_pid}"}


def _takeover(ctx: Context, target: Target, run: RunRecord, *, rollback: bool, full: bool = False) -> RunResult:
    """Take an orphaned, paused or half-done rollout over: resume it to 100 % or undo it."""
    from opsctl.deploy import bluegreen, canary

    image = str(run.params.get("image"))

    def plan(taken: Run) -> list[Step]:
        if not rollback:
            taken.save(promote_skip=True, promote_full=full or bool(taken.data.get("promote_full")))
        if run.kind == canary.KIND:
            return canary.plan(ctx, target, taken, canary.Options(image=image), promote_now=True)
        return bluegreen.plan(ctx, target, taken, bluegreen.Options(image=image), promote_now=True)

    op = Operation(run.kind, target.service, dict(run.params), lock="deploy", env=target.env)
    return execute(ctx, op, plan, takeover=run.id, rollback=rollback)


def promote(ctx: Context, service: str, *, full: bool) -> dict[str, Any] | RunResult:
    target = resolve(ctx, service)
    run = latest(ctx, target)
    if run is None or run.state not in (RUNNING, PAUSED):
        raise UsageError(f"no rollout of {target.name} in {target.env} is in flight", "'opsctl deploy status' shows it")
    if _alive(ctx, run):
        return _ask(ctx, run, "promote", full=full)
    return _takeover(ctx, target, run, rollback=False, full=full)


def rollback(ctx: Context, service: str) -> dict[str, Any] | RunResult:
    """Abort the rollout in flight, or undo the last finished one (previous revision)."""
    target = resolve(ctx, service)
    run = latest(ctx, target)
    if run is not None and _alive(ctx, run):
        return _ask(ctx, run, "abort")
    if run is not None and (run.state in (RUNNING, PAUSED) or run.data.get("still_applied")):
        return _takeover(ctx, target, run, rollback=True)
    if run is not None and run.kind == "deploy bluegreen" and run.state == "succeeded":
        from opsctl.deploy.bluegreen import switch_back

        return switch_back(ctx, target)
    return undo(ctx, target)


def _deployment(client: Any, target: Target) -> dict[str, Any]:
    dep = client.get_deployment(target.namespace, target.deployment)
    if dep is None:
        raise RefusedError(f"Deployment {target.where} does not exist", "check kubernetes.deployment and the context")
    return dict(dep)


def undo(ctx: Context, target: Target) -> RunResult:
    """Roll the Deployment back to its previous ReplicaSet revision (``kubectl rollout undo``):
    apps/v1 has no rollback endpoint; the previous revision's pod template is patched back."""
    client = kube(ctx, target)
    policy = ctx.settings.policy.deploy

    def plan(run: Run) -> list[Step]:
        dep = _deployment(client, target)
        selector = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
        number, template = objects.previous_template(dep, client.list_replicasets(target.namespace, selector))
        current = dep["spec"]["template"]
        container = objects.container_name(dep, target.container)
        images = (objects.image_of(dep, container), objects.image_of({"spec": {"template": template}}, container))
        run.save(image=images[1], previous_image=images[0], revision=number)

        def put(template_: dict[str, Any]) -> Any:
            def apply(r: Run) -> int:
                def mutate(d: dict[str, Any]) -> dict[str, Any]:
                    d["spec"]["template"] = template_
                    return d

                client.update_deployment(target.namespace, target.deployment, mutate)
                wait_ready(r, client, target.namespace, target.deployment, objects.replicas(dep), policy.ready_timeout,
                           policy.poll.total_seconds())  # fmt: skip
                return number

            return apply

        return [
            Step(
                f"undo to revision {number}",
                f"set the pod template of Deployment {target.where} back to revision {number} ({images[1]})",
                target=f"kubernetes {target.env}",
                detail={"from_image": images[0], "to_image": images[1], "revision": number},
                apply=put(template),
                compensate=lambda r: put(current)(r) and None,
                undo=f"back to the current template ({images[0]})",
            )
        ]

    op = Operation("deploy rollback", target.service, {"revision": "previous"}, lock="deploy", env=target.env,
                   confirm=f"roll {target.name} back to its previous revision")  # fmt: skip
    return execute(ctx, op, plan)


def scale(ctx: Context, service: str, replicas: int) -> RunResult:
    """The manual's "scale up" mitigation, as a run (its undo restores the previous count)."""
    if not 0 <= replicas <= 10_000:
        raise UsageError(f"--replicas {replicas} is out of range", "use 0 to 10000")
    target = resolve(ctx, service)
    client = kube(ctx, target)
    policy = ctx.settings.policy.deploy

    def plan(run: Run) -> list[Step]:
        dep = _deployment(client, target)
        before = objects.replicas(dep)
        run.save(replicas_before=before, replicas=replicas)

        def to(count: int) -> Any:
            def apply(r: Run) -> int:
                client.patch_deployment(target.namespace, target.deployment, {"spec": {"replicas": count}})
                if count:
                    wait_ready(r, client, target.namespace, target.deployment, count, policy.ready_timeout,
                               policy.poll.total_seconds())  # fmt: skip
                return count

            return apply

        return [
            Step(
                f"scale to {replicas}",
                f"set replicas of Deployment {target.where} from {before} to {replicas}; wait until ready",
                target=f"kubernetes {target.env}",
                apply=to(replicas),
                compensate=lambda r: to(before)(r) and None,
                undo=f"back to {before} replicas",
            )
        ]

    op = Operation("deploy scale", target.service, {"replicas": replicas}, lock="deploy", env=target.env,
                   confirm=f"scale {target.name} to {replicas} replicas")  # fmt: skip
    return execute(ctx, op, plan)
