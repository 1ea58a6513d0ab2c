"""The incident record: what is stored, what ``-o json`` prints."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from opsctl.state.base import Record
from opsctl.timeutil import isoformat

KIND = "incident"
OPEN = ["triggered", "acknowledged", "ticket"]
UPDATE_STATUSES = ("investigating", "identified", "monitoring")
_TIMES = ("declared_at", "acknowledged_at", "resolved_at", "ack_due_at", "next_update_due_at", "postmortem_due_at")


def incident_key(service: str, env: str, sev: int, title: str) -> str:
    """Derived from service, environment, severity and the normalised title: the same declaration, the same key."""
    normalised = re.sub(r"\s+", " ", title.strip().lower())
    digest = hashlib.sha256(f"{service}\n{env}\n{sev}\n{normalised}".encode()).hexdigest()[:16]
    return f"opsctl/{service}/{env}/sev{sev}/{digest}"


@dataclass
class Incident:
    id: str
    service: str
    env: str
    sev: int
    title: str
    status: str  # triggered, acknowledged, resolved, ticket
    urgency: str  # high, low, none
    paged: bool
    backend: str  # pagerduty, local
    incident_key: str
    declared_at: datetime
    declared_by: str
    details: str | None = None
    commander: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    ack_due_at: datetime | None = None
    next_update_due_at: datetime | None = None
    postmortem_due_at: datetime | None = None
    delivery: str = "not-needed"  # delivered, pending (PagerDuty not reached yet), not-needed
    page_reason: str = ""
    pagerduty_id: str | None = None
    html_url: str | None = None
    update_status: str | None = None  # investigating, identified, monitoring
    resolution: str | None = None
    version: int = field(default=0, repr=False)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("version")
        for name in _TIMES:
            data[name] = isoformat(data[name])
        return data

    def to_record(self) -> Record:
        data = self.to_dict()
        return Record(
            kind=KIND,
            id=self.id,
            service=self.service,
            status=self.status,
            data=data,
            key=self.incident_key,
            version=self.version or 1,
        )

    @classmethod
    def from_record(cls, record: Record) -> Incident:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in record.data.items() if k in known}
        for name in _TIMES:
            value = data.get(name)
            data[name] = datetime.fromisoformat(value) if isinstance(value, str) else value
        data["version"] = record.version
        return cls(**data)
