"""SQL shared by the SQLite and PostgreSQL stores: JSON encoding and the filtered SELECTs.

``ph`` is the driver's placeholder: ``?`` for sqlite3, ``%s`` for psycopg.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any


def utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, default=_json_default, separators=(",", ":"))


def audit_select(ph: str, *, service: str | None, since: Any, limit: int | None) -> tuple[str, list[Any]]:
    """Newest first (callers reverse), filtered by service and start time."""
    where, params = ["1 = 1"], []
    if service is not None:
        where.append(f"service = {ph}")
        params.append(service)
    if since is not None:
        where.append(f"at >= {ph}")
        params.append(since)
    query = f"SELECT * FROM audit WHERE {' AND '.join(where)} ORDER BY at DESC, id DESC"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return query, params


def records_select(
    ph: str,
    kind: str,
    *,
    service: str | None,
    key: str | None,
    statuses: list[str] | None,
    limit: int | None,
    id_order: str = "id",
) -> tuple[str, list[Any]] | None:
    """Oldest first; ``None`` when the filter can match nothing (an empty status list)."""
    where, params = [f"kind = {ph}"], [kind]
    for column, value in (("service", service), ("key", key)):
        if value is not None:
            where.append(f"{column} = {ph}")
            params.append(value)
    if statuses is not None:
        if not statuses:
            return None
        where.append(f"status IN ({', '.join(ph for _ in statuses)})")
        params.extend(statuses)
    query = f"SELECT * FROM records WHERE {' AND '.join(where)} ORDER BY created_at, {id_order}"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return query, params


RUN_COLUMNS = (
    "id", "kind", "service", "env", "state", "step", "step_index", "plan", "progress", "params", "data",
    "driver_user", "driver_host", "driver_pid", "token", "lock_key", "lease_seconds", "started_at",
    "heartbeat_at", "finished_at", "message",
)  # fmt: skip
RUN_JSON = ("plan", "progress", "params", "data")
# What a driver may change on its run (guarded by its token).
RUN_MUTABLE = ("state", "step", "step_index", "plan", "progress", "data", "heartbeat_at", "finished_at", "message")
# What a takeover replaces (guarded by the previous token).
RUN_DRIVER = ("driver_user", "driver_host", "driver_pid", "token", "lease_seconds", "heartbeat_at", "state", "lock_key")


def runs_select(
    ph: str, *, service: str | None, env: str | None, states: list[str] | None, limit: int | None
) -> tuple[str, list[Any]] | None:
    """Newest first; ``None`` when the filter can match nothing (an empty state list)."""
    where, params = ["1 = 1"], []
    for column, value in (("service", service), ("env", env)):
        if value is not None:
            where.append(f"{column} = {ph}")
            params.append(value)
    if states is not None:
        if not states:
            return None
        where.append(f"state IN ({', '.join(ph for _ in states)})")
        params.extend(states)
    query = f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY started_at DESC, id DESC"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return query, params


def takeover_where(ph: str) -> str:
    """The condition under which a takeover may replace a run's driver."""
    return (
        f"id = {ph} AND token = {ph} AND (state IN ('interrupted', 'failed', 'paused')"
        f" OR (state = 'running' AND heartbeat_at < {ph}))"
    )


AUDIT_COLUMNS = (
    "at", "username", "host", "command", "service", "env", "args", "outcome", "dry_run", "trace_id",
    "exit_code", "message", "run_id",
)  # fmt: skip


def audit_insert(ph: str, *, run_id: bool, json_cast: str = "") -> str:
    """The INSERT for an audit record; a store still at schema v1/v2 (tests, tooling) has no run_id."""
    columns = AUDIT_COLUMNS if run_id else AUDIT_COLUMNS[:-1]
    values = [f"{ph}{json_cast}" if c == "args" else ph for c in columns]
    return f"INSERT INTO audit ({', '.join(columns)}) VALUES ({', '.join(values)})"


def audit_values(record: Any, at: Any, dry_run: Any, *, run_id: bool) -> list[Any]:
    values = [
        at, record.user, record.host, record.command, record.service, record.env, dumps(record.args),
        record.outcome, dry_run, record.trace_id, record.exit_code, record.message,
    ]  # fmt: skip
    return [*values, record.run_id] if run_id else values


def run_values(run: Any, names: tuple[str, ...], instant: Any) -> list[Any]:
    """The run's values for ``names``: JSON columns encoded, instants through ``instant``."""
    values = []
    for name in names:
        value = getattr(run, name)
        if name in RUN_JSON:
            value = dumps(value)
        elif isinstance(value, datetime):
            value = instant(value)
        values.append(value)
    return values


def _assign(names: tuple[str, ...], ph: str, json_ph: str) -> str:
    return ", ".join(f"{n} = {json_ph if n in RUN_JSON else ph}" for n in names)


def run_insert(ph: str, json_ph: str) -> str:
    marks = ", ".join(json_ph if c in RUN_JSON else ph for c in RUN_COLUMNS)
    return f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({marks})"


def run_update(ph: str, json_ph: str) -> str:
    """Values: RUN_MUTABLE, then id and token."""
    return f"UPDATE runs SET {_assign(RUN_MUTABLE, ph, json_ph)} WHERE id = {ph} AND token = {ph}"


def run_heartbeat(ph: str, json_ph: str, *, progress: bool) -> str:
    """Values: heartbeat_at[, progress], id, token."""
    sets = f"heartbeat_at = {ph}" + (f", progress = {json_ph}" if progress else "")
    return f"UPDATE runs SET {sets} WHERE id = {ph} AND token = {ph} AND state = 'running'"


def run_takeover(ph: str, json_ph: str) -> str:
    """Values: RUN_DRIVER, then id, the expected token, stale-before."""
    return f"UPDATE runs SET {_assign(RUN_DRIVER, ph, json_ph)} WHERE {takeover_where(ph)}"
