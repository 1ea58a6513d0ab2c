"""Kubernetes objects as plain dicts (the API's JSON): reading them and deriving new ones.

Pure functions, no client: the canary Deployment made from the stable one, images, readiness,
revisions, HTTPRoute weights and conditions.
"""

from __future__ import annotations

import copy
from typing import Any

from opsctl.errors import FailedError, UsageError

TRACK = "track"
REVISION = "deployment.kubernetes.io/revision"
_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")


def containers(dep: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []))


def container_name(dep: dict[str, Any], wanted: str | None) -> str:
    """The container a deploy changes: the configured one, else the first."""
    names = [c.get("name", "") for c in containers(dep)]
    if not names:
        raise UsageError(f"Deployment {dep.get('metadata', {}).get('name')} has no containers")
    if wanted is None:
        return str(names[0])
    if wanted not in names:
        raise UsageError(
            f"Deployment {dep['metadata']['name']} has no container {wanted!r} (it has: {', '.join(names)})"
        )
    return wanted


def image_of(dep: dict[str, Any], container: str) -> str:
    for c in containers(dep):
        if c.get("name") == container:
            return str(c.get("image", ""))
    return ""


def set_image(template: dict[str, Any], container: str, image: str) -> None:
    for c in template.get("spec", {}).get("containers", []):
        if c.get("name") == container:
            c["image"] = image


def replicas(dep: dict[str, Any]) -> int:
    value = dep.get("spec", {}).get("replicas")
    return 1 if value is None else int(value)


def canary_from(stable: dict[str, Any], name: str, container: str, image: str, count: int) -> dict[str, Any]:
    """The canary Deployment: the stable one's spec with the new image, ``track: canary`` on its
    pods and in its selector (so the two never claim each other's pods), ``count`` replicas."""
    meta = stable.get("metadata", {})
    spec = copy.deepcopy(stable.get("spec", {}))
    spec["replicas"] = count
    selector = spec.setdefault("selector", {}).setdefault("matchLabels", {})
    selector[TRACK] = "canary"
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("labels", {})[TRACK] = "canary"
    set_image(template, container, image)
    labels = {**meta.get("labels", {}), TRACK: "canary", "app.kubernetes.io/managed-by": "opsctl"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": meta.get("namespace"), "labels": labels},
        "spec": spec,
    }


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy without status and server-set metadata (what a create may send)."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    for key in _SERVER_FIELDS:
        out.get("metadata", {}).pop(key, None)
    return out


def readiness(dep: dict[str, Any], want: int) -> tuple[bool, str | None, str]:
    """(ready, failure, summary): ready when the controller saw the current spec and ``want``
    pods are updated and ready; a failure when its progress deadline was exceeded."""
    status = dep.get("status", {}) or {}
    for condition in status.get("conditions", []) or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return False, f"progress deadline exceeded: {condition.get('message') or 'pods did not become ready'}", ""
    generation = dep.get("metadata", {}).get("generation", 0)
    observed = status.get("observedGeneration", 0) or 0
    updated = status.get("updatedReplicas", 0) or 0
    ready = status.get("readyReplicas", 0) or 0
    summary = f"{ready}/{want} ready, {updated} updated"
    return observed >= generation and updated >= want and ready >= want, None, summary


def revision(obj: dict[str, Any]) -> int:
    try:
        return int(obj.get("metadata", {}).get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def owned_by(rs: dict[str, Any], dep: dict[str, Any]) -> bool:
    uid = dep.get("metadata", {}).get("uid")
    return any(ref.get("uid") == uid for ref in rs.get("metadata", {}).get("ownerReferences", []) or [])


def previous_template(dep: dict[str, Any], replica_sets: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """The pod template of the revision before the current one, as ``kubectl rollout undo``
    finds it: the Deployment's ReplicaSets by their revision annotation."""
    current = revision(dep)
    older = sorted(
        (rs for rs in replica_sets if owned_by(rs, dep) and 0 < revision(rs) < current), key=revision, reverse=True
    )
    if not older:
        raise FailedError(
            f"Deployment {dep['metadata']['name']} has no revision before {current}",
            "nothing to roll back to; deploy the previous image instead",
        )
    template = copy.deepcopy(older[0]["spec"]["template"])
    template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return revision(older[0]), template


def route_weights(route: dict[str, Any], stable: str, canary: str) -> dict[str, int]:
    weights = {"stable": 0, "canary": 0}
    for rule in route.get("spec", {}).get("rules", []) or []:
        for ref in rule.get("backendRefs", []) or []:
            key = "stable" if ref.get("name") == stable else "canary" if ref.get("name") == canary else None
            if key:
                weights[key] = int(ref.get("weight", 1))
        break
    return weights


def with_weights(
    route: dict[str, Any], stable: str, canary: str, canary_weight: int, port: int | None
) -> dict[str, Any]:
    """The route's rules with the whole backendRefs list replaced: stable and canary weights."""
    rules = copy.deepcopy(route.get("spec", {}).get("rules", []) or [{}])
    for rule in rules:
        refs = [{"name": stable, "weight": 100 - canary_weight}]
        if canary_weight > 0:
            refs.append({"name": canary, "weight": canary_weight})
        if port is not None:
            for ref in refs:
                ref["port"] = port
        rule["backendRefs"] = refs
    return {"spec": {"rules": rules}}


def route_problem(route: dict[str, Any]) -> str | None:
    """Why the route is not serving as written (a parent's Accepted/ResolvedRefs not True), or None.
    A route no gateway has reported on yet is a problem too."""
    parents = route.get("status", {}).get("parents", []) or []
    if not parents:
        return "no gateway has accepted the route yet (status.parents is empty)"
    for parent in parents:
        conditions = {c.get("type"): c for c in parent.get("conditions", []) or []}
        for kind in ("Accepted", "ResolvedRefs"):
            condition = conditions.get(kind)
            if condition is None or condition.get("status") != "True":
                detail = f"{condition.get('reason')}: {condition.get('message')}" if condition else "not reported"
                return f"route condition {kind} is not True ({detail})"
    return None
