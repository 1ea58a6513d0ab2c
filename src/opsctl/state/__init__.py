"""State: audit log, locks and records, in SQLite or a shared PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.errors import UsageError
from opsctl.redact import redact

if TYPE_CHECKING:
    from opsctl.state.base import Store

__all__ = ["default_state_dir", "open_store"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def default_state_dir() -> Path:
    """``$OPSCTL_STATE_DIR`` if set, else the platform's user state directory for opsctl."""
    override = os.environ.get("OPSCTL_STATE_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_state_path("opsctl")


def open_store(url: str | None, state_dir: Path, *, schema: str = "opsctl") -> Store:
    """The configured store: SQLite at ``state_dir/opsctl.db`` when ``url`` is None, else PostgreSQL
    (tables in the PostgreSQL ``schema``)."""
    if url is None:
        from opsctl.state.sqlite import SQLiteStore

        return SQLiteStore(Path(state_dir) / "opsctl.db")
    if url.lower().startswith(_POSTGRES_SCHEMES):
        from opsctl.state.postgres import PostgresStore

        return PostgresStore(url, schema)
    raise UsageError(
        f"unsupported state store URL {redact(url)!r}",
        hint="use postgresql://user@host/db for a shared store, or leave it unset for the local SQLite file",
    )
