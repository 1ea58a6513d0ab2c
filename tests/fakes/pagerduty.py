"""A stateful fake of the PagerDuty REST API v2, served over real HTTPS on 127.0.0.1.

It speaks the incident lifecycle as the official OpenAPI document describes it (paths, bodies,
wrappers, pagination) so that the real ``pagerduty.RestApiV2Client`` goes through its real
transport to it:

    with PagerDutyFake(tls=make_tls_material(tmp_path)) as pd:
        client = pagerduty.RestApiV2Client(pd.token, default_from="oncall@example.com",
                                           base_url=pd.base_url, verify=pd.ssl_context())
        incident = client.rpost("/incidents", json={...})
        assert pd.incident(incident["id"])["status"] == "triggered"

Endpoints: ``POST /incidents``, ``GET /incidents`` (``incident_key``, ``statuses[]``,
``service_ids[]``, ``urgencies[]``, ``user_ids[]``, ``since``/``until``, ``sort_by``,
``offset``/``limit``/``total``), ``GET``/``PUT /incidents/{id}``, ``GET``/``POST
/incidents/{id}/notes``, ``POST /incidents/{id}/status_updates``, ``GET /priorities``.
Every request must carry ``Authorization: Token token=<token>`` (or ``Bearer <token>``), else
401; writes need a ``From`` header naming a user, else 400 (code 2016, PagerDuty's wording).
Creating an incident while an open (triggered/acknowledged) incident with the same
``incident_key`` exists on the service answers 400 with PagerDuty's "Open incident with matching
dedup key already exists on this service".

Faults are queued with :meth:`PagerDutyFake.inject` (or the ``inject_*`` helpers); each request
takes the first queued fault whose method/path filter matches, and consumes one of its
``times``; faults apply before authentication and routing. Kinds: an error status (429 with
``Retry-After``/``ratelimit-*`` headers, 500, 502, 503; optionally after the request was
processed), a delay (the request is then processed and answered normally, so a client timeout
fires first), and a connection reset (optionally after the request was processed: "created,
but the client never heard").

Every request is recorded in :attr:`PagerDutyFake.requests` with its decoded query, headers,
JSON body, and the answer given; :meth:`PagerDutyFake.contract_violations` runs the OpenAPI
contract checker (``tests/contract/openapi.py``) over all of them.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.tls import TLSMaterial, make_tls_material

# --------------------------------------------------------------------------------------------
# PagerDuty's error answers
# --------------------------------------------------------------------------------------------

DEDUP_ERROR = "Open incident with matching dedup key already exists on this service"
FROM_REQUIRED_MESSAGE = 'You must specify a user\'s email address in the "From" header to perform this action'
INVALID_STATUS_ERROR = "Status must be a list of triggered, acknowledged, or resolved."

OPEN_STATUSES = ("triggered", "acknowledged")
STATUSES = ("triggered", "acknowledged", "resolved")
URGENCIES = ("high", "low")


def _error(message: str, code: int, errors: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return {"error": body}


def invalid_input(*errors: str) -> dict[str, Any]:
    return _error("Invalid Input Provided", 2001, list(errors))


NOT_FOUND = _error("Not Found", 2100)
UNAUTHORIZED = _error("Authentication failed", 2006)
FROM_REQUIRED = _error(FROM_REQUIRED_MESSAGE, 2016)
RATE_LIMITED = _error("Rate Limit Exceeded", 2020)
INTERNAL_ERROR = _error("Internal Error", 2000)


class _ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


# --------------------------------------------------------------------------------------------
# Recorded traffic and faults
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as received, and what the fake did with it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names as sent by the client
    body: Any  # decoded JSON, or None when there was no (valid JSON) body
    raw_body: bytes = b""
    fault: str | None = None  # description of the injected fault applied, if any
    status: int | None = None  # status answered; None when the connection was dropped
    response: Any = None  # decoded JSON answered (None when not JSON or dropped)
    response_headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    @property
    def answered(self) -> bool:
        return self.status is not None


def _path_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for part in pattern.strip("/").split("/"):
        if part == "*" or (part.startswith("{") and part.endswith("}")):
            parts.append("[^/]+")
        elif part == "**":
            parts.append(".*")
        else:
            parts.append(re.escape(part))
    return re.compile("^/" + "/".join(parts) + "$")


@dataclass
class Fault:
    """One queued fault.

    kind: ``"status"`` answers ``status`` with ``headers``/``body`` (a JSON-able object, or
    str/bytes sent as ``content_type``); ``"delay"`` sleeps ``delay`` seconds and then handles
    the request normally; ``"reset"`` drops the TCP connection (RST) without any answer.
    ``process``: for "status" and "reset", handle the request first (state changes happen),
    then answer the error / drop the connection instead of the real answer.
    ``method``/``path`` filter the requests it applies to (None = any; ``path`` may use
    ``{id}`` or ``*`` for one segment). ``times``: how many matching requests it affects.
    """

    kind: str
    method: str | None = None
    path: str | None = None
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"
    delay: float = 0.0
    process: bool = False
    times: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("status", "delay", "reset"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.times < 1:
            raise ValueError("times must be >= 1")
        self._regex = _path_regex(self.path) if self.path else None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self._regex is None or bool(self._regex.match(path))

    def describe(self) -> str:
        where = f"{self.method or '*'} {self.path or '*'}"
        if self.kind == "status":
            return f"status {self.status}{' after processing' if self.process else ''} on {where}"
        if self.kind == "delay":
            return f"delay {self.delay}s on {where}"
        return f"reset{' after processing' if self.process else ''} on {where}"


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class _Incident:
    id: str
    number: int
    title: str
    service_id: str
    escalation_policy_id: str
    urgency: str
    incident_key: str
    status: str
    priority_id: str | None
    body_details: Any
    created_at: datetime
    updated_at: datetime
    last_status_change_at: datetime
    last_status_change_by: str
    created_by: str
    resolved_at: datetime | None = None
    assignments: list[tuple[datetime, str]] = field(default_factory=list)
    acknowledgements: list[tuple[datetime, str]] = field(default_factory=list)
    first_log_entry_id: str = ""


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


DEFAULT_USERS = {
    "PUSER01": ("oncall@example.com", "On-call Engineer"),
    "PUSER02": ("sre-primary@example.com", "SRE Primary"),
}
DEFAULT_ESCALATION_POLICIES = {
    "PESC001": "auth escalation",
    "PESC002": "billing escalation",
    "PESC003": "api escalation",
    "PESC004": "signaling escalation",
    "PESC005": "default escalation",
}
# id -> (name, escalation policy id); matches config/opsctl.example.yaml
DEFAULT_SERVICES = {
    "PAUTH01": ("auth", "PESC001"),
    "PBILL01": ("billing", "PESC002"),
    "PAPI001": ("api", "PESC003"),
    "PSIG001": ("signaling", "PESC004"),
    "PJOB001": ("jobs", "PESC005"),
}
DEFAULT_PRIORITIES = [
    ("PPRI001", "P1", "Critical issue that warrants public notification and liaison with executive teams"),
    ("PPRI002", "P2", "Critical system issue actively impacting many customers' ability to use the product"),
    ("PPRI003", "P3", "Stability or minor customer-impacting issues that require immediate attention"),
    ("PPRI004", "P4", "Minor issues requiring action, but not affecting customer ability to use the product"),
    ("PPRI005", "P5", "Cosmetic issues or bugs, not affecting customer ability to use the product"),
]


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------


class _DropConnection(Exception):
    """Raised inside a handler to reset the connection without answering."""


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: PagerDutyFake, context: ssl.SSLContext) -> None:
        self.fake = fake
        self.ssl_context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        tls = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.connections_lock:
            self.connections.add(tls)
        return tls, addr

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        with contextlib.suppress(OSError, ValueError):
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Handshake failures, clients hanging up, resets we caused: nothing to report.
        pass

    def close_all_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
            self.connections.clear()
        for conn in conns:
            with contextlib.suppress(OSError, ValueError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError, ValueError):
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pagerduty-fake/1"
    timeout = 30
    server: _TLSServer

    def setup(self) -> None:
        super().setup()
        self.request.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        try:
            self.server.fake._dispatch(self)
        except _DropConnection:
            self._reset()

    def _reset(self) -> None:
        self.close_connection = True
        conn = self.connection
        with contextlib.suppress(OSError, ValueError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError, ValueError):
            # Close the raw descriptor: no TLS close_notify, the kernel sends a RST.
            socket.socket(fileno=conn.detach()).close()

    def send_payload(self, status: int, payload: Any, headers: dict[str, str], content_type: str) -> None:
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        elif payload is None:
            data = b""
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class PagerDutyFake:
    """Stateful PagerDuty REST API v2 fake over HTTPS on loopback. See the module docstring."""

    def __init__(
        self,
        tls: TLSMaterial | None = None,
        *,
        tls_dir: str | Path | None = None,
        token: str = "pd-test-token",
        host: str = "127.0.0.1",
        subdomain: str = "opsctl-test",
        priorities: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if tls is None:
            if tls_dir is None:
                raise ValueError("PagerDutyFake needs tls=TLSMaterial or tls_dir=<directory for ca.pem>")
            tls = make_tls_material(tls_dir)
        self.tls = tls
        self.token = token
        self.tokens = {token}
        self.host = host
        self.subdomain = subdomain
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._priorities_default = priorities
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PagerDutyFake:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _TLSServer((self.host, 0), self, self.tls.server_context())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="pagerduty-fake", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes delayed handlers
        server.shutdown()
        server.close_all_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> PagerDutyFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("PagerDutyFake is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        return self.tls.ca_path

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context trusting the fake's CA (pass as ``verify=``)."""
        return self.tls.client_context()

    def client(self, default_from: str | None = "oncall@example.com", **kw: Any) -> Any:
        """A real ``pagerduty.RestApiV2Client`` pointed at the fake (TLS verified)."""
        import pagerduty

        kw.setdefault("verify", self.ssl_context())
        return pagerduty.RestApiV2Client(self.token, default_from=default_from, base_url=self.base_url, **kw)

    # -- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the preloaded account: no incidents, no faults, no recorded requests."""
        with self._lock:
            self.users: dict[str, tuple[str, str]] = dict(DEFAULT_USERS)
            self.escalation_policies: dict[str, dict[str, str]] = {
                ep_id: {"name": name, "on_call_user_id": "PUSER02"}
                for ep_id, name in DEFAULT_ESCALATION_POLICIES.items()
            }
            self.services: dict[str, dict[str, str]] = {
                sid: {"name": name, "escalation_policy_id": ep} for sid, (name, ep) in DEFAULT_SERVICES.items()
            }
            self.priorities = [{"id": i, "name": n, "description": d} for i, n, d in DEFAULT_PRIORITIES]
            self.priorities_enabled = self._priorities_default
            self._incidents: dict[str, _Incident] = {}
            self._notes: dict[str, list[dict[str, Any]]] = {}
            self._status_updates: dict[str, list[dict[str, Any]]] = {}
            self._log_entries: dict[str, list[dict[str, Any]]] = {}
            self._counters: dict[str, int] = {}
            self._faults.clear()
            self._requests.clear()

    def add_service(self, service_id: str, name: str, escalation_policy_id: str = "PESC005") -> None:
        with self._lock:
            if escalation_policy_id not in self.escalation_policies:
                self.escalation_policies[escalation_policy_id] = {"name": name, "on_call_user_id": "PUSER02"}
            self.services[service_id] = {"name": name, "escalation_policy_id": escalation_policy_id}

    def add_user(self, email: str, name: str) -> str:
        with self._lock:
            for user_id, (known, _) in self.users.items():
                if known.lower() == email.lower():
                    return user_id
            user_id = self._next_id("PUSR")
            self.users[user_id] = (email, name)
            return user_id

    def incident(self, incident_id: str) -> dict[str, Any]:
        """The API representation of one incident (KeyError if unknown)."""
        with self._lock:
            return self._render_incident(self._incidents[incident_id])

    def incidents(
        self,
        *,
        incident_key: str | None = None,
        service_id: str | None = None,
        statuses: tuple[str, ...] | None = None,
    ) -> list[dict[str, Any]]:
        """All incidents in the fake's state (API representation), oldest first, filtered."""
        with self._lock:
            found = [
                self._render_incident(inc)
                for inc in sorted(self._incidents.values(), key=lambda i: i.number)
                if (incident_key is None or inc.incident_key == incident_key)
                and (service_id is None or inc.service_id == service_id)
                and (statuses is None or inc.status in statuses)
            ]
            return found

    def incident_details(self, incident_id: str) -> Any:
        """The ``body.details`` an incident was created with."""
        with self._lock:
            return self._incidents[incident_id].body_details

    def notes(self, incident_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(n) for n in self._notes.get(incident_id, [])]

    def status_updates(self, incident_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._status_updates.get(incident_id, [])]

    def log_entries(self, incident_id: str) -> list[dict[str, Any]]:
        """Internal log: trigger/acknowledge/resolve/reopen/annotate/status_update entries."""
        with self._lock:
            return [dict(e) for e in self._log_entries.get(incident_id, [])]

    # -- traffic -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        regex = _path_regex(path) if path else None
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (regex is None or regex.match(r.path))
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def contract_violations(self, requests: list[RecordedRequest] | None = None) -> list[str]:
        """Run the OpenAPI contract checker over recorded requests and the fake's own answers.

        Answers produced by an injected fault (and dropped connections) are not checked.
        """
        from tests.contract.openapi import validate_request, validate_response

        problems = []
        for req in self.requests if requests is None else requests:
            label = f"{req.method} {req.path}"
            problems += [
                f"{label}: {v}" for v in validate_request(req.method, req.path, req.query, req.headers, req.body)
            ]
            if req.answered and req.fault is None:
                problems += [
                    f"{label} -> {req.status}: {v}"
                    for v in validate_response(req.method, req.path, req.status or 0, req.response)
                ]
        return problems

    # -- faults ------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def inject_status(
        self,
        status: int,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        process: bool = False,
    ) -> Fault:
        """An error status. 500 answers PagerDuty's JSON error; 502/503 an HTML page, like a proxy."""
        content_type = "application/json"
        if body is None:
            if status in (502, 503, 504):
                reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
                body = f"<html><body><h1>{status} {reason}</h1></body></html>"
                content_type = "text/html"
            elif status == 429:
                body = RATE_LIMITED
            else:
                body = INTERNAL_ERROR
        elif isinstance(body, (str, bytes)):
            content_type = "text/plain"
        return self.inject(
            Fault(
                "status",
                method=method,
                path=path,
                status=status,
                headers=dict(headers or {}),
                body=body,
                content_type=content_type,
                process=process,
                times=times,
            )
        )

    def inject_rate_limit(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        retry_after: float | None = 1,
        ratelimit_reset: int | None = 1,
        ratelimit_limit: int = 960,
    ) -> Fault:
        """429 with ``Retry-After`` and/or ``ratelimit-limit/remaining/reset`` headers."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if ratelimit_reset is not None:
            headers["ratelimit-limit"] = str(ratelimit_limit)
            headers["ratelimit-remaining"] = "0"
            headers["ratelimit-reset"] = str(ratelimit_reset)
        return self.inject_status(429, method=method, path=path, times=times, headers=headers)

    def inject_delay(
        self, seconds: float, *, method: str | None = None, path: str | None = None, times: int = 1
    ) -> Fault:
        """Hold the request ``seconds`` (longer than the client timeout = a timeout), then process it."""
        return self.inject(Fault("delay", method=method, path=path, delay=seconds, times=times))

    def inject_reset(
        self, *, method: str | None = None, path: str | None = None, times: int = 1, process: bool = False
    ) -> Fault:
        """Drop the connection (TCP RST) without answering; ``process=True`` commits the request first."""
        return self.inject(Fault("reset", method=method, path=path, process=process, times=times))

    def inject_reset_during_create(self, times: int = 1) -> Fault:
        """POST /incidents creates the incident, then the connection drops without an answer."""
        return self.inject_reset(method="POST", path="/incidents", process=True, times=times)

    @property
    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- request handling --------------------------------------------------------------------

    def _dispatch(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        if len(path) > 1:
            path = path.rstrip("/")
        raw = handler._read_body()
        body: Any = None
        invalid_json = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                invalid_json = True
        record = RecordedRequest(
            method=handler.command,
            path=path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=dict(handler.headers.items()),
            body=body,
            raw_body=raw,
        )
        with self._lock:
            self._requests.append(record)

        fault = self._take_fault(record.method, path)
        if fault is not None:
            record.fault = fault.describe()
            if fault.kind == "delay":
                if self._stopping.wait(fault.delay):
                    raise _DropConnection
            elif fault.kind == "reset":
                if fault.process:
                    self._process(record, invalid_json)
                raise _DropConnection
            elif fault.kind == "status":
                if fault.process:
                    self._process(record, invalid_json)
                headers = {"x-request-id": uuid.uuid4().hex, **fault.headers}
                self._answer(handler, record, fault.status, fault.body, headers, fault.content_type)
                return

        status, payload = self._process(record, invalid_json)
        self._answer(handler, record, status, payload, {"x-request-id": uuid.uuid4().hex}, "application/json")

    def _answer(
        self,
        handler: _Handler,
        record: RecordedRequest,
        status: int,
        payload: Any,
        headers: dict[str, str],
        content_type: str,
    ) -> None:
        record.status = status
        record.response = payload if isinstance(payload, (dict, list)) else None
        record.response_headers = dict(headers)
        handler.send_payload(status, payload, headers, content_type)

    def _process(self, record: RecordedRequest, invalid_json: bool) -> tuple[int, Any]:
        with self._lock:
            try:
                self._authenticate(record)
                if invalid_json:
                    raise _ApiError(400, invalid_input("Request body is not valid JSON"))
                return self._route(record)
            except _ApiError as exc:
                return exc.status, exc.body

    def _authenticate(self, record: RecordedRequest) -> None:
        value = record.header("Authorization") or ""
        match = re.fullmatch(r"Token token=(\S+)|Bearer (\S+)", value.strip())
        token = (match.group(1) or match.group(2)) if match else None
        if token not in self.tokens:
            raise _ApiError(401, UNAUTHORIZED)

    _ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
        ("GET", re.compile(r"^/incidents$"), "_list_incidents"),
        ("POST", re.compile(r"^/incidents$"), "_create_incident"),
        ("GET", re.compile(r"^/incidents/(?P<id>[^/]+)$"), "_get_incident"),
        ("PUT", re.compile(r"^/incidents/(?P<id>[^/]+)$"), "_update_incident"),
        ("GET", re.compile(r"^/incidents/(?P<id>[^/]+)/notes$"), "_list_notes"),
        ("POST", re.compile(r"^/incidents/(?P<id>[^/]+)/notes$"), "_create_note"),
        ("POST", re.compile(r"^/incidents/(?P<id>[^/]+)/status_updates$"), "_create_status_update"),
        ("GET", re.compile(r"^/priorities$"), "_list_priorities"),
    )

    def _route(self, record: RecordedRequest) -> tuple[int, Any]:
        for method, regex, name in self._ROUTES:
            match = regex.match(record.path)
            if match and method == record.method:
                handler: Callable[..., tuple[int, Any]] = getattr(self, name)
                return handler(record, **match.groupdict())
        raise _ApiError(404, NOT_FOUND)

    # -- helpers -----------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        self._counters[prefix] = self._counters.get(prefix, 0) + 1
        return f"{prefix}{self._counters[prefix]:0{7 - len(prefix)}d}"

    def _now(self) -> datetime:
        return self._clock()

    def _requester(self, record: RecordedRequest) -> str:
        """The user id named by the From header (unknown addresses become users)."""
        email = (record.header("From") or "").strip()
        if not email:
            raise _ApiError(400, FROM_REQUIRED)
        if "@" not in email:
            raise _ApiError(400, invalid_input("From header must be a valid email address"))
        for user_id, (known, _) in self.users.items():
            if known.lower() == email.lower():
                return user_id
        user_id = self._next_id("PUSR")
        self.users[user_id] = (email, email.split("@", 1)[0])
        return user_id

    def _incident_or_404(self, incident_id: str) -> _Incident:
        incident = self._incidents.get(incident_id)
        if incident is None:
            raise _ApiError(404, NOT_FOUND)
        return incident

    def _user_ref(self, user_id: str) -> dict[str, Any]:
        _, name = self.users[user_id]
        return {
            "id": user_id,
            "type": "user_reference",
            "summary": name,
            "self": f"{self.base_url}/users/{user_id}",
            "html_url": f"https://{self.subdomain}.pagerduty.com/users/{user_id}",
        }

    def _service_ref(self, service_id: str) -> dict[str, Any]:
        return {
            "id": service_id,
            "type": "service_reference",
            "summary": self.services[service_id]["name"],
            "self": f"{self.base_url}/services/{service_id}",
            "html_url": f"https://{self.subdomain}.pagerduty.com/service-directory/{service_id}",
        }

    def _escalation_policy_ref(self, ep_id: str) -> dict[str, Any]:
        return {
            "id": ep_id,
            "type": "escalation_policy_reference",
            "summary": self.escalation_policies[ep_id]["name"],
            "self": f"{self.base_url}/escalation_policies/{ep_id}",
            "html_url": f"https://{self.subdomain}.pagerduty.com/escalation_policies/{ep_id}",
        }

    def _priority(self, priority_id: str) -> dict[str, Any] | None:
        for priority in self.priorities:
            if priority["id"] == priority_id:
                return {
                    "id": priority["id"],
                    "type": "priority",
                    "summary": priority["name"],
                    "self": f"{self.base_url}/priorities/{priority['id']}",
                    "html_url": None,
                    "name": priority["name"],
                    "description": priority["description"],
                }
        return None

    def _resolve_priority(self, value: Any) -> str | None:
        if value is None:
            return None
        if not self.priorities_enabled:
            raise _ApiError(400, invalid_input("Priority not found"))
        if isinstance(value, str):
            matches = [p for p in self.priorities if p["name"] == value]
        elif isinstance(value, dict) and isinstance(value.get("id"), str):
            matches = [p for p in self.priorities if p["id"] == value["id"]]
        else:
            raise _ApiError(400, invalid_input("Priority must be a priority reference or a priority name"))
        if not matches:
            raise _ApiError(400, invalid_input("Priority not found"))
        return str(matches[0]["id"])

    def _log(self, incident: _Incident, kind: str, user_id: str, **extra: Any) -> str:
        entry_id = self._next_id("LOG")
        self._log_entries.setdefault(incident.id, []).append(
            {"id": entry_id, "type": kind, "created_at": _ts(self._now()), "agent": user_id, **extra}
        )
        return entry_id

    def _render_incident(self, inc: _Incident) -> dict[str, Any]:
        return {
            "id": inc.id,
            "type": "incident",
            "summary": f"[#{inc.number}] {inc.title}",
            "self": f"{self.base_url}/incidents/{inc.id}",
            "html_url": f"https://{self.subdomain}.pagerduty.com/incidents/{inc.id}",
            "incident_number": inc.number,
            "title": inc.title,
            "created_at": _ts(inc.created_at),
            "updated_at": _ts(inc.updated_at),
            "status": inc.status,
            "incident_key": inc.incident_key,
            "service": self._service_ref(inc.service_id),
            "assignments": [{"at": _ts(at), "assignee": self._user_ref(uid)} for at, uid in inc.assignments],
            "assigned_via": "escalation_policy",
            "last_status_change_at": _ts(inc.last_status_change_at),
            "last_status_change_by": self._user_ref(inc.last_status_change_by),
            "resolved_at": _ts(inc.resolved_at) if inc.resolved_at else None,
            "first_trigger_log_entry": {
                "id": inc.first_log_entry_id,
                "type": "trigger_log_entry_reference",
                "summary": "Triggered through the API",
                "self": f"{self.base_url}/log_entries/{inc.first_log_entry_id}?incident_id={inc.id}",
                "html_url": f"https://{self.subdomain}.pagerduty.com/incidents/{inc.id}/log_entries/{inc.first_log_entry_id}",
            },
            "alert_counts": {"all": 0, "triggered": 0, "resolved": 0},
            "is_mergeable": True,
            "incident_type": {"name": "incident_default"},
            "escalation_policy": self._escalation_policy_ref(inc.escalation_policy_id),
            "teams": [],
            "pending_actions": [],
            "acknowledgements": [
                {"at": _ts(at), "acknowledger": self._user_ref(uid)} for at, uid in inc.acknowledgements
            ],
            "alert_grouping": None,
            "priority": self._priority(inc.priority_id) if inc.priority_id else None,
            "resolve_reason": None,
            "urgency": inc.urgency,
        }

    @staticmethod
    def _single(record: RecordedRequest, name: str) -> str | None:
        values = record.query.get(name)
        return values[-1] if values else None

    @staticmethod
    def _int_param(record: RecordedRequest, name: str, default: int) -> int:
        value = PagerDutyFake._single(record, name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise _ApiError(400, invalid_input(f"{name.capitalize()} must be an integer")) from None
        if number < 0:
            raise _ApiError(400, invalid_input(f"{name.capitalize()} must be a non-negative integer"))
        return number

    # -- endpoints ---------------------------------------------------------------------------

    def _create_incident(self, record: RecordedRequest) -> tuple[int, Any]:
        user_id = self._requester(record)
        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("incident"), dict):
            raise _ApiError(400, invalid_input("Incident must be provided"))
        data = body["incident"]
        errors = []
        if data.get("type") != "incident":
            errors.append("Type must be incident")
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            errors.append("Title cannot be empty.")
        service = data.get("service")
        service_id = service.get("id") if isinstance(service, dict) else None
        if not isinstance(service_id, str) or service_id not in self.services:
            errors.append("Service not found")
        urgency = data.get("urgency", "high")
        if urgency not in URGENCIES:
            errors.append("Urgency must be one of high, low")
        if data.get("assignments") and data.get("escalation_policy"):
            errors.append("Cannot specify both assignments and an escalation policy")
        if errors:
            raise _ApiError(400, invalid_input(*errors))
        assert isinstance(service_id, str) and isinstance(title, str)
        if isinstance(data.get("priority"), str):
            # createIncident takes a PriorityReference; only PUT /incidents/{id} accepts a name.
            raise _ApiError(400, invalid_input("Priority must be a priority reference"))
        priority_id = self._resolve_priority(data.get("priority"))

        ep_id = self.services[service_id]["escalation_policy_id"]
        escalation_policy = data.get("escalation_policy")
        if escalation_policy is not None:
            ep_id = escalation_policy.get("id") if isinstance(escalation_policy, dict) else None
            if ep_id not in self.escalation_policies:
                raise _ApiError(400, invalid_input("Escalation policy not found"))
        assert isinstance(ep_id, str)

        incident_key = data.get("incident_key")
        if incident_key is not None and not isinstance(incident_key, str):
            raise _ApiError(400, invalid_input("Incident key must be a string"))
        if incident_key:
            for existing in self._incidents.values():
                if (
                    existing.service_id == service_id
                    and existing.incident_key == incident_key
                    and existing.status in OPEN_STATUSES
                ):
                    raise _ApiError(400, invalid_input(DEDUP_ERROR))
        else:
            incident_key = uuid.uuid4().hex  # PagerDuty assigns one when none is given

        details = None
        if isinstance(data.get("body"), dict):
            details = data["body"].get("details")

        now = self._now()
        number = len(self._incidents) + 1
        assignees = []
        for assignment in data.get("assignments") or []:
            assignee = assignment.get("assignee") if isinstance(assignment, dict) else None
            if isinstance(assignee, dict) and assignee.get("id") in self.users:
                assignees.append((now, assignee["id"]))
        if not assignees:
            assignees = [(now, self.escalation_policies[ep_id]["on_call_user_id"])]
        incident = _Incident(
            id=self._next_id("PI"),
            number=number,
            title=title,
            service_id=service_id,
            escalation_policy_id=ep_id,
            urgency=urgency,
            incident_key=incident_key,
            status="triggered",
            priority_id=priority_id,
            body_details=details,
            created_at=now,
            updated_at=now,
            last_status_change_at=now,
            last_status_change_by=user_id,
            created_by=user_id,
            assignments=assignees,
        )
        self._incidents[incident.id] = incident
        incident.first_log_entry_id = self._log(incident, "trigger_log_entry", user_id)
        return 201, {"incident": self._render_incident(incident)}

    def _list_incidents(self, record: RecordedRequest) -> tuple[int, Any]:
        limit = min(self._int_param(record, "limit", 25), 100) or 25
        offset = self._int_param(record, "offset", 0)
        statuses = record.query.get("statuses[]", [])
        if any(s not in STATUSES for s in statuses):
            raise _ApiError(400, invalid_input(INVALID_STATUS_ERROR))
        urgencies = record.query.get("urgencies[]", [])
        if any(u not in URGENCIES for u in urgencies):
            raise _ApiError(400, invalid_input("Urgencies must be a list of high or low."))
        service_ids = set(record.query.get("service_ids[]", []))
        user_ids = set(record.query.get("user_ids[]", []))
        incident_key = self._single(record, "incident_key")
        since = until = None
        if self._single(record, "date_range") != "all":
            try:
                if self._single(record, "since"):
                    since = _parse_time(self._single(record, "since") or "")
                if self._single(record, "until"):
                    until = _parse_time(self._single(record, "until") or "")
            except ValueError:
                raise _ApiError(400, _error("Invalid 'since' or 'until' Parameter Values", 2004)) from None

        selected = []
        for inc in self._incidents.values():
            if incident_key and inc.incident_key != incident_key:
                continue
            if statuses and inc.status not in statuses:
                continue
            if urgencies and inc.urgency not in urgencies:
                continue
            if service_ids and inc.service_id not in service_ids:
                continue
            if user_ids and not user_ids & {uid for _, uid in inc.assignments}:
                continue
            if since and inc.created_at < since:
                continue
            if until and inc.created_at >= until:
                continue
            selected.append(inc)
        selected.sort(key=lambda i: i.number)
        for spec in reversed((self._single(record, "sort_by") or "").split(",")):
            if not spec:
                continue
            field_name, _, direction = spec.partition(":")
            keys: dict[str, Callable[[_Incident], Any]] = {
                "incident_number": lambda i: i.number,
                "created_at": lambda i: i.created_at,
                "resolved_at": lambda i: i.resolved_at or datetime.max.replace(tzinfo=UTC),
                "urgency": lambda i: i.urgency,
            }
            if field_name not in keys:
                raise _ApiError(400, invalid_input(f"Invalid sort_by field {field_name}"))
            selected.sort(key=keys[field_name], reverse=direction.lower() == "desc")

        page = selected[offset : offset + limit]
        total = len(selected) if self._single(record, "total") == "true" else None
        return 200, {
            "incidents": [self._render_incident(inc) for inc in page],
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(selected),
            "total": total,
        }

    def _get_incident(self, record: RecordedRequest, id: str) -> tuple[int, Any]:
        return 200, {"incident": self._render_incident(self._incident_or_404(id))}

    def _update_incident(self, record: RecordedRequest, id: str) -> tuple[int, Any]:
        user_id = self._requester(record)
        incident = self._incident_or_404(id)
        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("incident"), dict):
            raise _ApiError(400, invalid_input("Incident must be provided"))
        data = body["incident"]
        if data.get("type") not in ("incident", "incident_reference"):
            raise _ApiError(400, invalid_input("Type must be incident or incident_reference"))
        status = data.get("status")
        if status is not None and status not in STATUSES:
            raise _ApiError(400, invalid_input("Status must be one of triggered, acknowledged, resolved"))
        urgency = data.get("urgency")
        if urgency is not None and urgency not in URGENCIES:
            raise _ApiError(400, invalid_input("Urgency must be one of high, low"))
        title = data.get("title")
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise _ApiError(400, invalid_input("Title cannot be empty."))
        priority_id = self._resolve_priority(data["priority"]) if "priority" in data else incident.priority_id
        escalation_policy = data.get("escalation_policy")
        if escalation_policy is not None:
            ep_id = escalation_policy.get("id") if isinstance(escalation_policy, dict) else None
            if ep_id not in self.escalation_policies:
                raise _ApiError(400, invalid_input("Escalation policy not found"))
            incident.escalation_policy_id = str(ep_id)

        now = self._now()
        if title is not None:
            incident.title = title
        if urgency is not None:
            incident.urgency = urgency
        incident.priority_id = priority_id
        if status is not None and status != incident.status:
            reopening = incident.status == "resolved"
            incident.status = status
            incident.last_status_change_at = now
            incident.last_status_change_by = user_id
            if status == "acknowledged":
                incident.resolved_at = None
                if reopening:
                    incident.assignments = [(now, user_id)]
                    self._log(incident, "reopen_log_entry", user_id)
                incident.acknowledgements.append((now, user_id))
                self._log(incident, "acknowledge_log_entry", user_id)
            elif status == "resolved":
                incident.resolved_at = now
                incident.assignments = []
                incident.acknowledgements = []
                self._log(incident, "resolve_log_entry", user_id, note=data.get("resolution"))
            else:  # triggered: reopen or unacknowledge, back to the escalation policy
                incident.resolved_at = None
                incident.acknowledgements = []
                on_call = self.escalation_policies[incident.escalation_policy_id]["on_call_user_id"]
                incident.assignments = [(now, on_call)]
                self._log(incident, "reopen_log_entry" if reopening else "unacknowledge_log_entry", user_id)
        elif status == "acknowledged" and all(uid != user_id for _, uid in incident.acknowledgements):
            incident.acknowledgements.append((now, user_id))
            self._log(incident, "acknowledge_log_entry", user_id)
        incident.updated_at = now
        return 200, {"incident": self._render_incident(incident)}

    def _create_note(self, record: RecordedRequest, id: str) -> tuple[int, Any]:
        user_id = self._requester(record)
        incident = self._incident_or_404(id)
        body = record.body
        note = body.get("note") if isinstance(body, dict) else None
        content = note.get("content") if isinstance(note, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise _ApiError(400, invalid_input("Content cannot be empty."))
        now = _ts(self._now())
        created = {
            "id": self._next_id("PN"),
            "user": self._user_ref(user_id),
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": now,
            "updated_at": now,
        }
        self._notes.setdefault(incident.id, []).append(created)
        self._log(incident, "annotate_log_entry", user_id, note=content)
        return 200, {"note": created}

    def _list_notes(self, record: RecordedRequest, id: str) -> tuple[int, Any]:
        incident = self._incident_or_404(id)
        return 200, {"notes": list(self._notes.get(incident.id, []))}

    def _create_status_update(self, record: RecordedRequest, id: str) -> tuple[int, Any]:
        user_id = self._requester(record)
        incident = self._incident_or_404(id)
        body = record.body
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message.strip():
            raise _ApiError(400, invalid_input("Message cannot be empty."))
        update: dict[str, Any] = {
            "id": self._next_id("PSU"),
            "message": message,
            "sender": self._user_ref(user_id),
            "created_at": _ts(self._now()),
        }
        assert isinstance(body, dict)
        for optional in ("subject", "html_message"):
            if isinstance(body.get(optional), str):
                update[optional] = body[optional]
        self._status_updates.setdefault(incident.id, []).append(update)
        self._log(incident, "status_update_log_entry", user_id, note=message)
        return 200, {"status_update": update}

    def _list_priorities(self, record: RecordedRequest) -> tuple[int, Any]:
        limit = min(self._int_param(record, "limit", 25), 100) or 25
        offset = self._int_param(record, "offset", 0)
        everything = self.priorities if self.priorities_enabled else []
        page = everything[offset : offset + limit]
        return 200, {
            "priorities": [
                {
                    "id": p["id"],
                    "type": "priority",
                    "summary": p["name"],
                    "self": f"{self.base_url}/priorities/{p['id']}",
                    "html_url": None,
                    "name": p["name"],
                    "description": p["description"],
                }
                for p in page
            ],
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(everything),
            "total": len(everything) if self._single(record, "total") == "true" else None,
        }


@contextlib.contextmanager
def running_fake(tls_dir: str | Path, **kw: Any) -> Iterator[PagerDutyFake]:
    """``with running_fake(tmp_path) as pd: ...`` — TLS material in ``tls_dir``, started, stopped."""
    fake = PagerDutyFake(tls_dir=tls_dir, **kw)
    with fake:
        yield fake
