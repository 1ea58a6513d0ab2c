"""A small fake of Vault's KV version 2 read API, served over real HTTP on 127.0.0.1.

It speaks enough of the protocol for clients that read secrets:
``GET /v1/{mount}/data/{path}`` with an ``X-Vault-Token`` header answers in the real
response shape, 403 ``{"errors": ["permission denied"]}`` for a missing or wrong token,
404 ``{"errors": []}`` for unknown paths (with the metadata when the latest version is
deleted, as Vault does), and 503 for as many requests as :meth:`FakeVault.fail_next` asks.
Every request is recorded, headers included.

    with FakeVault(token="t") as vault:
        vault.put("secret/auth/db", {"dsn": "postgresql://..."})
        ... GET f"{vault.url}/v1/secret/data/auth/db"
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class _Secret:
    versions: list[dict[str, Any]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: bool = False


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeVault:
    def __init__(self, token: str = "fake-root-token", mounts: tuple[str, ...] = ("secret",)) -> None:
        self.token = token
        self.mounts = set(mounts)
        self.requests: list[RecordedRequest] = []
        self._secrets: dict[tuple[str, str], _Secret] = {}
        self._failures = 0
        self._failure_status = 503
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- control

    def put(self, path: str, data: dict[str, Any]) -> int:
        """Write a new version of ``MOUNT/PATH``; returns the version number."""
        mount, _, rest = path.strip("/").partition("/")
        with self._lock:
            self.mounts.add(mount)
            secret = self._secrets.setdefault((mount, rest), _Secret())
            secret.versions.append(dict(data))
            secret.created.append(_now())
            secret.deleted = False
            return len(secret.versions)

    def delete(self, path: str) -> None:
        """Soft-delete the latest version, like ``vault kv delete``."""
        mount, _, rest = path.strip("/").partition("/")
        with self._lock:
            self._secrets[(mount, rest)].deleted = True

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests with ``status`` (``{"errors": [...]}``)."""
        with self._lock:
            self._failures, self._failure_status = count, status

    def reset(self) -> None:
        with self._lock:
            self._secrets.clear()
            self.requests.clear()
            self._failures = 0

    # ------------------------------------------------------------- server

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeVault is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeVault:
        vault = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = vault._answer("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-vault", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- protocol

    def _answer(self, method: str, raw_path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(RecordedRequest(method, raw_path, headers))
            if self._failures > 0:
                self._failures -= 1
                return self._failure_status, {"errors": ["Vault is sealed"]}
            if headers.get("x-vault-token") != self.token:
                return 403, {"errors": ["permission denied"]}
            path = raw_path.split("?", 1)[0]
            parts = path.strip("/").split("/")
            if len(parts) < 4 or parts[0] != "v1" or parts[2] != "data" or parts[1] not in self.mounts:
                return 404, {"errors": []}
            key = (unquote(parts[1]), "/".join(unquote(p) for p in parts[3:]))
            secret = self._secrets.get(key)
            if secret is None:
                return 404, {"errors": []}
            version = len(secret.versions)
            metadata = {
                "created_time": secret.created[-1],
                "custom_metadata": None,
                "deletion_time": _now() if secret.deleted else "",
                "destroyed": False,
                "version": version,
            }
            if secret.deleted:
                return 404, {"data": {"data": None, "metadata": metadata}}
            return 200, {
                "request_id": str(uuid.uuid4()),
                "lease_id": "",
                "renewable": False,
                "lease_duration": 0,
                "data": {"data": dict(secret.versions[-1]), "metadata": metadata},
                "wrap_info": None,
                "warnings": None,
                "auth": None,
                "mount_type": "kv",
            }
