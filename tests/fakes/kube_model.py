"""The state and REST semantics behind :mod:`tests.fakes.kube`: resources, verbs, Status errors.

:class:`Store` holds the objects and answers one request at a time (the server serialises them
under its lock). What each verb does follows the real API server: see :mod:`tests.fakes.kube`.
Validation and defaulting (the part that differs per kind) live in :mod:`tests.fakes.kube_rules`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.fakes import kube_rules
from tests.fakes.kube_patch import (
    PatchError,
    Requirement,
    SelectorError,
    json_patch,
    merge_patch,
    parse_selector,
    selector_matches,
    strategic_merge_patch,
)

VERSION_INFO = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-kube-fake",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
ACCEPTED_PATCHES = f"{JSON_PATCH}, {MERGE}, application/apply-patch+yaml, {STRATEGIC}"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    subresources: tuple[str, ...] = ("status",)
    custom: bool = False  # served from a CRD: list items keep kind/apiVersion; no strategic merge patch

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps``, ``services``: how messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        """``Deployment.apps``, ``Service``: how validation messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


RESOURCES = {
    "deployments": Resource("apps", "v1", "deployments", "Deployment", ("status", "scale")),
    "replicasets": Resource("apps", "v1", "replicasets", "ReplicaSet", ("status", "scale")),
    "services": Resource("", "v1", "services", "Service"),
    "pods": Resource("", "v1", "pods", "Pod"),
    "httproutes": Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", custom=True),
}


def resource_for(name: str) -> Resource:
    """A resource by plural, qualified name or kind (any case)."""
    wanted = name.lower()
    for resource in RESOURCES.values():
        if wanted in (resource.plural, resource.qualified.lower(), resource.kind.lower()):
            return resource
    raise KeyError(f"the fake serves no resource {name!r}")


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = details
    body["code"] = code
    return body


