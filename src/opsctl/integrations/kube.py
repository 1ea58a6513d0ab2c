"""The Kubernetes adapter: Deployments, ReplicaSets, Services and Gateway API HTTPRoutes as plain dicts.

:class:`KubeClient` talks to one kubeconfig context (:mod:`opsctl.integrations.kube_config`) through
the official ``kubernetes`` client's ``ApiClient`` — its auth, TLS and serialisation — but not its
typed models: objects go in and come out in the API's own JSON form (camelCase keys, exactly as
the server sends them), so nothing is lost to a model that does not know a field.

Every call runs the shared loop of :mod:`opsctl.integrations.retry` under one time budget, with
urllib3's own retries off: 429 waits ``Retry-After``; 5xx and network failures back off and retry
the idempotent calls (GET, merge-patch PATCH, PUT with a resourceVersion, DELETE). A create is
retried after an ambiguous failure only once a read shows the object absent, and one whose answer
was lost is resolved by reading it. ``update_*`` read, let ``mutate`` change the object, and PUT
it back with its resourceVersion; a 409 Conflict means someone wrote in between: read again and
retry, up to :data:`MAX_CONFLICTS` times. Transport and errors: :mod:`opsctl.integrations.kube_http`.
``import kubernetes`` happens only when a client is built (it costs about a third of a second).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from opsctl.errors import UpstreamError, UsageError
from opsctl.integrations import kube_config
from opsctl.integrations.kube_http import (
    KUBE,
    AlreadyExistsError,
    Answer,
    ConflictError,
    NotFoundError,
    rejection,
    send,
)
from opsctl.integrations.retry import Budget, Retrier

__all__ = ["MAX_CONFLICTS", "AlreadyExistsError", "ConflictError", "KubeClient", "NotFoundError"]

log = logging.getLogger("opsctl.kube")

MAX_CONFLICTS = 5  # read-modify-write rounds of one update_* before giving up
MERGE_PATCH = "application/merge-patch+json"
_LABEL = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,251}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")

Object = dict[str, Any]
Mutate = Callable[[Object], Object | None]


@dataclass(frozen=True)
class _Kind:
    label: str  # how messages name one: "deployment"
    prefix: str  # "/apis/apps/v1"
    plural: str
    kind: str
    api_version: str

    def path(self, namespace: str, name: str | None = None) -> str:
        path = f"{self.prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    def what(self, namespace: str, name: str | None = None) -> str:
        return f"{self.label} {namespace}/{name}" if name else f"{self.plural} in namespace {namespace}"


DEPLOYMENT = _Kind("deployment", "/apis/apps/v1", "deployments", "Deployment", "apps/v1")
REPLICASET = _Kind("replicaset", "/apis/apps/v1", "replicasets", "ReplicaSet", "apps/v1")
SERVICE = _Kind("service", "/api/v1", "services", "Service", "v1")
HTTPROUTE = _Kind(
    "HTTPRoute", "/apis/gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute", "gateway.networking.k8s.io/v1"
)


class _Found(Exception):
    def __init__(self, obj: Object) -> None:
        self.obj = obj


class KubeClient:
    """One kubeconfig context's API. Not for concurrent use from several threads."""

    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None,
        *,
        request_timeout: float = 10.0,
        budget: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if request_timeout <= 0 or budget <= 0:
            raise UsageError(f"Kubernetes timeouts must be positive (request {request_timeout}s, total {budget}s)")
        cluster = kube_config.load(kubeconfig, context)
        self.context, self.server, self.namespace = cluster.context, cluster.server, cluster.namespace
        self.budget = float(budget)
        self._api: Any = cluster.api_client
        self.name = f"the Kubernetes API of context {self.context!r}"
        self._retrier = Retrier(
            self.name,
            request_timeout=float(request_timeout),
            classifier=KUBE,
            sleep=sleep,
            monotonic=monotonic,
            address=self.server,
            hint=f"check that {self.server} is reachable (kubectl --context {self.context} get --raw /version)",
            hints={"tls": "check the certificate-authority of the cluster in the kubeconfig"},
            log=log,
        )

    def __repr__(self) -> str:
        return f"KubeClient(context={self.context!r}, server={self.server!r})"

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._api.close()

    # -- Deployments, ReplicaSets ------------------------------------------------------------

    def get_deployment(self, namespace: str, name: str) -> Object | None:
        return self._get(DEPLOYMENT, namespace, name, self._budget())

    def create_deployment(self, namespace: str, body: Object) -> Object:
        return self._create(DEPLOYMENT, namespace, body)

    def patch_deployment(self, namespace: str, name: str, patch: Object) -> Object:
        return self._patch(DEPLOYMENT, namespace, name, patch)

    def update_deployment(self, namespace: str, name: str, mutate: Mutate) -> Object:
        return self._update(DEPLOYMENT, namespace, name, mutate)

    def delete_deployment(self, namespace: str, name: str) -> bool:
        """True when it was deleted (by this call), False when there was none."""
        gone_before = [False]

        def note_ambiguity() -> None:  # an attempt may have deleted it: a 404 now means it did
            gone_before[0] = True

        answer = self._call("DELETE", DEPLOYMENT, namespace, name, self._budget(), lookup=note_ambiguity)
        if answer.status_code == 404:
            return gone_before[0]
        self._result(answer, "delete", DEPLOYMENT, namespace, name)
        return True

    def list_replicasets(self, namespace: str, selector: dict[str, str]) -> list[Object]:
        """The ReplicaSets whose labels include all of ``selector`` (kind/apiVersion filled in)."""
        for key, value in selector.items():
            if not _LABEL.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
                raise UsageError(f"not a valid label selector term: {key!r}={value!r}")
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items()))] if selector else []
        answer = self._call("GET", REPLICASET, namespace, None, self._budget(), query=query)
        items = self._result(answer, "list", REPLICASET, namespace).get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise UpstreamError(f"{self.name} answered the list of {REPLICASET.what(namespace)} with a malformed list")
        return [{"apiVersion": REPLICASET.api_version, "kind": REPLICASET.kind, **item} for item in items]

    # -- Services, HTTPRoutes ------------------------------------------------------------------

    def get_service(self, namespace: str, name: str) -> Object | None:
        return self._get(SERVICE, namespace, name, self._budget())

    def create_service(self, namespace: str, body: Object) -> Object:
        return self._create(SERVICE, namespace, body)

    def patch_service(self, namespace: str, name: str, patch: Object) -> Object:
        return self._patch(SERVICE, namespace, name, patch)

    def update_service(self, namespace: str, name: str, mutate: Mutate) -> Object:
        return self._update(SERVICE, namespace, name, mutate)

    def get_httproute(self, namespace: str, name: str) -> Object | None:
        return self._get(HTTPROUTE, namespace, name, self._budget())

    def create_httproute(self, namespace: str, body: Object) -> Object:
        return self._create(HTTPROUTE, namespace, body)

    def patch_httproute(self, namespace: str, name: str, patch: Object) -> Object:
        return self._patch(HTTPROUTE, namespace, name, patch)

    def update_httproute(self, namespace: str, name: str, mutate: Mutate) -> Object:
        return self._update(HTTPROUTE, namespace, name, mutate)

    # -- verbs ---------------------------------------------------------------------------------

    def _get(self, kind: _Kind, namespace: str, name: str, budget: Budget) -> Object | None:
        answer = self._call("GET", kind, namespace, name, budget)
        return None if answer.status_code == 404 else self._result(answer, "get", kind, namespace, name)

    def _create(self, kind: _Kind, namespace: str, body: Object) -> Object:
        name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise UsageError(f"the {kind.label} to create in namespace {namespace} has no metadata.name")
        budget = self._budget()
        ambiguous = [False]

        def look_up() -> None:  # after a failure that may have created it: is it there?
            ambiguous[0] = True
            found = self._get(kind, namespace, name, budget)
            if found is not None:
                raise _Found(found)

        try:
            answer = self._call("POST", kind, namespace, None, budget, body=body, lookup=look_up)
            if answer.status_code == 409 and ambiguous[0]:  # the lost attempt did create it
                look_up()
        except _Found as found:
            log.debug("%s: %s was created by an attempt whose answer was lost", self.name, kind.what(namespace, name))
            return found.obj
        return self._result(answer, "create", kind, namespace, name)

    def _patch(self, kind: _Kind, namespace: str, name: str, patch: Object) -> Object:
        if not isinstance(patch, dict):
            raise UsageError(f"a merge patch for {kind.what(namespace, name)} must be a mapping")
        answer = self._call("PATCH", kind, namespace, name, self._budget(), body=patch, content_type=MERGE_PATCH)
        return self._result(answer, "patch", kind, namespace, name)

    def _update(self, kind: _Kind, namespace: str, name: str, mutate: Mutate) -> Object:
        budget = self._budget()
        for attempt in range(1, MAX_CONFLICTS + 1):
            current = self._get(kind, namespace, name, budget)
            if current is None:
                raise NotFoundError(f"{kind.what(namespace, name)} not found ({self.name})")
            changed = mutate(copy.deepcopy(current))
            if changed is None:
                return current
            changed.setdefault("metadata", {})["resourceVersion"] = current.get("metadata", {}).get("resourceVersion")
            answer = self._call("PUT", kind, namespace, name, budget, body=changed)
            if answer.status_code != 409:
                return self._result(answer, "update", kind, namespace, name)
            log.debug("%s: %s changed meanwhile (attempt %d): reading it again", self.name, kind.label, attempt)
        raise ConflictError(
            f"{kind.what(namespace, name)} kept changing: {MAX_CONFLICTS} updates in a row met a newer version "
            f"(409 Conflict from {self.name})",
            "something else keeps writing it; try again when it has settled",
        )

    # -- transport -----------------------------------------------------------------------------

    def _budget(self) -> Budget:
        return self._retrier.budget(self.budget)

    def _call(
        self,
        method: str,
        kind: _Kind,
        namespace: str,
        name: str | None,
        budget: Budget,
        *,
        body: Object | None = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
        lookup: Callable[[], None] | None = None,
    ) -> Answer:
        path = kind.path(namespace, name)

        def attempt(timeout: float) -> Answer:
            return send(
                self._api, method, path, timeout, api_name=self.name, body=body, query=query, content_type=content_type
            )

        # Every verb is safe to repeat here: PATCHes are merge patches, PUTs carry a resourceVersion,
        # a DELETE that already happened answers 404, and a POST repeats only after a look-up (above).
        return self._retrier.call(
            attempt, f"{method} {path}", budget, idempotent=True, before_retry_after_ambiguity=lookup
        )

    def _result(self, answer: Answer, verb: str, kind: _Kind, namespace: str, name: str | None = None) -> Object:
        what = kind.what(namespace, name)
        if not 200 <= answer.status_code < 300:
            raise rejection(answer.status_code, answer.data, api=self.name, verb=verb, what=what)
        try:
            data = json.loads(answer.data)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(f"{self.name} answered {verb} {what} with something that is not a JSON object")
        return data
