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
    run_id: str | None = None  # the run this record belongs to (started, outcome, takeover)
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


@dataclass
class RunRecord:
    """One run of a mutating operation, as the state store keeps it.

    ``token`` identifies the driving process: only it may update the run, and a takeover
    swaps it atomically.  ``state`` is stored as running, paused, succeeded, failed, rolled_back
    or interrupted; "orphaned" is derived (a running run whose heartbeat is older than its lease).
    """

    id: str
    kind: str  # e.g. "incident declare", "deploy canary"
    service: str | None
    env: str
    state: str
    driver_user: str
    driver_host: str
    driver_pid: int
    token: str
    lease_seconds: float
    started_at: datetime
    heartbeat_at: datetime
    step: str | None = None
    step_index: int = 0
    plan: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # what the engine needs to rebuild the steps
    data: dict[str, Any] = field(default_factory=dict)  # the engine's own state (weights, a cursor)
    lock_key: str | None = None
    finished_at: datetime | None = None
    message: str = ""


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

    # -------------------------------------------------------------- runs
    @abstractmethod
    def create_run(self, run: RunRecord) -> None:
        """Insert; raise ConflictError if the id exists."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def list_runs(
        self,
        *,
        service: str | None = None,
        env: str | None = None,
        states: list[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Newest first."""

    @abstractmethod
    def update_run(self, run: RunRecord) -> bool:
        """Write the run's mutable fields if ``run.token`` still drives it; False if not."""

    @abstractmethod
    def heartbeat_run(self, run_id: str, token: str, now: datetime, progress: dict[str, Any] | None) -> bool:
        """Renew the heartbeat (and the progress snapshot) if ``token`` still drives the run."""

    @abstractmethod
    def takeover_run(self, run: RunRecord, expected_token: str, stale_before: datetime) -> bool:
        """Make ``run`` (its new driver and token) the driver of ``run.id`` atomically, if the run
        is still driven by ``expected_token`` and is interrupted, failed, paused, or running with a
        heartbeat older than ``stale_before``.  One winner when several try."""