class ApiError(Exception):
    """An error answer: a ``Status`` with ``code``, ``reason``, ``message`` and ``details``."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def _details(resource: Resource, name: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.plural
    details.update(extra)
    return details


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name))


def conflict(resource: Resource, name: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, _details(resource, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


NO_RESOURCE = ApiError(404, "NotFound", "the server could not find the requested resource")
NOT_ALLOWED = ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


class Store:
    """Objects by (qualified resource, namespace, name), and the global resourceVersion counter."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.counter = 1000  # resourceVersions are opaque strings; real ones are large numbers too

    def timestamp(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    def next_version(self) -> str:
        self.counter += 1
        return str(self.counter)

    def require(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        found = self.objects.get((resource.qualified, namespace, name))
        if found is None:
            raise not_found(resource, name)
        return found

    # -- test helpers -------------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        resource = next((r for r in RESOURCES.values() if r.kind == kind and r.api_version == api_version), None)
        if resource is None:
            raise KeyError(f"the fake serves no {api_version}/{kind}")
        stored = copy.deepcopy(obj)
        meta = stored.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", self.timestamp())
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self.next_version()
        self.objects[(resource.qualified, meta["namespace"], meta["name"])] = stored
        return copy.deepcopy(stored)

    def set_status(
        self, resource: Resource, namespace: str, name: str, fields: dict[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        obj = self.require(resource, namespace, name)
        obj["status"] = copy.deepcopy(fields) if replace else {**obj.get("status", {}), **copy.deepcopy(fields)}
        obj["metadata"]["resourceVersion"] = self.next_version()
        return copy.deepcopy(obj)

    def select(
        self, resource: Resource, namespace: str | None, labels: list[Requirement], fields: list[Requirement]
    ) -> list[dict[str, Any]]:
        found = []
        for (qualified, ns, name), obj in sorted(self.objects.items()):
            if qualified != resource.qualified or (namespace is not None and ns != namespace):
                continue
            if selector_matches(labels, obj["metadata"].get("labels")) and selector_matches(
                fields, {"metadata.name": name, "metadata.namespace": ns}
            ):
                found.append(copy.deepcopy(obj))
        return found

    def replicaset_for(self, namespace: str, name: str, revision: int, replicas: int | None) -> dict[str, Any]:
        deployment = self.require(RESOURCES["deployments"], namespace, name)
        spec = deployment.get("spec", {})
        template = copy.deepcopy(spec.get("template", {}))
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
        pod_hash = "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in digest[:10])
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = copy.deepcopy(spec.get("selector", {}))
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        wanted = int(spec.get("replicas", 1))
        count = wanted if replicas is None else replicas
        revision_key = "deployment.kubernetes.io/revision"
        replicaset = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{name}-{pod_hash}",
                "namespace": namespace,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(wanted),
                    "deployment.kubernetes.io/max-replicas": str(wanted + 1),
                    revision_key: str(revision),
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": name,
                        "uid": deployment["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": count, "selector": selector, "template": template},
            "status": {
                "replicas": count,
                "fullyLabeledReplicas": count,
                "readyReplicas": count,
                "availableReplicas": count,
                "observedGeneration": 1,
            },
        }
        old = self.objects.get(("replicasets.apps", namespace, replicaset["metadata"]["name"]))
        if old is not None:  # the same template again (a rollback): the controller re-annotates it
            replicaset["metadata"].update({k: old["metadata"][k] for k in ("uid", "creationTimestamp")})
        created = self.put(replicaset)
        deployment["metadata"].setdefault("annotations", {})[revision_key] = str(revision)
        deployment["metadata"]["resourceVersion"] = self.next_version()
        return created

    # -- REST ---------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes, content_type: str
    ) -> tuple[int, Any]:
        discovery = kube_rules.discovery(path, RESOURCES.values(), VERSION_INFO)
        if discovery is not None:
            if method != "GET":
                raise NOT_ALLOWED
            return 200, discovery
        resource, namespace, name, sub = self._route(path)
        dry_run = self._dry_run(query)
        if name is None:
            if method == "GET":
                return 200, self._list(resource, namespace, query)
            if method == "POST" and namespace is not None:
                return 201, self._create(resource, namespace, _decode(raw), dry_run)
            raise NOT_ALLOWED
        assert namespace is not None
        if method == "GET":
            obj = self.require(resource, namespace, name)
            return 200, kube_rules.scale_of(obj) if sub == "scale" else copy.deepcopy(obj)
        if method == "PUT":
            return 200, self._replace(resource, namespace, name, sub, _decode(raw), dry_run)
        if method == "PATCH":
            return 200, self._patch(resource, namespace, name, sub, raw, content_type, dry_run)
        if method == "DELETE" and sub is None:
            return 200, self._delete(resource, namespace, name, raw, dry_run)
        raise NOT_ALLOWED

    @staticmethod
    def _route(path: str) -> tuple[Resource, str | None, str | None, str | None]:
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise NO_RESOURCE
        namespace = name = sub = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, plural = rest[1], rest[2]
            name = rest[3] if len(rest) > 3 else None
            sub = rest[4] if len(rest) > 4 else None
            if len(rest) > 5:
                raise NO_RESOURCE
        elif len(rest) == 1:
            plural = rest[0]
        else:
            raise NO_RESOURCE
        resource = RESOURCES.get(plural)
        if resource is None or (resource.group, resource.version) != (group, version):
            raise NO_RESOURCE
        if sub is not None and sub not in resource.subresources:
            raise NO_RESOURCE
        return resource, namespace, name, sub

    @staticmethod
    def _dry_run(query: dict[str, list[str]]) -> bool:
        values = query.get("dryRun", [])
        if any(v != "All" for v in values):
            raise bad_request(f"Invalid dry run value: {values!r}")
        return bool(values)

    def _list(self, resource: Resource, namespace: str | None, query: dict[str, list[str]]) -> dict[str, Any]:
        try:
            labels = parse_selector((query.get("labelSelector") or [""])[0])
            fields = parse_selector((query.get("fieldSelector") or [""])[0])
        except SelectorError as exc:
            raise bad_request(f"unable to parse requirement: {exc}") from None
        for requirement in fields:
            if requirement.key not in ("metadata.name", "metadata.namespace"):
                raise bad_request(f'field label not supported: "{requirement.key}"')
        items = self.select(resource, namespace, labels, fields)
        if not resource.custom:  # built-in types: the items of a list carry no kind/apiVersion
            for item in items:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(self.counter)},
            "items": items,
        }

    def _create(self, resource: Resource, namespace: str, body: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        obj = kube_rules.typed(resource, body)
        meta = obj["metadata"]
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)[:5]}"
        name = str(meta.get("name") or "")
        if (resource.qualified, namespace, name) in self.objects:
            message = f'{resource.qualified} "{name}" already exists'
            raise ApiError(409, "AlreadyExists", message, _details(resource, name))
        kube_rules.validate(resource, obj, None)
        kube_rules.default(resource, obj, None, self.counter)
        meta.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resourceVersion=str(self.counter + 1),
            creationTimestamp=self.timestamp(),
            generation=1,
        )
        obj.pop("status", None)
        obj.update(kube_rules.initial_status(resource))
        if not dry_run:
            self.next_version()
            self.objects[(resource.qualified, namespace, name)] = obj
        return copy.deepcopy(obj)

    def _replace(
        self, resource: Resource, namespace: str, name: str, sub: str | None, body: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        existing = self.require(resource, namespace, name)
        if sub == "scale":
            return self._scale(resource, existing, body, kube_rules.scale_of(existing), dry_run)
        obj = kube_rules.typed(resource, body)
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if meta.get("resourceVersion") and meta["resourceVersion"] != existing["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        return self._commit(resource, existing, obj, sub, dry_run)

    def _patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        sub: str | None,
        raw: bytes,
        content_type: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        existing = self.require(resource, namespace, name)
        target = kube_rules.scale_of(existing) if sub == "scale" else existing
        if content_type not in (MERGE, STRATEGIC, JSON_PATCH) or (content_type == STRATEGIC and resource.custom):
            message = (
                f"the body of the request was in an unknown format - accepted media types include: {ACCEPTED_PATCHES}"
            )
            if content_type == STRATEGIC:
                message = f"{message.split(' - ')[0]} - accepted media types include: {JSON_PATCH}, {MERGE}, application/apply-patch+yaml"
            raise ApiError(415, "UnsupportedMediaType", message)
        try:
            patch = json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from None
        try:
            if content_type == JSON_PATCH:
                patched = json_patch(target, patch)
            elif not isinstance(patch, dict):
                raise bad_request(
                    f"json: cannot unmarshal {type(patch).__name__} into Go value of type map[string]interface {{}}"
                )
            else:
                patched = (merge_patch if content_type == MERGE else strategic_merge_patch)(target, patch)
        except PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        if not isinstance(patched, dict):
            raise bad_request("the patched object is not a JSON object")
        if sub == "scale":
            return self._scale(resource, existing, patched, target, dry_run)
        meta = patched.get("metadata")
        if not isinstance(meta, dict) or meta.get("name") != name:
            raise bad_request(f"the name of the object ({name}) may not be changed by a patch")
        if meta.get("resourceVersion") != existing["metadata"]["resourceVersion"]:
            raise conflict(resource, name)  # the patch carried a stale resourceVersion
        if patched.get("kind") != existing.get("kind") or patched.get("apiVersion") != existing.get("apiVersion"):
            raise bad_request("the kind and apiVersion of an object may not be changed by a patch")
        return self._commit(resource, existing, kube_rules.typed(resource, patched), sub, dry_run)

    def _scale(
        self, resource: Resource, existing: dict[str, Any], body: dict[str, Any], view: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version and version != view["metadata"]["resourceVersion"]:
            raise conflict(resource, existing["metadata"]["name"])
        replicas = (body.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise kube_rules.invalid(
                resource,
                existing["metadata"]["name"],
                "spec.replicas",
                f"Invalid value: {replicas!r}: must be greater than or equal to 0",
            )
        updated = copy.deepcopy(existing)
        updated.setdefault("spec", {})["replicas"] = replicas
        return kube_rules.scale_of(self._commit(resource, existing, updated, None, dry_run))

    def _commit(
        self, resource: Resource, existing: dict[str, Any], new: dict[str, Any], sub: str | None, dry_run: bool
    ) -> dict[str, Any]:
        """Store ``new`` in place of ``existing``: a status write changes only the status, any other
        write anything but the status; server-set metadata is kept; a change takes a new version."""
        if sub == "status":
            updated = copy.deepcopy(existing)
            if "status" in new:
                updated["status"] = new["status"]
            else:
                updated.pop("status", None)
        else:
            updated = new
            updated.pop("status", None)
            if "status" in existing:
                updated["status"] = copy.deepcopy(existing["status"])
            kube_rules.validate(resource, updated, existing)
            kube_rules.default(resource, updated, existing, self.counter)
        meta, old_meta = updated.setdefault("metadata", {}), existing["metadata"]
        for key in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation"):
            meta[key] = old_meta[key]
        if updated.get("spec") != existing.get("spec"):
            meta["generation"] = old_meta["generation"] + 1
        if updated == existing:
            return copy.deepcopy(existing)  # nothing changed: etcd keeps the version
        if dry_run:
            return copy.deepcopy(updated)
        meta["resourceVersion"] = self.next_version()
        self.objects[(resource.qualified, old_meta["namespace"], old_meta["name"])] = updated
        return copy.deepcopy(updated)

    def _delete(self, resource: Resource, namespace: str, name: str, raw: bytes, dry_run: bool) -> dict[str, Any]:
        existing = self.require(resource, namespace, name)
        options = _decode(raw) if raw.strip() else {}
        preconditions = options.get("preconditions") or {}
        for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted, actual = preconditions.get(key), existing["metadata"].get(key)
            if wanted and wanted != actual:
                message = f"Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}"
                raise ApiError(409, "Conflict", message, _details(resource, name))
        if not dry_run:
            del self.objects[(resource.qualified, namespace, name)]
            self.next_version()
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": _details(resource, name, uid=existing["metadata"]["uid"]),
        }


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    return body
