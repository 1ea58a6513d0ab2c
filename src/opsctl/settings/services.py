"""A service and its blocks (PagerDuty, Kubernetes, Prometheus, database, cache, DNS),
with the per-environment blocks that replace them (:meth:`Service.in_env`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from opsctl.settings.drills import DrillSchedule
from opsctl.settings.types import Duration, Model, Name, SecretRef, UrlOrSecret


class PagerDutyService(Model):
    service_id: str = Field(description="PagerDuty service ID, e.g. PABC123")
    escalation_policy: str | None = Field(default=None, description="escalation policy ID")


class Traffic(Model):
    kind: Literal["service", "gateway-api", "istio", "none"] = "service"
    route: str | None = Field(default=None, description="HTTPRoute / VirtualService name")


class Kubernetes(Model):
    context: str | None = None
    namespace: str = "default"
    deployment: str
    service: str | None = Field(default=None, description="the Kubernetes Service in front of it (default: deployment)")
    container: str | None = Field(default=None, description="the container whose image a deploy sets (default: first)")
    traffic: Traffic = Traffic()


class Prometheus(Model):
    queries: dict[str, str] = Field(
        default_factory=dict,
        description="PromQL overriding the analysis defaults (requests, error_ratio, p95_ms);"
        " placeholders {service}, {track}, {window}",
    )
    preview: bool = Field(default=False, description="blue/green: analyse green on preview traffic before the switch")


class Backup(Model):
    provider: Literal["pgbackrest", "rds"]
    stanza: str | None = Field(default=None, description="pgBackRest stanza")
    config: str | None = Field(
        default=None, description="the pgBackRest config file passed with --config (its repositories and encryption)"
    )
    repo_path: str | None = Field(default=None, description="pgBackRest posix repository path")
    instance: str | None = Field(default=None, description="RDS DB instance identifier")
    retention: Duration = Field(default=timedelta(days=7), description="PITR retention")


class Database(Model):
    dsn: SecretRef = Field(description="secret reference holding the connection string")
    backup: Backup | None = None
    replica: str | None = Field(default=None, description="read replica (host or RDS identifier)")
    replica_dsn: SecretRef | None = Field(
        default=None, description="secret reference to the replica's connection string (its lag is read there)"
    )
    restore_root: str | None = Field(
        default=None, description="where pgBackRest restores get their new data directories (default: the state dir)"
    )
    verify_tables: list[str] = Field(
        default_factory=list, description="key tables whose row counts a restore's verification reports"
    )
    migrations: str | None = Field(
        default=None,
        description="folder of the service's migrations (plain .sql files or a Drizzle folder), relative to the config file",
    )
    changes: str | None = Field(
        default=None, description="folder of column-change YAML files (default: <migrations>/changes)"
    )


class CacheGroup(Model):
    """Keys of one kind, found by a glob ``pattern`` (matched against the key without the
    service's ``key_prefix``), and the longest TTL they may have."""

    pattern: str = Field(min_length=1, max_length=512, description="glob, e.g. session:*")
    max_ttl: Duration | None = Field(default=None, description="a longer TTL is a finding (sessions: 7d)")


class CacheEvents(Model):
    """Where the EntityUpdated events go: a Pub/Sub channel or a stream (XADD)."""

    channel: str | None = Field(default=None, description="PUBLISH to this channel (JSON payload)")
    stream: str | None = Field(default=None, description="XADD to this stream (one field per payload key)")
    maxlen: int | None = Field(default=100000, ge=1, description="stream: trimmed to about this many entries")
    type: str = Field(default="EntityUpdated", description="the event's type field")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="payload key names when the services expect others: {entity, id, time, trace_id, type} -> name",
    )

    @model_validator(mode="after")
    def _one_target(self) -> CacheEvents:
        if (self.channel is None) == (self.stream is None):
            raise ValueError("give exactly one of channel or stream")
        unknown = set(self.fields) - {"entity", "id", "time", "trace_id", "type"}
        if unknown:
            raise ValueError(f"unknown payload field(s) {sorted(unknown)}: entity, id, time, trace_id, type")
        return self


class Cache(Model):
    redis_url: UrlOrSecret
    key_prefix: str = ""
    cluster: bool | None = Field(default=None, description="a Redis Cluster (default: ask the server)")
    groups: dict[Name, CacheGroup] = Field(default_factory=dict, description="key groups and their maximum TTL")
    entities: dict[Name, list[str]] = Field(
        default_factory=dict,
        description="per entity, the key patterns (without key_prefix) to delete, with {id}: e.g. user:{id}, feed:{id}:*",
    )
    events: CacheEvents | None = Field(default=None, description="where 'cache invalidate' publishes EntityUpdated")

    @field_validator("entities")
    @classmethod
    def _with_id(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for entity, patterns in value.items():
            for pattern in patterns:
                if "{id}" not in pattern:
                    raise ValueError(f"entities.{entity}: {pattern!r} has no {{id}}")
                if pattern.replace("{id}", "").strip("*?:") == "":
                    raise ValueError(f"entities.{entity}: {pattern!r} would match more than one entity's keys")
        return value


class Dns(Model):
    """The name clients use to reach the service's database (or the service), which a failover
    drill moves from the primary's value to the secondary's (and a failback moves back).  When
    the zone holds Route53 failover record sets for the name (SetIdentifier, Failover PRIMARY /
    SECONDARY), those are switched instead and ``primary``/``secondary`` may be left out."""

    provider: Literal["route53"] = "route53"
    zone: str = Field(description="the hosted zone, e.g. example.com")
    record: str = Field(description="the record's name (FQDN), e.g. db.billing.example.com")
    type: Literal["CNAME", "A"] = "CNAME"
    primary: str | None = Field(default=None, description="the record's value while the primary serves")
    secondary: str | None = Field(default=None, description="the record's value after a failover")
    ttl: int = Field(default=60, ge=0, le=604800, description="TTL of the record set, seconds")


class EnvironmentOverride(Model):
    """Per-environment blocks; each replaces the service's block of the same name."""

    region: str | None = None
    kubernetes: Kubernetes | None = None
    database: Database | None = None
    cache: Cache | None = None
    dns: Dns | None = None


class Service(Model):
    name: Name
    tier: int
    owner: Name = Field(description="owning team")
    description: str = ""
    region: str | None = None
    pagerduty: PagerDutyService | None = None
    kubernetes: Kubernetes | None = None
    prometheus: Prometheus | None = None
    database: Database | None = None
    cache: Cache | None = None
    dns: Dns | None = None
    drills: DrillSchedule | None = Field(default=None, description="drill cadences (default: policy.drills)")
    environments: dict[Name, EnvironmentOverride] = Field(default_factory=dict)

    def in_env(self, env: str) -> Service:
        """This service with the blocks of environment ``env`` applied."""
        override = self.environments.get(env)
        if override is None:
            return self
        changes = {k: v for k, v in override if v is not None}
        return self.model_copy(update=changes)
