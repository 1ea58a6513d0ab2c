"""Checking a restored database: it answers, it is out of recovery and writable, the service's key
tables have rows, and the engineer's own query holds.  Never raises: problems are reported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsctl.settings import Service


def verify(dsn: str, service: Service, verify_sql: str | None) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    from opsctl.migrate.db import first_line

    out: dict[str, Any] = {"ok": True, "problems": [], "tables": {}, "writable": False, "in_recovery": None}
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            out["in_recovery"] = bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]
            with conn.transaction():
                conn.execute("CREATE TEMP TABLE opsctl_restore_probe (x int)")
                conn.execute("INSERT INTO opsctl_restore_probe VALUES (1)")
                raise psycopg.Rollback()
            out["writable"] = True
            tables = service.database.verify_tables if service.database else []
            for name in tables:
                try:
                    parts = name.split(".")
                    count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*parts))).fetchone()
                    out["tables"][name] = int(count[0]) if count else None
                except psycopg.Error as exc:
                    out["tables"][name] = None
                    out["problems"].append(f"{name}: {first_line(exc)}")
            if verify_sql:
                try:
                    row = conn.execute(verify_sql.encode()).fetchone()
                    value = row[0] if row else None
                    out["verify_sql"] = {"result": value, "ok": value not in (False, None, 0)}
                    if not out["verify_sql"]["ok"]:
                        out["problems"].append(f"--verify-sql returned {value!r}")
                except psycopg.Error as exc:
                    out["verify_sql"] = {"result": None, "ok": False}
                    out["problems"].append(f"--verify-sql failed: {first_line(exc)}")
    except psycopg.Error as exc:
        out["problems"].append(f"cannot use the restored database: {first_line(exc)}")
    if out["in_recovery"]:
        out["problems"].append("the server is still in recovery")
    out["ok"] = not out["problems"] and out["writable"]
    return out
