"""Looking at locks and breaking a stale one (``opsctl locks``, ``opsctl unlock``).

Breaking a lock is refused while its holder may still be working: a holder on this host
whose process is alive (and is the same process that took the lock), or a holder on another
host whose lease is still current — unless ``--force``.  Breaking is a run like every other
change: confirmed, audited, and recorded.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsctl.errors import RefusedError
from opsctl.operations.model import Operation, Step
from opsctl.operations.runner import execute
from opsctl.timeutil import isoformat

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.operations.run import Run
    from opsctl.state.base import LockInfo


def lock_view(info: LockInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "user": info.user,
        "host": info.host,
        "pid": info.pid,
        "command": info.command,
        "acquired_at": info.acquired_at,
        "expires_at": info.expires_at,
    }


def held_locks(ctx: Context) -> list[dict[str, Any]]:
    """The live locks; only the chosen environment's when ``--env`` is given."""
    suffix = f"@{ctx.env}" if ctx.env_name is not None else None
    return [lock_view(i) for i in ctx.locks.list(ctx.clock()) if suffix is None or i.key.endswith(suffix)]


def process_alive(pid: int, since: datetime) -> bool:
    """Whether ``pid`` on this host is alive and is the process that took a lock at ``since``
    (a process started after that is a reused pid: the holder is gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = _start_time(pid)
    return started is None or started <= since.timestamp() + 1.0


def _start_time(pid: int) -> float | None:
    """The process's start as a Unix time, from /proc (None where /proc is not there)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/stat", encoding="ascii") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _refusal(key: str, holder: LockInfo, now: datetime) -> RefusedError | None:
    here = socket.gethostname()
    who = f"{holder.user}@{holder.host} (pid {holder.pid}, running '{holder.command}')"
    if holder.host == here:
        if process_alive(holder.pid, holder.acquired_at):
            return RefusedError(
                f"{key} is held by {who}, which is still running on this host",
                "wait for it, or stop it first; --force breaks the lock anyway",
            )
        return None
    if holder.expires_at > now:
        return RefusedError(
            f"{key} is held by {who} on another host; its lease is current until {isoformat(holder.expires_at)}",
            "opsctl cannot tell from here whether it is alive: wait for the lease, or use --force when you know it is gone",
        )
    return None


def break_lock(ctx: Context, kind: str, service_name: str, *, force: bool = False) -> dict[str, Any]:
    """Break the lock of ``kind`` on a service: refused while the holder may be alive (unless
    ``force``), always confirmed, audited whatever happens."""
    from opsctl.state.locks import lock_key

    service = ctx.service(service_name)
    env = ctx.env
    key = lock_key(kind, service.name, env)
    seen: dict[str, LockInfo] = {}

    def plan(run: Run) -> list[Step]:
        now = ctx.clock()
        holder = ctx.locks.holder(key, now)
        if holder is None:
            raise RefusedError(f"{key} is not locked", "nothing to do")
        refusal = None if force else _refusal(key, holder, now)
        if refusal is not None:
            raise refusal
        ctx.confirm(
            f"break {key} held by {holder.user}@{holder.host} (pid {holder.pid})"
            f" since {holder.acquired_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
            always=True,
        )
        seen["holder"] = holder
        run.note(f"broke the lock held by {holder.user}@{holder.host} pid {holder.pid}")
        return [
            Step(
                "break",
                f"delete the lock {key}",
                target=f"lock store ({ctx.settings.state.locks})",
                detail=lock_view(holder),
                apply=lambda r: ctx.locks.break_(key) is not None,
            )
        ]

    params = {"kind": kind, "service": service.name, "force": force or None}
    result = execute(ctx, Operation("unlock", service, params, env=env), plan)
    holder = seen.get("holder")
    return {
        "key": key,
        "broken": bool(result.results.get("break")),
        "holder": lock_view(holder) if holder is not None else None,
        "dry_run": ctx.dry_run,
        "run_id": result.run_id,
        "plan": result.plan if ctx.dry_run else None,
    }
