"""The state store interface: audit log, locks, and records with timelines.

Two implementations behind it — embedded SQLite (default) and a shared
PostgreSQL database — pass the same test-suite (tests/integration/test_store.py).
Records are generic JSON documents (``kind`` = "incident", "deploy", "drill", …)
with an optional dedup ``key``, a ``status``, an optimistic-concurrency
``version`` and an append-only list of events; each engine owns its kinds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    user: str
    host: str
    command: str  # e.g. "incident declare"
    service: str | None
    env: str | None
    args: dict[str, Any]  # already redacted by the caller
    outcome: str  # "ok", "failed", "refused", "error", "upstream", "interrupted"
    dry_run: bool
    trace_id: str
    exit_code: int = 0
    message: str = ""
    id: int | None = None


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock. ``token`` identifies the owner; only it may renew or release."""

    key: str
    token: str
    user: str
    host: str
    pid: int
    command: str
    acquired_at: datetime
    expires_at: datetime


@dataclass
class Record:
    kind: str
    id: str
    service: str | None
    status: str
    data: dict[str, Any]
    key: str | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Event:
    kind: str
    record_id: str
    at: datetime
    author: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None


class ConflictError(Exception):
    """A record changed since it was read (version mismatch) or its id already exists."""


class Store(ABC):
    """One state store. All datetimes in and out are timezone-aware (UTC)."""

    backend: str  # "sqlite" or "postgres"
    location: str  # file path or redacted URL, for display

    SCHEMA_VERSION: int = 0

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    # ------------------------------------------------------------- audit
    @abstractmethod
    def add_audit(self, record: AuditRecord) -> int: ...

    @abstractmethod
    def list_audit(
        self, *, service: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """Newest last."""

    # ------------------------------------------------------------- locks
    @abstractmethod
    def acquire_lock(self, info: LockInfo) -> LockInfo | None:
        """Take ``info.key`` if free or expired; return None on success, else the current holder."""

    @abstractmethod
    def renew_lock(self, key: str, token: str, ttl: timedelta, now: datetime) -> bool: ...

    @abstractmethod
    def release_lock(self, key: str, token: str) -> bool: ...

    @abstractmethod
    def get_lock(self, key: str, now: datetime) -> LockInfo | None:
        """The live holder of ``key`` (expired leases count as free)."""

    @abstractmethod
    def list_locks(self, now: datetime) -> list[LockInfo]: ...

    @abstractmethod
    def break_lock(self, key: str) -> LockInfo | None:
        """Remove ``key`` whoever holds it; return what was removed."""

    # ----------------------------------------------------------- records
    @abstractmethod
    def create_record(self, record: Record) -> Record:
        """Insert; raise ConflictError if (kind, id) exists."""

    @abstractmethod
    def get_record(self, kind: str, id: str) -> Record | None: ...

    @abstractmethod
    def find_records(
        self,
        kind: str,
        *,
        service: str | None = None,
        key: str | None = None,
        statuses: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        """Oldest first."""

    @abstractmethod
    def update_record(self, record: Record) -> Record:
        """Write ``record`` if its ``version`` is current; return it with version + 1, else ConflictError."""

    @abstractmethod
    def add_event(self, event: Event) -> Event: ...

    @abstractmethod
    def list_events(self, kind: str, record_id: str) -> list[Event]:
        """In the order they were added."""
