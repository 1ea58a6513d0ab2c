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
