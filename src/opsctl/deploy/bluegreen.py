"""`deploy bluegreen`: bring up green next to blue, check it, switch the Service, keep blue a
while, then scale it down.

Two Deployments take turns: ``<deployment>`` (slot ``blue``) and ``<deployment>-green`` (slot
``green``).  The live one is the slot the Service selects (``slot: …`` in its selector; none
yet means ``<deployment>``).  The idle one gets the new image, ``slot: <its slot>`` and
``track: canary`` on its pods; with ``prometheus.preview: true`` it is analysed on preview
traffic before the switch.  Until blue is scaled down, ``deploy rollback`` switches back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsctl.deploy import objects, steps
from opsctl.deploy.target import Target, kube, resolve
from opsctl.deploy.traffic import wait_ready
from opsctl.errors import RefusedError
from opsctl.operations.model import Operation, RunResult, Step
from opsctl.operations.runner import execute

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.operations.run import Run

KIND = "deploy bluegreen"
SLOT = "slot"


@dataclass(frozen=True)
class Options:
    image: str
    skip_staging_check: bool = False


def bluegreen(ctx: Context, service: str, options: Options) -> RunResult:
    from opsctl.deploy.canary import check_image

    target = resolve(ctx, service)
    op = Operation(
        KIND, target.service, {"image": options.image}, lock="deploy", env=target.env,
        confirm=f"switch {target.name} to {options.image} (blue/green)", must_confirm=steps.must_confirm(ctx, target),
        check=lambda: check_image(options.image),
        resume_hint=f"'opsctl deploy rollback {target.name}' switches back while blue exists",
    )  # fmt: skip
    return execute(ctx, op, lambda run: plan(ctx, target, run, options))


def set_selector(client: Any, namespace: str, name: str, selector: dict[str, str]) -> None:
    """Replace the Service's selector as a whole (a merge patch could not drop the slot label)."""

    def mutate(service: dict[str, Any]) -> dict[str, Any] | None:
        if service.get("spec", {}).get("selector") == selector:
            return None
        service["spec"]["selector"] = dict(selector)
        return service

    client.update_service(namespace, name, mutate)


def slots(target: Target, selector: dict[str, str]) -> tuple[str, str, str, str]:
    """(live Deployment, live slot, idle Deployment, idle slot) from the Service's selector."""
    if selector.get(SLOT) == "green":
        return target.green, "green", target.deployment, "blue"
    return target.deployment, "blue", target.green, "green"


