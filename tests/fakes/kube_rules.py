"""Per-kind rules of the Kubernetes fake: decoding, validation (422 Invalid), defaulting, the
``scale`` view, discovery documents. Only what the real server enforces and opsctl can run into:
names, label maps, a Deployment's selector matching its template (and never changing), replicas,
containers, HTTPRoute backend weights."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.kube_model import ApiError, Resource

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def invalid(resource: Resource, name: str, path: str, detail: str) -> ApiError:
    """422 Invalid, worded and detailed as the real server does."""
    from tests.fakes.kube_model import ApiError

    message = f'{resource.kind_qualified} "{name}" is invalid: {path}: {detail}'
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.kind
    details["causes"] = [{"reason": "FieldValueInvalid", "message": detail, "field": path}]
    return ApiError(422, "Invalid", message, details)


def typed(resource: Resource, body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` as an object of ``resource``: kind/apiVersion checked (filled in when absent,
    as the server's decoder does from the URL), metadata and its string maps well-formed (else 400)."""
    from tests.fakes.kube_model import bad_request

    obj = copy.deepcopy(body)
    if obj.get("apiVersion", resource.api_version) != resource.api_version:
        raise bad_request(
            f"the API version in the data ({obj['apiVersion']}) does not match the expected API version "
            f"({resource.api_version})"
        )
    if obj.get("kind", resource.kind) != resource.kind:
        raise bad_request(f"the kind in the data ({obj['kind']}) does not match the expected kind ({resource.kind})")
    obj = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("json: cannot unmarshal into Go struct field of type v1.ObjectMeta")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            meta.pop(key, None)
        elif not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad_request(f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{key} of type string")
    return obj


def validate(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    meta = obj["metadata"]
    name = str(meta.get("name") or "")
    if not name:
        raise invalid(resource, name, "metadata.name", "Required value: name or generateName is required")
    pattern, limit = (_LABEL_1035, 63) if resource.plural == "services" else (_SUBDOMAIN, 253)
    if len(name) > limit or not pattern.fullmatch(name):
        raise invalid(
            resource, name, "metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 name is required'
        )
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise invalid(resource, name, "spec", "Invalid value: must be an object")
    spec = spec or {}
    if resource.plural in ("deployments", "replicasets"):
        _validate_workload(resource, name, spec, (old or {}).get("spec"))
    elif resource.plural == "pods":
        _validate_containers(resource, name, "spec", spec)
    elif resource.plural == "httproutes":
        for r, rule in enumerate(spec.get("rules") or []):
            for b, ref in enumerate((rule or {}).get("backendRefs") or []):
                weight = (ref or {}).get("weight", 1)
                if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 1_000_000:
                    path = f"spec.rules[{r}].backendRefs[{b}].weight"
                    raise invalid(resource, name, path, f"Invalid value: {weight!r}: must be in 0..1000000")


def _validate_workload(resource: Resource, name: str, spec: dict[str, Any], old_spec: dict[str, Any] | None) -> None:
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise invalid(
            resource, name, "spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0"
        )
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise invalid(resource, name, "spec.selector", "Required value")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector_matches_labels(selector, labels):
        raise invalid(
            resource,
            name,
            "spec.template.metadata.labels",
            f"Invalid value: {labels!r}: `selector` does not match template `labels`",
        )
    if old_spec is not None and old_spec.get("selector") != selector:
        raise invalid(resource, name, "spec.selector", f"Invalid value: {selector!r}: field is immutable")
    _validate_containers(resource, name, "spec.template.spec", template.get("spec") or {})


def _validate_containers(resource: Resource, name: str, path: str, pod_spec: dict[str, Any]) -> None:
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise invalid(resource, name, f"{path}.containers", "Required value")
    for index, container in enumerate(containers):
        for key in ("name", "image"):
            if not isinstance(container, dict) or not container.get(key):
                raise invalid(resource, name, f"{path}.containers[{index}].{key}", "Required value")


def selector_matches_labels(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label map."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if (
            (op == "In" and (not present or labels[key] not in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def selector_string(selector: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(sorted(values))})")
        else:
            parts.append(key if op == "Exists" else f"!{key}")
    return ",".join(parts)


def default(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None, counter: int) -> None:
    """Fill in what the server defaults (on every write, as its decoder does)."""
    if resource.plural not in ("deployments", "replicasets", "services"):
        return
    spec = obj.setdefault("spec", {})
    if resource.plural in ("deployments", "replicasets"):
        spec.setdefault("replicas", 1)
    if resource.plural == "deployments":
        spec.setdefault(
            "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
        )
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    elif resource.plural == "services":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
        ip = spec.get("clusterIP") or old_ip or f"10.96.{counter // 250 % 250}.{counter % 250 + 1}"
        spec["clusterIP"] = ip
        spec.setdefault("clusterIPs", [ip])
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))


def initial_status(resource: Resource) -> dict[str, Any]:
    """The status a new object starts with (what the client sent is dropped)."""
    if resource.plural in ("deployments", "replicasets"):
        return {"status": {}}
    if resource.plural == "services":
        return {"status": {"loadBalancer": {}}}
    if resource.plural == "pods":
        return {"status": {"phase": "Pending", "qosClass": "BestEffort"}}
    return {}  # a custom resource with a status subresource: none until a controller writes it


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of a Deployment or ReplicaSet."""
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_string((obj.get("spec") or {}).get("selector") or {}),
        },
    }


def discovery(path: str, resources: Iterable[Resource], version: dict[str, str]) -> dict[str, Any] | None:
    """``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``; None for other paths."""
    resources = list(resources)
    path = path.rstrip("/")
    if path == "/version":
        return dict(version)
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        }
    groups = sorted({(r.group, r.version) for r in resources if r.group})
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v}],
                    "preferredVersion": {"groupVersion": f"{group}/{v}", "version": v},
                }
                for group, v in groups
            ],
        }
    for group, v in [("", "v1"), *groups]:
        if path == (f"/apis/{group}/{v}" if group else f"/api/{v}"):
            listed: list[dict[str, Any]] = []
            for r in resources:
                if (r.group, r.version) != (group, v):
                    continue
                verbs = ["create", "delete", "get", "list", "patch", "update"]
                listed.append(
                    {
                        "name": r.plural,
                        "singularName": r.kind.lower(),
                        "namespaced": True,
                        "kind": r.kind,
                        "verbs": verbs,
                    }
                )
                for sub in r.subresources:
                    kind = "Scale" if sub == "scale" else r.kind
                    listed.append(
                        {
                            "name": f"{r.plural}/{sub}",
                            "singularName": "",
                            "namespaced": True,
                            "kind": kind,
                            "verbs": ["get", "patch", "update"],
                        }
                    )
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{v}" if group else v,
                "resources": listed,
            }
    return None
