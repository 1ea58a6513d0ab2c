"""Leased locks: one per (kind, service, env), held in the state store or in Redis.

A lock is a lease: it carries an owner ``token`` and an expiry.  While held, a
daemon thread renews it every ttl/3; a crashed holder stops renewing, so its
lock frees itself after ``ttl``.  Only the token's owner may renew or release.
"""

from __future__ import annotations

import builtins
import getpass
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from opsctl import redact as redaction
from opsctl.errors import RefusedError, UpstreamError, UsageError
from opsctl.state.base import LockInfo, Store
from opsctl.timeutil import isoformat

log = logging.getLogger("opsctl.locks")


def lock_key(kind: str, service: str, env: str) -> str:
    return f"{kind}/{service}@{env}"


class LockBackend(Protocol):
    def acquire(self, info: LockInfo) -> LockInfo | None:
        """Take the lock; None on success, else the live holder."""

    def renew(self, key: str, token: str, ttl: timedelta, now: datetime) -> bool: ...

    def release(self, key: str, token: str) -> bool: ...

    def holder(self, key: str, now: datetime) -> LockInfo | None: ...

    def list(self, now: datetime) -> builtins.list[LockInfo]: ...

    def break_(self, key: str) -> LockInfo | None: ...


class StoreLockBackend:
    """Locks in the state store's ``locks`` table (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def acquire(self, info: LockInfo) -> LockInfo | None:
        return self.store.acquire_lock(info)

    def renew(self, key: str, token: str, ttl: timedelta, now: datetime) -> bool:
        return self.store.renew_lock(key, token, ttl, now)

    def release(self, key: str, token: str) -> bool:
        return self.store.release_lock(key, token)

    def holder(self, key: str, now: datetime) -> LockInfo | None:
        return self.store.get_lock(key, now)

    def list(self, now: datetime) -> builtins.list[LockInfo]:
        return self.store.list_locks(now)

    def break_(self, key: str) -> LockInfo | None:
        return self.store.break_lock(key)


# KEYS[1] = lock key; ARGV[1] = token, ARGV[2] = new expires_at (ISO), ARGV[3] = ttl in ms
_RENEW = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, info = pcall(cjson.decode, raw)
if not ok or type(info) ~= 'table' or info['token'] ~= ARGV[1] then return 0 end
info['expires_at'] = ARGV[2]
redis.call('SET', KEYS[1], cjson.encode(info), 'PX', ARGV[3])
return 1
"""
# KEYS[1] = lock key; ARGV[1] = token
_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, info = pcall(cjson.decode, raw)
if not ok or type(info) ~= 'table' or info['token'] ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


def _encode(info: LockInfo) -> str:
    return json.dumps(
        {
            "key": info.key, "token": info.token, "user": info.user, "host": info.host, "pid": info.pid,
            "command": info.command, "acquired_at": info.acquired_at.astimezone(UTC).isoformat(),
            "expires_at": info.expires_at.astimezone(UTC).isoformat(),
        }
    )  # fmt: skip


def _instant(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _decode(key: str, raw: str) -> LockInfo:
    try:
        d = json.loads(raw)
        return LockInfo(
            key=key, token=str(d["token"]), user=str(d["user"]), host=str(d["host"]), pid=int(d["pid"]),
            command=str(d["command"]), acquired_at=_instant(d["acquired_at"]), expires_at=_instant(d["expires_at"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):  # not ours, or damaged: still someone holds it
        epoch = datetime.fromtimestamp(0, UTC)
        return LockInfo(key, "", "?", "?", 0, "(unreadable lock value)", epoch, epoch)


def _ms(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds() * 1000))


class RedisLockBackend:
    """Locks as Redis keys ``<prefix><key>`` whose value is the holder's JSON; expiry is the key's TTL."""

    def __init__(self, url: str, prefix: str = "opsctl:lock:", *, timeout: float = 5.0) -> None:
        import redis

        password = urlsplit(url).password if "://" in url else None
        if password:
            redaction.register(password)
            redaction.register(unquote(password))
        self.location = redaction.redact(url)
        self.prefix = prefix
        try:
            self._client: Any = redis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout, decode_responses=True
            )
        except ValueError as exc:
            raise UsageError(f"bad Redis URL {self.location}: {redaction.redact(str(exc))}") from exc
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise UpstreamError(
                f"lock server unreachable at {self.location}: {redaction.redact(str(exc))}",
                hint="check that Redis is running and reachable, and the lock URL in the config",
            ) from exc
        except redis.RedisError as exc:
            raise UpstreamError(f"lock server at {self.location} failed: {redaction.redact(str(exc))}") from exc

    def acquire(self, info: LockInfo) -> LockInfo | None:
        name = self.prefix + info.key
        with self._guard():
            for _ in range(5):
                if self._client.set(name, _encode(info), nx=True, px=_ms(info.expires_at - info.acquired_at)):
                    return None
                raw = self._client.get(name)
                if raw is None:  # expired or released in between: try again
                    continue
                current = _decode(info.key, raw)
                if current.token == info.token and self.renew(
                    info.key, info.token, info.expires_at - info.acquired_at, info.acquired_at
                ):
                    return None
                return current
        raise UpstreamError(f"could not acquire {info.key} at {self.location}: the key kept changing")

    def renew(self, key: str, token: str, ttl: timedelta, now: datetime) -> bool:
        expires = (now + ttl).astimezone(UTC).isoformat()
        with self._guard():
            return bool(self._renew(keys=[self.prefix + key], args=[token, expires, _ms(ttl)]))

    def release(self, key: str, token: str) -> bool:
        with self._guard():
            return bool(self._release(keys=[self.prefix + key], args=[token]))

    def holder(self, key: str, now: datetime) -> LockInfo | None:
        """The holder; ``now`` is unused, Redis expires keys itself."""
        with self._guard():
            raw = self._client.get(self.prefix + key)
        return None if raw is None else _decode(key, raw)

    def list(self, now: datetime) -> builtins.list[LockInfo]:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "*"
        with self._guard():
            names = sorted(set(self._client.scan_iter(match=pattern, count=500)))
            values = self._client.mget(names) if names else []
        return [_decode(n[len(self.prefix) :], v) for n, v in zip(names, values, strict=True) if v is not None]

    def break_(self, key: str) -> LockInfo | None:
        with self._guard():
            raw = self._client.getdel(self.prefix + key)
        return None if raw is None else _decode(key, raw)

    def close(self) -> None:
        self._client.close()


def unlock_command(key: str) -> str:
    """The command that breaks the lock ``key`` (as made by :func:`lock_key`)."""
    kind, _, rest = key.partition("/")
    service, _, env = rest.rpartition("@")
    return f"opsctl --env {env} unlock {kind} {service}" if service and env else f"opsctl unlock {key}"


class LockHeldError(RefusedError):
    """Someone else holds the lock (exit 3); ``holder`` says who."""

    def __init__(self, holder: LockInfo) -> None:
        super().__init__(
            f"{holder.key} is locked by {holder.user}@{holder.host} (pid {holder.pid}, running '{holder.command}')"
            f" since {isoformat(holder.acquired_at)}",
            hint=f"wait for it to finish, or if that process is gone, run '{unlock_command(holder.key)}'"
            f" or wait until the lease expires at {isoformat(holder.expires_at)}",
        )
        self.holder = holder


def current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (containers)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def __getattr__(name: str) -> Any:
    """``hold``/``Lease`` live in :mod:`opsctl.state.lease` (which imports this module)."""
    if name in ("hold", "Lease", "Lock"):
        from opsctl.state import lease

        return lease.Lease
    raise AttributeError(name)