def plan(ctx: Context, target: Target, run: Run, options: Options, *, promote_now: bool = False) -> list[Step]:
    client = kube(ctx, target)
    policy = ctx.settings.policy.deploy
    poll = policy.poll.total_seconds()
    image = str(run.params["image"])
    if not run.persisted:
        service = client.get_service(target.namespace, target.k8s_service)
        if service is None:
            raise RefusedError(
                f"Service {target.namespace}/{target.k8s_service} does not exist", "check kubernetes.service"
            )
        selector = dict(service.get("spec", {}).get("selector", {}) or {})
        live, live_slot, idle, idle_slot = slots(target, selector)
        live_dep = client.get_deployment(target.namespace, live)
        if live_dep is None:
            raise RefusedError(f"Deployment {target.namespace}/{live} (live, slot {live_slot}) does not exist")
        steps.refuse_in_flight(ctx, target)
        if not options.skip_staging_check:
            steps.staging_check(ctx, target, image)
        container = objects.container_name(live_dep, target.container)
        run.save(
            image=image,
            selector=selector,
            live=live,
            idle=idle,
            idle_slot=idle_slot,
            container=container,
            replicas=objects.replicas(live_dep),
            stable_image=objects.image_of(live_dep, container),
        )
    data = run.data
    live, idle, idle_slot = str(data["live"]), str(data["idle"]), str(data["idle_slot"])
    replicas, container = int(data["replicas"]), str(data["container"])
    old_selector: dict[str, str] = dict(data["selector"])
    new_selector = {**{k: v for k, v in old_selector.items() if k != SLOT}, SLOT: idle_slot}
    ns = target.namespace

    def bring_up(r: Run) -> str:
        source = client.get_deployment(ns, idle) or client.get_deployment(ns, live)
        assert source is not None
        body = objects.clean(source)
        body["metadata"] = {**body.get("metadata", {}), "name": idle, "namespace": ns}
        spec = body["spec"]
        spec["replicas"] = replicas
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        labels.update({SLOT: idle_slot, objects.TRACK: "canary"})
        objects.set_image(spec["template"], container, image)
        if client.get_deployment(ns, idle) is None:
            spec.setdefault("selector", {}).setdefault("matchLabels", {})[SLOT] = idle_slot
            client.create_deployment(ns, body)
        else:  # its selector is immutable; the template changes
            client.update_deployment(
                ns, idle, lambda d: {**d, "spec": {**d["spec"], "replicas": replicas, "template": spec["template"]}}
            )
        wait_ready(r, client, ns, idle, replicas, policy.ready_timeout, poll)
        return idle

    def switch_to(selector: dict[str, str]) -> Any:
        def apply(r: Run) -> dict[str, str]:
            set_selector(client, ns, target.k8s_service, selector)
            r.save(
                weights={"stable": 0.0, "canary": 100.0}
                if selector is new_selector
                else {"stable": 100.0, "canary": 0.0}
            )
            return selector

        return apply

    def scale(name: str, count: int) -> Any:
        def apply(r: Run) -> int:
            client.patch_deployment(ns, name, {"spec": {"replicas": count}})
            if count:
                wait_ready(r, client, ns, name, count, policy.ready_timeout, poll)
            return count

        return apply

    def keep(r: Run) -> str:
        deadline = ctx.clock() + policy.bluegreen_keep
        while ctx.clock() < deadline:
            for request in r.requests():
                if request.get("action") == "abort":
                    raise steps.Aborted(f"switch-back requested by {request.get('by')}")
                if request.get("action") == "promote":
                    return "kept: promotion requested"
            r.progress.status(f"keeping {live} for 'opsctl deploy rollback {target.name}'")
            r.sleep(min(poll, max(0.0, (deadline - ctx.clock()).total_seconds())))
        return "kept"

    plan_steps = [
        Step(
            f"bring up {idle}",
            f"Deployment {ns}/{idle}: image {image}, {replicas} replicas, slot={idle_slot}; wait until ready",
            target=f"kubernetes {target.env}",
            apply=bring_up,
            compensate=scale(idle, 0),
            undo=f"scale {idle} to 0",
        ),
    ]
    if target.service.prometheus and target.service.prometheus.preview:
        from opsctl.deploy.judging import Judge

        judge = Judge(ctx, target, policy.analysis, policy.bake_for(target.service.tier))
        plan_steps.append(
            Step(
                "preview analysis",
                f"judge {idle} (track=canary) on preview traffic",
                target=f"prometheus {target.env}",
                detail=judge.describe(),
                apply=lambda r: judge.run(r, 0, "rollback"),
                changes=False,
            )
        )
    plan_steps += [
        Step(
            f"switch to {idle_slot}",
            f"Service {ns}/{target.k8s_service} selector {new_selector}",
            target=f"kubernetes {target.env}",
            detail={"from": old_selector, "to": new_selector},
            apply=switch_to(new_selector),
            compensate=switch_to(copy.deepcopy(old_selector)),
            undo=f"selector back to {old_selector}",
        ),
        Step(
            f"keep {live}",
            f"keep {live} for {policy.bluegreen_keep} ('deploy rollback' switches back)",
            target=f"kubernetes {target.env}",
            apply=keep,
            changes=False,
        ),
        Step(
            f"scale down {live}",
            f"scale Deployment {ns}/{live} to 0",
            target=f"kubernetes {target.env}",
            apply=scale(live, 0),
            compensate=scale(live, replicas),
            undo=f"scale {live} back to {replicas}",
        ),
    ]
    return plan_steps


def switch_back(ctx: Context, target: Target) -> RunResult:
    """After a finished blue/green: blue up again, the Service back to it, green down."""
    last = steps.latest(ctx, target, (KIND,))
    if last is None or last.state != "succeeded":
        raise RefusedError(f"no finished blue/green of {target.name} in {target.env} to switch back from")
    client = kube(ctx, target)
    policy = ctx.settings.policy.deploy
    data = last.data
    old, new, replicas = str(data["live"]), str(data["idle"]), int(data["replicas"])
    ns = target.namespace

    def plan(run: Run) -> list[Step]:
        run.save(image=data.get("stable_image"), selector=data["selector"])

        def up(r: Run) -> None:
            client.patch_deployment(ns, old, {"spec": {"replicas": replicas}})
            wait_ready(r, client, ns, old, replicas, policy.ready_timeout, policy.poll.total_seconds())

        return [
            Step(f"scale up {old}", f"scale {ns}/{old} back to {replicas}", apply=up),
            Step(
                "switch back",
                f"Service {ns}/{target.k8s_service} selector {data['selector']}",
                apply=lambda r: set_selector(client, ns, target.k8s_service, dict(data["selector"])),
            ),
            Step(
                f"scale down {new}",
                f"scale {ns}/{new} to 0",
                apply=lambda r: client.patch_deployment(ns, new, {"spec": {"replicas": 0}}),
            ),
        ]

    op = Operation(
        "deploy rollback",
        target.service,
        {"from": new, "to": old},
        lock="deploy",
        env=target.env,
        confirm=f"switch {target.name} back to {old}",
    )
    return execute(ctx, op, plan)
