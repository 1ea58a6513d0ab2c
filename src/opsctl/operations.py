"""The rules every mutating command runs under: confirm, lock, audit.

    with mutation(ctx, "incident declare", service=svc, args=params, lock="incident") as op:
        ... do the work; op.note("…") adds to the audit message ...

Dry runs skip the confirmation and the lock (but warn if the lock is held)
and are audited, marked as such.  The audit record is written whatever the
outcome: ok, failed, refused, usage, upstream, interrupted or error.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsctl import tracing
from opsctl.errors import ExitCode, OpsctlError

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.settings import Service

log = logging.getLogger("opsctl.audit")

_OUTCOMES = {
    ExitCode.OK: "ok",
    ExitCode.FAILED: "failed",
    ExitCode.USAGE: "usage",
    ExitCode.REFUSED: "refused",
    ExitCode.UPSTREAM: "upstream",
    ExitCode.INTERRUPTED: "interrupted",
}


@dataclass
class Operation:
    command: str
    service: str | None
    env: str
    dry_run: bool
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)


def current_user() -> str:
    """Who runs this: the login name (``uid N`` where there is none, as in some containers)."""
    from opsctl.state.locks import current_user as login_name

    return login_name()


@contextmanager
def mutation(
    ctx: Context,
    command: str,
    *,
    service: Service | None,
    args: dict[str, Any],
    lock: str | None = None,
    confirm: str | None = None,
    env: str | None = None,
) -> Iterator[Operation]:
    from opsctl.context import audit_args

    env = env or ctx.env
    op = Operation(command, service.name if service else None, env, ctx.dry_run)
    code, message = ExitCode.OK, ""
    try:
        if confirm:
            ctx.confirm(confirm, service=service)
        if lock is None:
            yield op
        else:
            from opsctl.state.locks import hold, lock_key

            key = lock_key(lock, service.name if service else "-", env)
            if ctx.dry_run:
                holder = ctx.locks.holder(key, ctx.clock())
                if holder is not None:
                    ctx.output.warn(
                        f"{key} is locked by {holder.user}@{holder.host} (pid {holder.pid}); a real run would be refused"
                    )
                yield op
            else:
                with hold(ctx.locks, key, command=command, ttl=ctx.settings.policy.lock_ttl, clock=ctx.clock):
                    yield op
    except OpsctlError as exc:
        code, message = exc.exit_code, exc.message
        raise
    except KeyboardInterrupt:
        code, message = ExitCode.INTERRUPTED, "interrupted"
        raise
    except BaseException as exc:
        code, message = ExitCode.FAILED, f"internal error: {type(exc).__name__}"
        raise
    finally:
        _audit(ctx, op, args, audit_args, code, message)


def _audit(ctx: Context, op: Operation, args: dict[str, Any], clean: Any, code: ExitCode, message: str) -> None:
    from opsctl.state.base import AuditRecord

    outcome = "error" if message.startswith("internal error") else _OUTCOMES.get(code, "error")
    from opsctl.redact import redact

    text = redact("; ".join([*op.notes, message] if message else op.notes))
    record = AuditRecord(
        at=ctx.clock(),
        user=current_user(),
        host=socket.gethostname(),
        command=op.command,
        service=op.service,
        env=op.env,
        args=clean(args),
        outcome=outcome,
        dry_run=op.dry_run,
        trace_id=tracing.trace_id(),
        exit_code=int(code),
        message=text,
    )
    try:
        ctx.store.add_audit(record)
    except Exception as exc:  # the audit must never hide the real outcome
        ctx.output.warn(f"could not write the audit record: {exc}")
    log.info("audit %s %s outcome=%s dry_run=%s", op.command, op.service or "-", outcome, op.dry_run)
