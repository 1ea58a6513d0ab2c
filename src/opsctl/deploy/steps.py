"""The steps of a rollout, and the checks before one starts.

:class:`Rollout` builds each step with what it will change (the plan ``--dry-run`` prints), how
it applies, and how it is undone: the traffic steps' undo is "all traffic to stable, canary at
zero", the promotion's undo sets the stable Deployment's previous image back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsctl.deploy import objects
from opsctl.deploy.traffic import strategy, wait_ready
from opsctl.errors import FailedError, RefusedError, UsageError
from opsctl.operations.model import PAUSED, RUNNING, Pause, Step

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.deploy.target import Target
    from opsctl.operations.run import Run
    from opsctl.settings.deploy import DeployPolicy
    from opsctl.state.base import RunRecord

DEPLOY_KINDS = ("deploy canary", "deploy bluegreen")


class Aborted(FailedError):
    """Someone asked the driver to abort (``deploy rollback`` from another terminal)."""


class AnalysisFailed(FailedError):
    """The analysis judged the canary worse: the rollout is rolled back."""


def must_confirm(ctx: Context, target: Target) -> bool:
    """Production and tiers 0-1 confirm before starting and before 100%."""
    policy = ctx.settings.policy.deploy
    return target.env in policy.production or target.service.tier in policy.confirm_tiers


def latest(ctx: Context, target: Target, kinds: tuple[str, ...] = DEPLOY_KINDS) -> RunRecord | None:
    runs = ctx.store.list_runs(service=target.name, env=target.env, limit=200)
    return next((r for r in runs if r.kind in kinds), None)


def resumable(ctx: Context, target: Target, kind: str) -> RunRecord:
    """The run ``--resume`` takes over: the newest of its kind, paused, orphaned or stopped half-way."""
    run = latest(ctx, target, (kind,))
    if run is None or not (run.state in (RUNNING, PAUSED) or run.data.get("still_applied")):
        raise UsageError(f"no {kind} of {target.name} in {target.env} to resume", "start one without --resume")
    return run


def refuse_in_flight(ctx: Context, target: Target) -> None:
    """One rollout per service and environment: a paused or half-undone one is decided first."""
    run = latest(ctx, target)
    if run is not None and (run.state == PAUSED or (run.state != RUNNING and run.data.get("still_applied"))):
        raise RefusedError(
            f"{run.kind} {run.id} of {target.name} is {run.state} at step '{run.step}'",
            f"promote it ('opsctl deploy promote {target.name}'), roll it back ('opsctl deploy rollback "
            f"{target.name}') or resume it (--resume) first",
        )


def staging_check(ctx: Context, target: Target, image: str) -> None:
    """A production canary needs the image to have succeeded in staging first (the pipeline's order)."""
    policy = ctx.settings.policy.deploy
    staging = policy.staging
    if target.env not in policy.production or staging is None or staging not in ctx.settings.environments:
        return
    runs = [r for r in ctx.store.list_runs(service=target.name, env=staging, limit=500) if r.kind in DEPLOY_KINDS]
    if any(r.state == "succeeded" and r.params.get("image") == image for r in runs):
        return
    last = runs[0] if runs else None
    seen = (
        f"the last {staging} deploy of {target.name} was {last.params.get('image')} ({last.state}, run {last.id})"
        if last
        else f"{target.name} has no deploy in {staging} at all"
    )
    raise RefusedError(
        f"{image} has no succeeded deploy in {staging}; {seen}",
        f"deploy it to {staging} first ('opsctl -e {staging} deploy canary {target.name} --image {image}'),"
        " or use --skip-staging-check",
    )


class Rollout:
    """Builds a rollout's steps for one run (the kube client and policy bound)."""

    def __init__(
        self, ctx: Context, target: Target, run: Run, client: Any, *, interval: timedelta, policy: DeployPolicy
    ) -> None:
        self.ctx, self.target, self.run, self.kube = ctx, target, run, client
        self.interval, self.policy = interval, policy
        self.poll = policy.poll.total_seconds()
        self.traffic = strategy(client, target, timeout=policy.ready_timeout, poll=self.poll)

    def _restore(self, run: Run) -> None:
        self.traffic.restore(run)
        run.save(weights={"stable": 100.0, "canary": 0.0})

    def _stable_replicas(self, run: Run) -> int:
        return int(run.data.get("stable_replicas") or 1)

    # ---------------------------------------------------------------- canary Deployment
    def canary_step(self, stable: dict[str, Any], container: str, image: str) -> Step:
        t = self.target
        body = objects.canary_from(stable, t.canary, container, image, 0)

        def apply(run: Run) -> str:
            existing = self.kube.get_deployment(t.namespace, t.canary)
            if existing is None:
                self.kube.create_deployment(t.namespace, body)
            else:

                def mutate(current: dict[str, Any]) -> dict[str, Any]:
                    current["spec"] = body["spec"]
                    current["metadata"].setdefault("labels", {}).update(body["metadata"]["labels"])
                    return current

                self.kube.update_deployment(t.namespace, t.canary, mutate)
            self.traffic.prepare(run)
            return t.canary

        return Step(
            "canary deployment",
            f"create or replace Deployment {t.namespace}/{t.canary}: image {image}, 0 replicas, track=canary",
            target=f"kubernetes {t.env}",
            detail=body,
            apply=apply,
            compensate=self._restore,
            undo="all traffic to stable, canary at 0 replicas",
        )

    # ---------------------------------------------------------------- traffic
    def shift_step(self, weight: int) -> Step:
        t = self.target
        how = "replica ratio" if t.traffic == "service" else f"HTTPRoute {t.namespace}/{t.route} weights"

        def apply(run: Run) -> dict[str, Any]:
            if run.data.get("promote_full"):
                return {"skipped": "promoted with --full"}
            run.progress.status(f"shifting {weight}% to the canary")
            split = self.traffic.shift(run, weight, self._stable_replicas(run))
            run.save(weights={"stable": split.stable, "canary": split.canary}, split=split.to_dict())
            if abs(split.canary - weight) >= 0.05:
                run.note(f"{weight}% requested, {split.canary:g}% achieved ({split.canary_replicas} canary pods)")
            return split.to_dict()

        return Step(
            f"shift {weight}%",
            f"send {weight}% of traffic to the canary ({how}); wait until its pods are ready",
            target=f"kubernetes {t.env}",
            detail={"weight": weight, **self.traffic.describe(weight, self._stable_replicas(self.run))},
            apply=apply,
            compensate=self._restore,
            undo="all traffic to stable, canary at 0 replicas",
        )

    # ---------------------------------------------------------------- analysis
    def analysis_step(self, weight: int, on_inconclusive: str) -> Step:
        from opsctl.deploy.judging import Judge

        judge = Judge(self.ctx, self.target, self.policy.analysis, self.interval)
        return Step(
            f"analyse {weight}%",
            f"bake {self.interval}, checking every {judge.every}; pass only inside the limits and no worse than stable",
            target=f"prometheus {self.target.env}",
            detail=judge.describe(),
            apply=lambda run: judge.run(run, weight, on_inconclusive),
            changes=False,
        )

    # ---------------------------------------------------------------- promotion
    def promote_step(self, image: str, *, hold: bool) -> Step:
        t = self.target

        def apply(run: Run) -> str:
            if hold:
                self._hold(run)
            if must_confirm(self.ctx, t) and not self.ctx.yes:
                try:
                    self.ctx.confirm(f"promote {image} to 100% of {t.name}", service=t.service, always=True)
                except RefusedError as exc:
                    raise Pause(
                        f"the promotion was not confirmed ({exc.message})", f"'opsctl deploy promote {t.name}'"
                    ) from None
            self._set_stable_image(run, image)
            self._restore(run)
            run.save(promoted=True)
            return image

        def undo(run: Run) -> None:
            old = run.data.get("stable_image")
            if old:
                self._set_stable_image(run, str(old))
            self._restore(run)

        return Step(
            "promote 100%",
            f"set image {image} on Deployment {t.namespace}/{t.deployment} (rolling update); all traffic to"
            f" stable; canary to 0",
            target=f"kubernetes {t.env}",
            detail={"hold_for_promote": hold, "confirm": must_confirm(self.ctx, t)},
            apply=apply,
            compensate=undo,
            undo="stable back to its previous image; all traffic to stable",
        )

    def _set_stable_image(self, run: Run, image: str) -> None:
        t = self.target
        container = str(run.data.get("container") or "")

        def mutate(dep: dict[str, Any]) -> dict[str, Any] | None:
            name = container or objects.container_name(dep, t.container)
            if objects.image_of(dep, name) == image:
                return None
            objects.set_image(dep["spec"]["template"], name, image)
            return dep

        self.kube.update_deployment(t.namespace, t.deployment, mutate)
        run.progress.status(f"rolling {t.deployment} to {image}")
        wait_ready(
            run, self.kube, t.namespace, t.deployment, self._stable_replicas(run), self.policy.ready_timeout, self.poll
        )

    def _hold(self, run: Run) -> None:
        """--pause-before-promote: wait at the last step for 'deploy promote' (or a rollback request)."""
        t = self.target
        run.note("holding before the promotion")
        while True:
            for request in run.requests():
                if request.get("action") == "promote":
                    run.note(f"promotion requested by {request.get('by')}")
                    return
                if request.get("action") == "abort":
                    raise Aborted(f"rollback requested by {request.get('by')} while holding before the promotion")
            run.progress.status(f"holding before 100%: run 'opsctl deploy promote {t.name}' (or 'deploy rollback')")
            run.sleep(self.poll)
