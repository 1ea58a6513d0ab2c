"""What a deploy works on: the service's Kubernetes objects in one environment, and its clients.

Names (the contract): the stable Deployment is ``kubernetes.deployment``; the canary is
``<deployment>-canary`` (pod label ``track: canary``); the Service in front of them is
``kubernetes.service`` (default: the deployment's name); with Gateway API traffic the
``HTTPRoute`` named by ``traffic.route`` splits between that Service and ``<service>-canary``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.settings import Service

KINDS = ("service", "gateway-api")


@dataclass(frozen=True)
class Target:
    service: Service
    env: str
    namespace: str
    deployment: str
    k8s_service: str
    container: str | None
    traffic: str  # "service" (replica ratio) or "gateway-api" (HTTPRoute weights)
    route: str | None

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def canary(self) -> str:
        return f"{self.deployment}-canary"

    @property
    def canary_service(self) -> str:
        return f"{self.k8s_service}-canary"

    @property
    def green(self) -> str:
        return f"{self.deployment}-green"

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.deployment}"


def resolve(ctx: Context, name: str, env: str | None = None) -> Target:
    """The service's deploy target in ``env`` (default: the invocation's); exit 2 when it has none."""
    env = env or ctx.env
    service = ctx.service(name, env=env)
    block = service.kubernetes
    if block is None:
        raise UsageError(f"service {service.name} has no kubernetes block in {env}", "add one to deploy it with opsctl")
    kind = block.traffic.kind
    if kind not in KINDS:
        raise UsageError(
            f"service {service.name}: traffic kind {kind!r} is not supported for canaries",
            "use 'service' (replica ratio) or 'gateway-api' (HTTPRoute weights)",
        )
    if kind == "gateway-api" and not block.traffic.route:
        raise UsageError(f"service {service.name}: gateway-api traffic needs traffic.route (the HTTPRoute's name)")
    return Target(
        service=service,
        env=env,
        namespace=block.namespace,
        deployment=block.deployment,
        k8s_service=block.service or block.deployment,
        container=block.container,
        traffic=kind,
        route=block.traffic.route,
    )


def kube(ctx: Context, target: Target) -> Any:
    """The Kubernetes client for the target's cluster (its context in its environment)."""
    return ctx.clients.get("kube", service=target.name, env=target.env)


def prometheus(ctx: Context, env: str) -> Any:
    return ctx.clients.get("prometheus", env=env)
