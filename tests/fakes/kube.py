"""A stateful fake of the Kubernetes API server, over plain HTTP on 127.0.0.1.

No kube-apiserver, envtest or kwok can run here, so this speaks enough of the real REST protocol
that the official ``kubernetes`` client (37.x) works against it unmodified:

    with KubeFake() as kube:
        write_kubeconfig(tmp_path / "kubeconfig", {"prod-eu": kube})
        api = kubernetes.config.new_client_from_config(str(tmp_path / "kubeconfig"), "prod-eu")
        kubernetes.client.AppsV1Api(api).create_namespaced_deployment("prod", body)
        kube.make_ready("prod", "api")        # the test plays the controller

Resources: apps/v1 ``deployments`` and ``replicasets`` (with ``status`` and ``scale``), core/v1
``services`` and ``pods`` (with ``status``), gateway.networking.k8s.io/v1 ``httproutes`` (a custom
resource: list items carry kind/apiVersion, strategic merge patch is refused with 415), plus
``/version``, ``/api``, ``/apis`` discovery. Verbs: get, list (``labelSelector``, ``fieldSelector``
on ``metadata.name``/``metadata.namespace``), create (201), replace (409 on a stale
``resourceVersion``), patch (merge, strategic merge, JSON patch), delete (a ``Status``), all with
``dryRun``. Errors are ``Status`` objects with the code, reason, message and details the real
server sends. Every change takes the next value of one global resourceVersion counter; a write
that changes nothing keeps the object's version, as etcd does; ``metadata.generation`` goes up when
the spec changes. Nothing else happens by itself: no controllers, no kubelet (see the helpers
:meth:`KubeFake.set_deployment_status`, :meth:`KubeFake.make_ready`,
:meth:`KubeFake.create_replicaset_for`).

When ``token`` is set (the default) requests need ``Authorization: Bearer <token>``, else 401.

Faults (:meth:`KubeFake.inject`): an error status, a delay before the request is handled (longer
than the client's timeout = a timeout), or a dropped connection, each optionally after the request
was processed, matched by method and a regular expression searched in the path, for ``times``
requests. Every request is recorded (:attr:`KubeFake.requests`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.kube_model import (
    RESOURCES,
    ApiError,
    Resource,
    Store,
    resource_for,
    status_body,
)

__all__ = ["ApiError", "Fault", "KubeFake", "RecordedRequest", "Resource", "running_fake"]


@dataclass
class RecordedRequest:
    """One request as received, and what the fake answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # decoded JSON, None when absent or not JSON
    raw_body: bytes = b""
    content_type: str = ""
    fault: str | None = None
    status: int | None = None  # None: the connection was dropped
    response: Any = None

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Fault:
    """A queued fault: ``kind`` is "status", "delay" or "drop"; ``path`` a regex searched in the path.

    "status" answers ``status`` with ``body`` (default: the Status object the real server would
    send for that code) and ``headers``; "delay" holds the request ``delay`` seconds, then handles it
    normally; "drop" closes the connection (RST) without an answer. ``process``: handle the request
    first (its change is made), then answer the error / drop the connection.
    """

    kind: str = "status"
    method: str | None = None
    path: str | None = None
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    process: bool = False
    times: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("status", "delay", "drop"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.times < 1:
            raise ValueError("times must be >= 1")
        self._regex = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return self._regex is None or self._regex.search(path) is not None

    def describe(self) -> str:
        where = f"{self.method or '*'} {self.path or '*'}"
        after = " after processing" if self.process else ""
        if self.kind == "status":
            return f"status {self.status}{after} on {where}"
        return f"delay {self.delay}s on {where}" if self.kind == "delay" else f"drop{after} on {where}"


class _Drop(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: KubeFake) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out at once
        with self.connections_lock:
            self.connections.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        with contextlib.suppress(OSError):
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up, connections we dropped

    def close_all(self) -> None:
        with self.connections_lock:
            connections, self.connections = list(self.connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-fake/1"
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self) -> None:
        try:
            self.server.fake._dispatch(self)
        except _Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()  # SO_LINGER 0: the peer sees a reset

    def send_json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class KubeFake:
    """The fake API server; see the module docstring. Thread-safe; a context manager."""

    def __init__(
        self,
        *,
        token: str | None = "kube-test-token",
        host: str = "127.0.0.1",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        self.host = host
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self.store = Store(self._clock)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> KubeFake:
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self.host, 0), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kube-fake", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: from now on connections are refused (the state is kept)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_all()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> KubeFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("KubeFake is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        """A real ``kubernetes.client.ApiClient`` for this fake (no kubeconfig, no global state)."""
        import kubernetes

        configuration = kubernetes.client.Configuration(host=self.url)
        if self.token:
            configuration.api_key["BearerToken"] = f"Bearer {self.token}"
        return kubernetes.client.ApiClient(configuration)

    # -- state, for tests ---------------------------------------------------------------------

    def reset(self) -> None:
        """No objects, faults or recorded requests; the resourceVersion counter goes on."""
        with self._lock:
            self.store.objects.clear()
            self._faults.clear()
            self._requests.clear()

    def put_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` as is (resource from apiVersion/kind), filling in what the server sets."""
        with self._lock:
            return self.store.put(obj)

    def get_object(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of an object; ``resource`` is a plural ("deployments"), qualified name or kind."""
        with self._lock:
            found = self.store.objects.get((resource_for(resource).qualified, namespace, name))
            return copy.deepcopy(found)

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Copies of all objects of a resource (in one namespace), by name."""
        with self._lock:
            return self.store.select(resource_for(resource), namespace, [], [])

    def delete_object(self, resource: str, namespace: str, name: str) -> bool:
        with self._lock:
            return self.store.objects.pop((resource_for(resource).qualified, namespace, name), None) is not None

    @property
    def resource_version(self) -> int:
        """The last resourceVersion handed out."""
        with self._lock:
            return self.store.counter

    def set_deployment_status(
        self,
        namespace: str,
        name: str,
        *,
        replicas: int | None = None,
        ready: int | None = None,
        updated: int | None = None,
        available: int | None = None,
        unavailable: int | None = None,
        observed_generation: int | None = None,
        conditions: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Write fields of a Deployment's status as the controller would (None = leave as is)."""
        fields = {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "unavailableReplicas": unavailable,
            "observedGeneration": observed_generation,
            "conditions": conditions,
        }
        with self._lock:
            return self.store.set_status(
                RESOURCES["deployments"], namespace, name, {k: v for k, v in fields.items() if v is not None}
            )

    def set_status(
        self, resource: str, namespace: str, name: str, status: dict[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Write an object's status as its controller would (merged into the old one unless ``replace``)."""
        with self._lock:
            return self.store.set_status(resource_for(resource), namespace, name, status, replace=replace)

    def make_ready(self, namespace: str, name: str) -> dict[str, Any]:
        """The Deployment's status as after a finished rollout: every replica updated, ready, available."""
        with self._lock:
            deployment = self.store.require(RESOURCES["deployments"], namespace, name)
            wanted = int(deployment.get("spec", {}).get("replicas", 1))
            now = self.store.timestamp()
            conditions = [
                _condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability.", now),
                _condition(
                    "Progressing", "NewReplicaSetAvailable", f'ReplicaSet "{name}" has successfully progressed.', now
                ),
            ]
            status = {
                "observedGeneration": deployment["metadata"].get("generation", 1),
                "replicas": wanted,
                "updatedReplicas": wanted,
                "readyReplicas": wanted,
                "availableReplicas": wanted,
                "conditions": conditions,
            }
            return self.store.set_status(RESOURCES["deployments"], namespace, name, status, replace=True)

    def create_replicaset_for(
        self, namespace: str, deployment: str, revision: int, *, replicas: int | None = None
    ) -> dict[str, Any]:
        """The ReplicaSet the Deployment controller makes for the current pod template: owned by the
        Deployment, labelled with a pod-template-hash, annotated with ``revision``; the Deployment
        gets the same revision annotation."""
        with self._lock:
            return self.store.replicaset_for(namespace, deployment, revision, replicas)

    # -- traffic and faults -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests by method and a regex searched in the path."""
        regex = re.compile(path) if path else None
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (regex is None or regex.search(r.path))
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def inject(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int = 500,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float | None = None,
        drop: bool = False,
        process: bool = False,
    ) -> Fault:
        """Queue a fault: an error ``status`` (default), or ``delay`` seconds, or ``drop`` the connection."""
        kind = "drop" if drop else "delay" if delay is not None else "status"
        fault = Fault(kind, method, path, status, body, dict(headers or {}), delay or 0.0, process, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- handling -----------------------------------------------------------------------------

    def _dispatch(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        raw = handler.read_body()
        record = RecordedRequest(
            method=handler.command,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers=dict(handler.headers.items()),
            body=None,
            raw_body=raw,
            content_type=(handler.headers.get("Content-Type") or "").split(";")[0].strip().lower(),
        )
        with contextlib.suppress(ValueError):
            record.body = json.loads(raw) if raw.strip() else None
        with self._lock:
            self._requests.append(record)
        fault = self._take_fault(record.method, record.path)
        if fault is not None:
            record.fault = fault.describe()
            if fault.kind == "delay" and self._stopping.wait(fault.delay):
                raise _Drop
            if fault.kind == "drop":
                if fault.process:
                    self._process(record)
                raise _Drop
            if fault.kind == "status":
                if fault.process:
                    self._process(record)
                body = fault.body if fault.body is not None else _fault_body(fault.status, record.path)
                headers = dict(fault.headers)
                if fault.status == 429:
                    headers.setdefault("Retry-After", "1")
                self._answer(handler, record, fault.status, body, headers)
                return
        status, payload = self._process(record)
        self._answer(handler, record, status, payload, {})

    def _answer(
        self, handler: _Handler, record: RecordedRequest, status: int, payload: Any, headers: dict[str, str]
    ) -> None:
        record.status = status
        record.response = payload if isinstance(payload, dict) else None
        handler.send_json(status, payload, headers)

    def _process(self, record: RecordedRequest) -> tuple[int, Any]:
        with self._lock:
            try:
                self._authenticate(record)
                return self.store.handle(record.method, record.path, record.query, record.raw_body, record.content_type)
            except ApiError as exc:
                return exc.code, exc.body()

    def _authenticate(self, record: RecordedRequest) -> None:
        if self.token is None:
            return
        if (record.header("Authorization") or "").strip() != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")


def _condition(kind: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


_FAULT_TEXT = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    502: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _fault_body(status: int, path: str) -> dict[str, Any]:
    """The Status the real server sends for an injected ``status`` on ``path``."""
    match = re.search(r"/namespaces/[^/]+/([^/]+)/([^/]+)", path)
    plural, name = (match.group(1), match.group(2)) if match else ("", "")
    if status == 409:
        qualified = _qualified(plural) or "objects"
        message = (
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )
    elif status == 429:
        message = "Too many requests, please try again later."
    elif status == 503:
        message = "the server is currently unable to handle the request"
    elif status == 504:
        message = (
            "the server was unable to return a response in the time allotted, but may still be processing the request"
        )
    elif status >= 500:
        message = 'an error on the server ("etcdserver: request timed out") has prevented the request from succeeding'
    else:
        message = f"injected {status}"
    reason = _FAULT_TEXT.get(status, "InternalError" if status >= 500 else "BadRequest")
    details: dict[str, Any] = {"name": name, "kind": plural} if name else {}
    return status_body(status, reason, message, details or None)


def _qualified(plural: str) -> str:
    for resource in RESOURCES.values():
        if resource.plural == plural:
            return resource.qualified
    return ""


@contextlib.contextmanager
def running_fake(**kwargs: Any) -> Iterator[KubeFake]:
    with KubeFake(**kwargs) as fake:
        yield fake
