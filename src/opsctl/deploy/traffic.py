"""Moving traffic between stable and canary: by replica ratio behind one Service, or by the
weights of a Gateway API HTTPRoute.  Every change waits for the pods it depends on, and
``restore`` (all traffic to stable, canary at zero) is idempotent: it is the compensation of
every traffic step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsctl.deploy import objects
from opsctl.errors import FailedError, RefusedError

if TYPE_CHECKING:
    from opsctl.deploy.target import Target
    from opsctl.operations.run import Run

ROUNDING_TOLERANCE = 2.5  # percentage points a replica ratio may miss a weight by without --allow-rounding


@dataclass(frozen=True)
class Split:
    """A step's traffic as achieved: the shares in percent and the canary's replicas."""

    requested: int
    stable: float
    canary: float
    canary_replicas: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def replica_split(weight: int, stable_replicas: int) -> Split:
    """The canary replica count whose share comes closest to ``weight`` next to an unchanged
    stable (no capacity is lost mid-rollout); at least one."""
    count = max(1, round(weight * stable_replicas / (100 - weight))) if weight < 100 else stable_replicas
    share = 100 * count / (stable_replicas + count)
    return Split(weight, round(100 - share, 1), round(share, 1), count)


def rounding_problems(weights: list[int], stable_replicas: int) -> list[str]:
    """The steps whose replica ratio misses the weight by more than the tolerance."""
    problems = []
    for weight in weights:
        if weight >= 100:
            continue
        split = replica_split(weight, stable_replicas)
        if abs(split.canary - weight) > max(ROUNDING_TOLERANCE, 0.25 * weight):
            problems.append(
                f"{weight}% is {split.canary:g}% ({split.canary_replicas} canary next to {stable_replicas})"
            )
    return problems


def wait_ready(run: Run, kube: Any, namespace: str, name: str, want: int, timeout: timedelta, poll: float) -> None:
    """Wait until ``want`` pods of the Deployment are updated and ready (a signal or a lost lease
    cuts the wait short); a progress deadline exceeded, a vanished Deployment or the timeout fail."""
    deadline = run.ctx.clock() + timeout
    while True:
        dep = kube.get_deployment(namespace, name)
        if dep is None:
            raise FailedError(f"Deployment {namespace}/{name} disappeared while waiting for it")
        ready, failure, summary = objects.readiness(dep, want)
        if failure:
            raise FailedError(f"Deployment {namespace}/{name}: {failure}")
        if ready:
            return
        if run.ctx.clock() >= deadline:
            raise FailedError(f"Deployment {namespace}/{name} not ready after {timeout} ({summary})")
        run.progress.status(f"waiting for {namespace}/{name}: {summary}")
        run.sleep(poll)


class Traffic:
    """The replica-ratio strategy; :class:`RouteTraffic` overrides how a weight is applied."""

    def __init__(self, kube: Any, target: Target, *, timeout: timedelta, poll: float) -> None:
        self.kube, self.target, self.timeout, self.poll = kube, target, timeout, poll

    def describe(self, weight: int, stable_replicas: int) -> dict[str, Any]:
        split = replica_split(weight, stable_replicas)
        return {"canary_replicas": split.canary_replicas, "expected": {"stable": split.stable, "canary": split.canary}}

    def _scale_canary(self, run: Run, count: int) -> None:
        t = self.target
        self.kube.patch_deployment(t.namespace, t.canary, {"spec": {"replicas": count}})
        if count:
            wait_ready(run, self.kube, t.namespace, t.canary, count, self.timeout, self.poll)

    def shift(self, run: Run, weight: int, stable_replicas: int) -> Split:
        split = replica_split(weight, stable_replicas)
        self._scale_canary(run, split.canary_replicas)
        return split

    def restore(self, run: Run) -> None:
        """All traffic to stable: the canary at zero replicas (it stays, for inspection)."""
        t = self.target
        if self.kube.get_deployment(t.namespace, t.canary) is not None:
            self.kube.patch_deployment(t.namespace, t.canary, {"spec": {"replicas": 0}})

    def prepare(self, run: Run) -> None:
        """Anything the strategy needs before the first shift (nothing for replica ratios)."""


class RouteTraffic(Traffic):
    """Gateway API: weights on the HTTPRoute's backendRefs; the canary's pods are ready first."""

    def describe(self, weight: int, stable_replicas: int) -> dict[str, Any]:
        count = max(1, math.ceil(stable_replicas * weight / 100))
        return {"canary_replicas": count, "expected": {"stable": 100 - weight, "canary": weight}}

    def prepare(self, run: Run) -> None:
        """The ``<service>-canary`` Service selecting the canary's pods, created when missing."""
        t = self.target
        if self.kube.get_service(t.namespace, t.canary_service) is not None:
            return
        stable = self.kube.get_service(t.namespace, t.k8s_service)
        if stable is None:
            raise RefusedError(f"Service {t.namespace}/{t.k8s_service} does not exist", "check kubernetes.service")
        body = objects.clean(stable)
        body["metadata"] = {
            "name": t.canary_service,
            "namespace": t.namespace,
            "labels": {"app.kubernetes.io/managed-by": "opsctl"},
        }
        spec = body.setdefault("spec", {})
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
        spec["selector"] = {**spec.get("selector", {}), objects.TRACK: "canary"}
        self.kube.create_service(t.namespace, body)
        run.note(f"created Service {t.namespace}/{t.canary_service}")

    def _port(self) -> int | None:
        service = self.kube.get_service(self.target.namespace, self.target.k8s_service)
        ports = (service or {}).get("spec", {}).get("ports", []) or []
        return int(ports[0]["port"]) if ports else None

    def _route(self, run: Run, canary_weight: int, *, wait: bool = True) -> None:
        t = self.target
        assert t.route is not None
        route = self.kube.get_httproute(t.namespace, t.route)
        if route is None:
            raise RefusedError(f"HTTPRoute {t.namespace}/{t.route} does not exist", "check kubernetes.traffic.route")
        patch = objects.with_weights(route, t.k8s_service, t.canary_service, canary_weight, self._port())
        self.kube.patch_httproute(t.namespace, t.route, patch)
        if not wait:
            return
        deadline = run.ctx.clock() + self.timeout
        while (problem := objects.route_problem(self.kube.get_httproute(t.namespace, t.route) or {})) is not None:
            if run.ctx.clock() >= deadline:
                raise FailedError(f"HTTPRoute {t.namespace}/{t.route}: {problem}")
            run.progress.status(f"waiting for the gateway: {problem}")
            run.sleep(self.poll)

    def shift(self, run: Run, weight: int, stable_replicas: int) -> Split:
        count = max(1, math.ceil(stable_replicas * weight / 100))
        self._scale_canary(run, count)  # no weight goes to the canary before its pods are ready
        self._route(run, weight)
        return Split(weight, float(100 - weight), float(weight), count)

    def restore(self, run: Run) -> None:
        """All weight to stable, then the canary to zero — without waiting for the gateway to
        accept the route (it may be the reason for the rollback): never an unknown split."""
        t = self.target
        assert t.route is not None
        if self.kube.get_httproute(t.namespace, t.route) is not None:
            self._route(run, 0, wait=False)
        super().restore(run)


def strategy(kube: Any, target: Target, *, timeout: timedelta, poll: float) -> Traffic:
    cls = RouteTraffic if target.traffic == "gateway-api" else Traffic
    return cls(kube, target, timeout=timeout, poll=poll)
