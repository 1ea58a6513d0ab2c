"""An S3 endpoint over real TLS on loopback: moto's plain-HTTP server behind a small TLS terminator.

pgBackRest speaks S3 only over HTTPS, and moto's server only over HTTP, so the fixture ``s3_repo``
starts ``ThreadedMotoServer`` on a free port and :class:`TLSTerminator` on another: a threaded TCP
proxy that wraps every accepted connection with a server certificate for ``127.0.0.1``/``localhost``
(signed by the throwaway CA of :mod:`tests.fakes.tls`) and pipes the bytes both ways to moto.
It creates one bucket (region eu-west-1, credentials ``testing``) and writes the CA certificate
where the postgres user can read it. Teardown stops the terminator (closing every open connection)
and moto, and removes the files.

    def test_x(s3_repo: S3Repo) -> None:
        s3_repo.host, s3_repo.port, s3_repo.bucket, s3_repo.ca_file, ...
"""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes import tls as throwaway_tls

REGION = "eu-west-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
BUCKET = "opsctl-pgbackrest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TLSTerminator:
    """Accept TLS on 127.0.0.1:``port``, forward the plain bytes to 127.0.0.1:``upstream_port``.

    One accept thread, and a bounded pool of workers (one per connection, each driving both
    directions with ``select``, so an SSL socket is only ever used by one thread). Connections
    beyond ``max_connections`` wait in the pool's queue. :meth:`close` stops accepting, closes
    every open connection and joins the threads.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        upstream_port: int,
        *,
        port: int = 0,
        max_connections: int = 16,
        idle_timeout: float = 60,
    ) -> None:
        self.context = context
        self.upstream_port = upstream_port
        self.idle_timeout = idle_timeout
        self.listener = socket.create_server(("127.0.0.1", port), backlog=64)
        self.listener.settimeout(0.2)  # so that the accept loop sees close() (closing does not wake accept)
        self.port = int(self.listener.getsockname()[1])
        self.handshake_failures: list[str] = []
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_connections, thread_name_prefix="s3-tls")
        self._acceptor = threading.Thread(target=self._accept, name="s3-tls-accept", daemon=True)
        self._acceptor.start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stop.is_set():
                return False
            self._open.add(sock)
            return True

    def _forget(self, *socks: socket.socket | None) -> None:
        for sock in socks:
            if sock is None:
                continue
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            if not self._track(conn):
                conn.close()
                return
            try:
                self._pool.submit(self._serve, conn)
            except RuntimeError:  # the pool is shut down
                self._forget(conn)
                return

    def _serve(self, raw: socket.socket) -> None:
        tls: ssl.SSLSocket | None = None
        upstream: socket.socket | None = None
        try:
            raw.settimeout(10)
            # pgBackRest writes a request's headers and body separately: without NODELAY every request
            # waits out a delayed ACK (~40 ms a file, minutes for a backup of a thousand files)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                tls = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.handshake_failures.append(str(exc))
                return
            with self._lock:
                self._open.discard(raw)
            if not self._track(tls):
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            if not self._track(upstream):
                return
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls.settimeout(self.idle_timeout)
            upstream.settimeout(self.idle_timeout)
            self._pipe(tls, upstream)
        except OSError:
            pass
        finally:
            self._forget(raw, tls, upstream)

    def _pipe(self, tls: ssl.SSLSocket, upstream: socket.socket) -> None:
        while not self._stop.is_set():
            if tls.pending():
                readable = [tls]
            else:
                readable, _, _ = select.select([tls, upstream], [], [], 0.5)
            for sock in readable:
                other = upstream if sock is tls else tls
                try:
                    data = sock.recv(65536)
                except ssl.SSLWantReadError:
                    continue  # a record that carried no application data
                if not data:
                    if sock is upstream:
                        # moto (werkzeug) answers every request with "Connection: close" and hangs up:
                        # end the TLS session cleanly (close_notify), or OpenSSL 3 clients read
                        # "unexpected eof while reading"
                        with contextlib.suppress(OSError, ValueError):
                            tls.settimeout(2)
                            tls.unwrap()
                    return
                other.sendall(data)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            open_now = list(self._open)
            self._open.clear()
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class S3Repo:
    """Where the TLS-fronted S3 fake answers, and how to reach it."""

    host: str  # the TLS endpoint (what pgBackRest's repo1-s3-endpoint names)
    port: int  # the TLS port (repo1-storage-port)
    bucket: str
    region: str
    ca_file: Path  # the throwaway CA, readable by postgres
    access_key: str
    secret_key: str
    http_url: str  # moto itself, plain HTTP (for boto3 in the test process)
    terminator: TLSTerminator

    def client(self):  # a boto3 S3 client on moto's plain-HTTP port
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.http_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``."""
        found: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [obj["Key"] for obj in page.get("Contents", [])]
        return found


def _reset(http_url: str) -> None:
    """Forget every bucket moto holds (its ``/moto-api/reset`` endpoint)."""
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(f"{http_url}/moto-api/reset", method="POST"), timeout=10):
        pass


@pytest.fixture
def s3_repo() -> Iterator[S3Repo]:
    from moto.server import ThreadedMotoServer

    secret_dir = Path(tempfile.mkdtemp(prefix="opsctl-s3-tls-key-"))  # 0700: the server key stays root's
    public_dir = Path(tempfile.mkdtemp(prefix="opsctl-s3-tls-ca-"))
    public_dir.chmod(0o755)
    server: ThreadedMotoServer | None = None
    moto_port = _free_port()
    terminator: TLSTerminator | None = None
    try:
        with pytest.MonkeyPatch.context() as patch:
            # pgBackRest 2.45 matches the endpoint only against the certificate's DNS names (never an
            # IP address SAN): name 127.0.0.1 as a DNS name too
            patch.setattr(throwaway_tls, "SERVER_NAMES", (*throwaway_tls.SERVER_NAMES, "127.0.0.1"))
            material = throwaway_tls.make_tls_material(secret_dir)
        ca_file = public_dir / "ca.pem"
        shutil.copyfile(material.ca_path, ca_file)
        ca_file.chmod(0o644)

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        server.start()
        terminator = TLSTerminator(material.server_context(), moto_port)
        repo = S3Repo(
            host="127.0.0.1",
            port=terminator.port,
            bucket=BUCKET,
            region=REGION,
            ca_file=ca_file,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            http_url=f"http://127.0.0.1:{moto_port}",
            terminator=terminator,
        )
        _reset(repo.http_url)  # moto keeps its state per process, not per server
        repo.client().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield repo
    finally:
        if terminator is not None:
            terminator.close()
        if server is not None:
            with contextlib.suppress(OSError):
                _reset(f"http://127.0.0.1:{moto_port}")
            server.stop()
        for directory in (secret_dir, public_dir):
            shutil.rmtree(directory, ignore_errors=True)


__all__ = ["ACCESS_KEY", "BUCKET", "REGION", "SECRET_KEY", "S3Repo", "TLSTerminator", "s3_repo"]
