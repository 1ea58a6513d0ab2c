"""A held lock as a lease: acquired (or waited for), renewed with its heartbeats, and lost loudly.

``beat()`` renews the lock and then every heartbeat hook (a run's heartbeat in the state
store) as one unit: if the lock cannot be renewed — its lease expired while the process
was frozen, or someone broke it with ``opsctl unlock`` — or a hook says the run is no
longer ours (taken over), the lease is *lost*: ``lost`` is set, ``lost_reason`` says why,
and the ``on_lost`` callbacks run (the runner uses one to wake its sleeps).  A daemon
thread beats every ttl/3; the runner also beats at every step boundary, so a change is
never made on a lease that is already gone.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

from opsctl.state.base import LockInfo
from opsctl.state.locks import LockBackend, LockHeldError, current_user
from opsctl.timeutil import Clock, utcnow

log = logging.getLogger("opsctl.locks")

Hook = Callable[[datetime], bool]


class Lease:
    """A lease on ``key``; use as a context manager or call :meth:`acquire` / :meth:`release`."""

    def __init__(
        self,
        backend: LockBackend,
        key: str,
        *,
        command: str,
        ttl: timedelta,
        clock: Clock = utcnow,
        user: str | None = None,
        host: str | None = None,
        pid: int | None = None,
        interval: float | None = None,
        background: bool = True,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a lock ttl must be positive")
        self.backend, self.key, self.command, self.ttl, self.clock = backend, key, command, ttl, clock
        self.user = user or current_user()
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.token = secrets.token_hex(16)
        self.info: LockInfo | None = None
        self.lost = False
        self.lost_reason = ""
        self.interval = ttl.total_seconds() / 3 if interval is None else interval
        self._background = background
        self._hooks: list[tuple[str, Hook]] = []
        self._on_lost: list[Callable[[str], None]] = []
        self._deadline: datetime | None = None  # the lease runs out then unless renewed
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ taking it
    def _info(self) -> LockInfo:
        now = self.clock()
        return LockInfo(self.key, self.token, self.user, self.host, self.pid, self.command, now, now + self.ttl)

    def acquire(self) -> LockInfo:
        """Take the lock and start renewing it, or raise :class:`LockHeldError` naming the holder."""
        if self.info is not None:
            raise RuntimeError(f"{self.key} is already held by this lease")
        info = self._info()
        holder = self.backend.acquire(info)
        if holder is not None:
            raise LockHeldError(holder)
        self._held(info)
        return info

    def acquire_waiting(
        self,
        patience: timedelta,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        on_wait: Callable[[LockInfo], None] | None = None,
        poll: float = 0.2,
    ) -> LockInfo:
        """Like :meth:`acquire`, but wait up to ``patience`` for a held lock to be released.

        ``on_wait`` is told about each new holder we wait for (to say whom we wait for)."""
        deadline = monotonic() + patience.total_seconds()
        told: str | None = None
        while True:
            info = self._info()
            holder = self.backend.acquire(info)
            if holder is None:
                self._held(info)
                return info
            left = deadline - monotonic()
            if left <= 0:
                raise LockHeldError(holder)
            if on_wait is not None and holder.token != told:
                told = holder.token
                on_wait(holder)
            sleep(min(poll, left))

    def _held(self, info: LockInfo) -> None:
        self.info, self.lost, self.lost_reason = info, False, ""
        self._deadline = info.expires_at
        self._stop.clear()
        if self._background:
            self._thread = threading.Thread(target=self._loop, name=f"opsctl-lease:{self.key}", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ keeping it
    def on_beat(self, name: str, hook: Hook) -> None:
        """Run ``hook(now)`` after each renewal of the lock; False or an error past the lease loses it."""
        self._hooks.append((name, hook))

    def on_lost(self, callback: Callable[[str], None]) -> None:
        self._on_lost.append(callback)

    def beat(self) -> bool:
        """Renew the lock and the heartbeats now; False (and ``lost``) if the lease is gone."""
        with self._mutex:
            if self.lost or self.info is None:
                return not self.lost
            now = self.clock()
            try:
                renewed = self.backend.renew(self.key, self.token, self.ttl, now)
            except Exception as exc:  # a blip: keep going while the lease still runs
                if self._deadline is not None and now < self._deadline:
                    log.warning("could not renew the lock %s, retrying: %s", self.key, exc)
                    return True
                return self._lose(f"the lock {self.key} could not be renewed before its lease ran out ({exc})")
            if not renewed:
                return self._lose(f"the lock {self.key} was lost: its lease expired or it was broken")
            self._deadline = now + self.ttl
            for name, hook in self._hooks:
                try:
                    ok = hook(now)
                except Exception as exc:
                    log.warning("could not renew the %s heartbeat, retrying: %s", name, exc)
                    continue
                if not ok:
                    return self._lose(f"the {name} is no longer driven by this process (taken over or finished)")
            return True

    def _lose(self, reason: str) -> bool:
        self.lost, self.lost_reason = True, reason
        log.warning("lost the lock %s: %s; another opsctl may take it", self.key, reason)
        for callback in self._on_lost:
            try:
                callback(reason)
            except Exception:  # a callback must not keep the lease from being reported lost
                log.exception("on_lost callback failed")
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.beat():
                return

    # ------------------------------------------------------------ giving it back
    def release(self) -> None:
        """Stop renewing and give the lock back (only if still ours)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if self.info is None:
            return
        self.info = None
        if self.lost:
            return
        try:
            if not self.backend.release(self.key, self.token):
                log.warning("the lock %s was no longer ours when releasing it", self.key)
        except Exception as exc:  # never mask the command's own outcome; the lease will expire
            log.warning("could not release the lock %s (it expires by itself): %s", self.key, exc)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


hold = Lease
