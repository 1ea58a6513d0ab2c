"""Redis for the cache and rate-limit commands: one node or a Redis Cluster, with opsctl's own
bounded retry (redis-py's default of 10 retries with backoff turned a dead node into a 15 s hang)
and every failure as one line naming the address (exit 4).

A cluster is walked node by node: :meth:`Redis.masters` gives a plain client per primary, and
keys scanned on a node are read and changed with that node's own pipeline (no cross-slot
commands)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from opsctl.errors import UpstreamError

TIMEOUT = 5.0


def address(url: str) -> str:
    """host:port/db of a redis URL, without credentials (for messages)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 6379
    except ValueError:
        return "redis (unparsable URL)"
    db = (parts.path or "/0").lstrip("/") or "0"
    return f"{host}:{port}/{db}"


@contextmanager
def redis_errors(where: str, what: str = "") -> Iterator[None]:
    import redis

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise UpstreamError(f"Redis at {where} is unreachable{(' (' + what + ')') if what else ''}: "
                            f"{_line(exc)}", "check the redis_url and that the server is up") from None  # fmt: skip
    except redis.RedisError as exc:
        raise UpstreamError(f"Redis at {where}{(' ' + what) if what else ''}: {_line(exc)}") from None


def _line(exc: BaseException) -> str:
    from opsctl.output import printable
    from opsctl.redact import redact

    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return printable(redact(text))[:300]


def _options() -> dict[str, Any]:
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return {
        "socket_timeout": TIMEOUT,
        "socket_connect_timeout": TIMEOUT,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        "decode_responses": False,
    }


class Redis:
    """A connection to one node or a cluster (``cluster=None``: the server says which)."""

    def __init__(self, url: str, *, cluster: bool | None = None) -> None:
        self.url, self.where = url, address(url)
        self._cluster_flag = cluster
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import redis
            from redis.cluster import RedisCluster

            with redis_errors(self.where, "connecting"):
                cluster = self._cluster_flag
                if cluster is None:
                    probe = redis.Redis.from_url(self.url, **_options())
                    try:
                        info = probe.info("cluster")
                        cluster = bool(info.get("cluster_enabled"))
                    finally:
                        probe.close()
                if cluster:
                    self._client = RedisCluster.from_url(
                        self.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                        retry=_options()["retry"], cluster_error_retry_attempts=1,
                    )  # fmt: skip
                else:
                    self._client = redis.Redis.from_url(self.url, **_options())
                    self._client.ping()
        return self._client

    @property
    def is_cluster(self) -> bool:
        from redis.cluster import RedisCluster

        return isinstance(self.client, RedisCluster)

    def masters(self) -> list[tuple[str, Any]]:
        """``(host:port, plain client)`` for every primary (one for a single node)."""
        if not self.is_cluster:
            return [(self.where, self.client)]
        with redis_errors(self.where, "listing the cluster's primaries"):
            nodes = self.client.get_primaries()
            return [(f"{n.host}:{n.port}", self.client.get_redis_connection(n)) for n in nodes]

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


def scan(client: Any, match: str, *, count: int = 1000) -> Iterator[list[bytes]]:
    """The keys matching ``match`` on this node, in SCAN batches (never KEYS)."""
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor=cursor, match=match, count=count)
        if keys:
            yield list(keys)
        if int(cursor) == 0:
            return


def escape_glob(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
