"""Writing audit records: ``started`` before the first change, the outcome at the end.

An audit record is never lost silently: when the state store cannot take it (disk full,
database down), it is appended to a spool file next to the local state and printed on
stderr as one JSON line; the next successful write moves spooled records into the store.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from opsctl import tracing
from opsctl.errors import ExitCode

if TYPE_CHECKING:
    from pathlib import Path

    from opsctl.context import Context
    from opsctl.state.base import AuditRecord

log = logging.getLogger("opsctl.audit")

SPOOL = "audit-spool.jsonl"

OUTCOMES = {
    ExitCode.OK: "ok",
    ExitCode.FAILED: "failed",
    ExitCode.USAGE: "usage",
    ExitCode.REFUSED: "refused",
    ExitCode.UPSTREAM: "upstream",
    ExitCode.INTERRUPTED: "interrupted",
}


def current_user() -> str:
    """Who runs this: the login name (``uid N`` where there is none, as in some containers)."""
    from opsctl.state.locks import current_user as login_name

    return login_name()


def outcome_of(exc: BaseException) -> tuple[str, ExitCode, str]:
    """The audit outcome, exit code and message for an exception that ended a command.

    (A prompt's Ctrl-C reaches here as the KeyboardInterrupt it is: ``Context.confirm`` unwraps
    click's ``Abort``.)"""
    from opsctl.errors import OpsctlError
    from opsctl.operations.model import Interrupted, RunError

    if isinstance(exc, KeyboardInterrupt):
        name = exc.signame if isinstance(exc, Interrupted) else "SIGINT"
        return "interrupted", ExitCode.INTERRUPTED, f"interrupted ({name})"
    if isinstance(exc, RunError):
        return "interrupted" if exc.exit_code == ExitCode.INTERRUPTED else "failed", exc.exit_code, exc.message
    if isinstance(exc, OpsctlError):
        return OUTCOMES.get(exc.exit_code, "error"), exc.exit_code, exc.message
    return "error", ExitCode.FAILED, f"internal error: {type(exc).__name__}"


def write(
    ctx: Context,
    *,
    command: str,
    service: str | None,
    env: str | None,
    args: dict[str, Any],
    outcome: str,
    code: ExitCode | int,
    message: str,
    run_id: str | None = None,
) -> None:
    """Write one audit record (secrets masked); fall back to the spool and stderr on failure."""
    from opsctl.redact import redact
    from opsctl.state.base import AuditRecord

    record = AuditRecord(
        at=ctx.clock(),
        user=current_user(),
        host=socket.gethostname(),
        command=command,
        service=service,
        env=env,
        args=clean_args(args),
        outcome=outcome,
        dry_run=ctx.dry_run,
        trace_id=tracing.trace_id(),
        exit_code=int(code),
        message=redact(message),
        run_id=run_id,
    )
    try:
        ctx.store.add_audit(record)
    except Exception as exc:  # the audit must never hide the real outcome, nor vanish
        _spool(ctx, record, exc)
    else:
        _flush_spool(ctx)
    log.info("audit %s %s outcome=%s dry_run=%s run=%s", command, service or "-", outcome, ctx.dry_run, run_id)


def clean_args(params: dict[str, Any]) -> dict[str, Any]:
    """Command arguments as they go into the audit log: secrets masked, None dropped."""
    from opsctl.output import to_plain
    from opsctl.redact import redact_data

    cleaned = {k: v for k, v in params.items() if v is not None and k not in ("ctx",)}
    return dict(_bounded(redact_data(to_plain(cleaned))))


ARG_LIMIT = 2000  # characters of one argument kept in the audit log


def _bounded(value: Any) -> Any:
    """Strings made valid UTF-8 (an invalid title is still audited) and cut to a sane length."""
    if isinstance(value, dict):
        return {k: _bounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v) for v in value]
    if isinstance(value, str):
        text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return text if len(text) <= ARG_LIMIT else f"{text[:ARG_LIMIT]}… ({len(text):,} characters)"
    return value


def _encode(record: AuditRecord) -> str:
    from opsctl.output import to_plain

    data = to_plain({k: getattr(record, k) for k in record.__dataclass_fields__ if k != "id"})
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def _spool_path(ctx: Context) -> Path:
    from opsctl.state import default_state_dir

    return (ctx.state_dir or default_state_dir()) / SPOOL


def _spool(ctx: Context, record: AuditRecord, exc: Exception) -> None:
    from opsctl.redact import redact

    line = _encode(record)
    reason = redact(getattr(exc, "message", None) or str(exc) or type(exc).__name__)
    kept = ""
    try:
        from opsctl.fsutil import ensure_private_dir

        path = _spool_path(ctx)
        ensure_private_dir(path.parent)  # a PostgreSQL user may have no local state dir yet
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        kept = f"; kept in {path} until the store takes it"
    except OSError:
        kept = "; it could not be spooled either"
    ctx.output.error(f"could not write the audit record to the state store ({reason}){kept}")
    ctx.output.error(f"audit record: {line}")


def _flush_spool(ctx: Context) -> None:
    from opsctl.state.base import AuditRecord
    from opsctl.timeutil import parse_instant

    path = _spool_path(ctx)
    try:
        if not path.is_file():
            return
        moving = path.with_name(f"{SPOOL}.{os.getpid()}")
        os.replace(path, moving)  # one process takes the spool
    except OSError:
        return
    try:
        for line in moving.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
                data["at"] = parse_instant(data["at"], now=ctx.clock())
                ctx.store.add_audit(AuditRecord(**data))
            except (ValueError, TypeError, KeyError):
                log.warning("dropping an unreadable spooled audit line from %s", moving)
        moving.unlink()
    except Exception as exc:  # put it back for the next time
        log.warning("could not move spooled audit records into the store: %s", exc)
        try:
            os.replace(moving, path)
        except OSError:
            pass
