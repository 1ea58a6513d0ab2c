"""The config model: tiers, services, integrations, policy, state.

Loading, discovery and located error messages live in :mod:`opsctl.configfile`.
The models reject unknown keys; cross references (a service's tier, its team,
its environments, duplicate names) are checked by :func:`cross_check`.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    computed_field,
    field_validator,
)

from opsctl.redact import REFERENCE_PATTERN, is_reference
from opsctl.timeutil import DURATION_PATTERN, format_duration, parse_duration, validate_timezone

T = TypeVar("T")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_SECRET_PARAMETER = re.compile(r"(ssl)?pass(word|wd)?|pwd|secret|(access_|auth_)?token|api[_-]?key", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)(ssl)?password\s*=", re.IGNORECASE)

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["15m", "1h", "7d"]}),
]
TimeZone = Annotated[str, AfterValidator(validate_timezone)]


def _check_secret_ref(value: str) -> str:
    if not is_reference(value):
        raise ValueError("must be a secret reference: vault:PATH#KEY, aws-sm:NAME[#KEY], file:PATH or env:NAME")
    return value


def plaintext_password(value: str) -> str | None:
    """What in ``value`` is a password in plain text (``user:pass@`` in a URL, a ``password=``
    query parameter, a libpq ``password=`` keyword), in words and without the password;
    None when there is none."""
    scheme = _SCHEME.match(value.strip())
    if scheme is None:
        return "a password= keyword" if _KEYWORD_PASSWORD.search(value) else None
    from urllib.parse import unquote

    rest = value.strip()[scheme.end() :]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if at and userinfo.partition(":")[2]:
        return "user:password@ in the URL"
    query = rest.partition("?")[2].partition("#")[0]
    for pair in re.split(r"[&;]", query):
        name, equals, given = pair.partition("=")
        name = unquote(name).strip()
        if equals and given and _SECRET_PARAMETER.fullmatch(name):
            return f"a {name.lower()}= parameter in the URL"
    return None


def _check_url_or_ref(value: str) -> str:
    if is_reference(value):
        return value
    found = plaintext_password(value)
    if found:
        raise ValueError(
            f"holds a password in plain text ({found}): "
            "put the whole value in a secret reference (vault:PATH#KEY, aws-sm:NAME, file:PATH)"
        )
    return value


def _check_url(value: str) -> str:
    found = plaintext_password(value)
    if found:
        raise ValueError(
            f"holds a password in plain text ({found}): remove it; credentials come from "
            "secret references (vault:PATH#KEY, aws-sm:NAME, file:PATH), never from a URL in the config"
        )
    return value


def _given(value: T | None) -> T | None:
    if value is None:
        raise ValueError("cannot be null here: leave the key out to keep the global value")
    return value


class _Reference:
    """Marks a field that may hold a secret reference (see :func:`references`)."""


REFERENCE_FIELD = _Reference()

SecretRef = Annotated[
    str,
    AfterValidator(_check_secret_ref),
    WithJsonSchema({"type": "string", "pattern": REFERENCE_PATTERN}),
    REFERENCE_FIELD,
]
UrlOrSecret = Annotated[str, AfterValidator(_check_url_or_ref), REFERENCE_FIELD]
Url = Annotated[str, AfterValidator(_check_url)]
Given = Annotated[T | None, AfterValidator(_given)]  # an override: absent = inherited; null is refused
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------- tiers


class Tier(Model):
    description: str = ""
    availability: float = Field(gt=0, le=100, description="availability target in percent")
    p95_latency_ms: int | None = Field(default=None, gt=0, description="p95 latency target; null = none")
    rpo: Duration = Field(description="recovery point objective")
    rto: Duration = Field(description="recovery time objective")


class TierOverride(Model):
    description: str | None = None
    availability: float | None = Field(default=None, gt=0, le=100)
    p95_latency_ms: int | None = Field(default=None, gt=0)
    rpo: Duration | None = None
    rto: Duration | None = None


BUILTIN_TIERS: dict[int, Tier] = {
    0: Tier(description="critical (auth, billing)", availability=99.99, p95_latency_ms=200, rpo="0m", rto="15m"),  # type: ignore[arg-type]
    1: Tier(description="core (api, signaling)", availability=99.9, p95_latency_ms=500, rpo="5m", rto="1h"),  # type: ignore[arg-type]
    2: Tier(description="async jobs", availability=99.5, p95_latency_ms=None, rpo="1h", rto="4h"),  # type: ignore[arg-type]
    3: Tier(description="internal tools", availability=99.0, p95_latency_ms=1000, rpo="24h", rto="8h"),  # type: ignore[arg-type]
}


# ------------------------------------------------------------------ services


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
    traffic: Traffic = Traffic()


class Prometheus(Model):
    queries: dict[str, str] = Field(default_factory=dict, description="named PromQL queries")


class Backup(Model):
    provider: Literal["pgbackrest", "rds"]
    stanza: str | None = Field(default=None, description="pgBackRest stanza")
    repo_path: str | None = Field(default=None, description="pgBackRest posix repository path")
    instance: str | None = Field(default=None, description="RDS DB instance identifier")
    retention: Duration = Field(default=timedelta(days=7), description="PITR retention")


class Database(Model):
    dsn: SecretRef = Field(description="secret reference holding the connection string")
    backup: Backup | None = None
    replica: str | None = Field(default=None, description="read replica (host or RDS identifier)")


class Cache(Model):
    redis_url: UrlOrSecret
    key_prefix: str = ""


class Dns(Model):
    zone: str
    record: str


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
    environments: dict[Name, EnvironmentOverride] = Field(default_factory=dict)

    def in_env(self, env: str) -> Service:
        """This service with the blocks of environment ``env`` applied."""
        override = self.environments.get(env)
        if override is None:
            return self
        changes = {k: v for k, v in override if v is not None}
        return self.model_copy(update=changes)


# -------------------------------------------------------------- integrations


class PagerDutyIntegration(Model):
    token: SecretRef | None = Field(default=None, description="API token (secret reference)")
    from_: str | None = Field(default=None, alias="from", description="email sent in the From header")
    base_url: Url = "https://api.pagerduty.com"
    ca_bundle: str | None = Field(default=None, description="CA bundle for a PagerDuty-compatible proxy")
    timeout: Duration = Field(default=timedelta(seconds=30), description="total time budget per call, retries included")
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="time limit of one HTTP request")


class PrometheusIntegration(Model):
    url: Url = "http://127.0.0.1:9090"


class AwsIntegration(Model):
    region: str = "eu-central-1"
    secondary_region: str | None = "eu-west-1"
    endpoint_url: Url | None = None
    profile: str | None = None


class KubernetesIntegration(Model):
    kubeconfig: str | None = None
    context: str | None = Field(default=None, description="kubeconfig context (default: its current context)")


class VaultIntegration(Model):
    address: Url = "http://127.0.0.1:8200"
    namespace: str | None = None
    mount: str = "secret"


class Integrations(Model):
    pagerduty: PagerDutyIntegration = PagerDutyIntegration()
    prometheus: PrometheusIntegration = PrometheusIntegration()
    aws: AwsIntegration = AwsIntegration()
    kubernetes: KubernetesIntegration = KubernetesIntegration()
    vault: VaultIntegration = VaultIntegration()


# Per-environment overrides: the same fields, each absent unless it differs from the global
# integrations (tests/unit/test_settings.py keeps the two field lists in step).


class PagerDutyOverride(Model):
    token: SecretRef | None = None
    from_: str | None = Field(default=None, alias="from")
    base_url: Given[Url] = None
    ca_bundle: str | None = None
    timeout: Given[Duration] = None
    request_timeout: Given[Duration] = None


class PrometheusOverride(Model):
    url: Given[Url] = None


class AwsOverride(Model):
    region: Given[str] = None
    secondary_region: str | None = None
    endpoint_url: Url | None = None
    profile: str | None = None


class KubernetesOverride(Model):
    kubeconfig: str | None = None
    context: str | None = None


class VaultOverride(Model):
    address: Given[Url] = None
    namespace: str | None = None
    mount: Given[str] = None


class IntegrationOverrides(Model):
    pagerduty: PagerDutyOverride | None = None
    prometheus: PrometheusOverride | None = None
    aws: AwsOverride | None = None
    kubernetes: KubernetesOverride | None = None
    vault: VaultOverride | None = None


class EnvironmentSettings(Model):
    """One environment; its ``integrations`` name only the fields that differ from the global ones."""

    integrations: IntegrationOverrides = IntegrationOverrides()


def _environment_map(value: Any) -> Any:
    """The list form ``[production, staging]`` read as the mapping form, without overrides."""
    if isinstance(value, list):
        if not all(isinstance(name, str) for name in value):
            raise ValueError("environment names must be text, like production")
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"environment {name!r} is listed twice")
            seen.add(name)
        return {name: {} for name in value}
    if isinstance(value, dict):
        return {name: {} if given is None else given for name, given in value.items()}
    return value


# -------------------------------------------------------------------- policy

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class BusinessHours(Model):
    timezone: TimeZone = "UTC"
    start: str = Field(default="09:00", pattern=_HHMM)
    end: str = Field(default="17:00", pattern=_HHMM)
    days: list[Weekday] = Field(default_factory=lambda: list(_WORKDAYS))


class ConfirmRule(Model):
    """Matches when every field given matches; confirmation is needed if any rule matches."""

    tiers: list[int] | None = None
    environments: list[str] | None = None


class SeverityPolicy(Model):
    """How one severity is handled: who is paged when, and which timers run."""

    description: str = ""
    urgency: Literal["high", "low", "none"]
    page: Literal["always", "business_hours", "never"]
    ack_within: Duration | None = Field(default=None, description="acknowledgement due after declaration")
    update_every: Duration | None = Field(default=None, description="a status update due this often while open")
    postmortem_within: Duration | None = Field(default=None, description="post-mortem due after resolution")


def _default_severities() -> dict[int, SeverityPolicy]:
    return {
        1: SeverityPolicy(
            description="total outage, data loss or security breach",
            urgency="high",
            page="always",
            ack_within=timedelta(minutes=15),
            update_every=timedelta(minutes=30),
            postmortem_within=timedelta(hours=48),
        ),
        2: SeverityPolicy(
            description="major feature broken or high latency",
            urgency="high",
            page="always",
            ack_within=timedelta(minutes=15),
            update_every=timedelta(minutes=30),
            postmortem_within=timedelta(hours=48),
        ),
        3: SeverityPolicy(description="minor bug with a workaround", urgency="low", page="business_hours"),
        4: SeverityPolicy(description="cosmetic: a ticket, nobody is paged", urgency="none", page="never"),
    }


class Policy(Model):
    business_hours: BusinessHours = BusinessHours()
    severities: dict[int, SeverityPolicy] = Field(
        default_factory=_default_severities,
        description="incident handling per severity (1-4); a partial entry is merged over the default",
    )
    confirm: list[ConfirmRule] = Field(
        default_factory=lambda: [ConfirmRule(environments=["production"]), ConfirmRule(tiers=[0])]
    )
    plaintext_env_secrets: Literal["warn", "refuse"] = Field(
        default="warn", description="what to do with env:NAME secret references"
    )
    lock_ttl: Duration = Field(default=timedelta(seconds=60), description="lock lease, renewed while held")
    lock_wait: Duration = Field(
        default=timedelta(seconds=15),
        description="how long a short operation (an incident command) waits for a held lock before giving up",
    )

    @field_validator("severities", mode="before")
    @classmethod
    def _merge_severities(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[Any, Any] = {}
        defaults = _default_severities()
        for key, given in value.items():
            try:
                number = int(key)
            except (TypeError, ValueError):
                merged[key] = given
                continue
            if number not in defaults:
                raise ValueError(f"severity {key} does not exist: severities are 1-4")
            base = defaults[number].model_dump()
            merged[number] = {**base, **given} if isinstance(given, dict) else given
        return {**{n: p.model_dump() for n, p in defaults.items()}, **merged}

    def needs_confirmation(self, tier: int, env: str) -> bool:
        for rule in self.confirm:
            if rule.tiers is not None and tier not in rule.tiers:
                continue
            if rule.environments is not None and env not in rule.environments:
                continue
            return True
        return False


class Team(Model):
    business_hours: BusinessHours | None = None
    pagerduty_schedule: str | None = None


class StateConfig(Model):
    url: UrlOrSecret | None = Field(
        default=None, description="postgresql:// URL (or secret reference) for a shared store; unset = SQLite"
    )
    locks: Literal["state", "redis"] = "state"
    redis_url: UrlOrSecret | None = None


# -------------------------------------------------------------------- config


class Config(Model):
    """The whole opsctl.yaml."""

    model_config = ConfigDict(extra="forbid", validate_by_name=False, validate_by_alias=True)

    version: Literal[1] = 1
    default_env: Name = "production"
    environment_settings: Annotated[
        dict[Name, EnvironmentSettings],
        BeforeValidator(_environment_map, json_schema_input_type=list[Name] | dict[Name, EnvironmentSettings]),
    ] = Field(
        default_factory=lambda: {"production": EnvironmentSettings(), "staging": EnvironmentSettings()},
        validation_alias="environments",
        title="Environments",
        description="environment names, or a mapping of each name to its integration overrides",
    )
    tiers: dict[int, TierOverride] = Field(default_factory=dict)
    teams: dict[Name, Team] = Field(default_factory=dict)
    policy: Policy = Policy()
    state: StateConfig = StateConfig()
    integrations: Integrations = Integrations()
    services: list[Service] = Field(default_factory=list)

    @field_validator("tiers")
    @classmethod
    def _tier_numbers(cls, value: dict[int, TierOverride]) -> dict[int, TierOverride]:
        for number in value:
            if number < 0 or number > 9:
                raise ValueError(f"tier {number} is out of range: tiers are numbered 0-9")
        return value

    def effective_tiers(self) -> dict[int, Tier]:
        """Built-in tiers with the config's overrides merged in; new complete tiers added."""
        merged = dict(BUILTIN_TIERS)
        for number, override in self.tiers.items():
            given = override.model_dump(exclude_unset=True)
            if number in merged:
                merged[number] = Tier.model_validate({**merged[number].model_dump(), **given})
            else:
                merged[number] = Tier.model_validate(given)
        return dict(sorted(merged.items()))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def environments(self) -> list[str]:
        """The environment names, in the config's order (either form of ``environments``)."""
        return list(self.environment_settings)

    def integrations_for(self, env: str) -> Integrations:
        """The global ``integrations`` with environment ``env``'s overrides merged field by field."""
        settings = self.environment_settings.get(env)
        if settings is None:
            return self.integrations
        overrides = settings.integrations
        updates: dict[str, BaseModel] = {}
        for block in overrides.model_fields_set:
            override = getattr(overrides, block)
            if override is not None:
                changes = {name: getattr(override, name) for name in override.model_fields_set}
                updates[block] = getattr(self.integrations, block).model_copy(update=changes)
        return self.integrations.model_copy(update=updates)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def business_hours(self, team: str) -> BusinessHours:
        owner = self.teams.get(team)
        if owner is not None and owner.business_hours is not None:
            return owner.business_hours
        return self.policy.business_hours


def cross_check(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """References the models cannot check alone, as ``(location, message)`` pairs.

    Works on the raw YAML data so that these problems are reported together with
    the type errors of the same file, not only after those are fixed."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    raw_tiers = data.get("tiers") if isinstance(data.get("tiers"), dict) else {}
    tiers = set(BUILTIN_TIERS)
    for key, override in (raw_tiers or {}).items():
        try:
            number = int(key)
        except (TypeError, ValueError):
            continue
        tiers.add(number)
        if number not in BUILTIN_TIERS and isinstance(override, dict):
            missing = [f for f in ("availability", "rpo", "rto") if override.get(f) is None]
            if missing:
                problems.append((("tiers", key), f"new tier {number} needs {', '.join(missing)}"))
    envs = data.get("environments", ["production", "staging"])
    envs = list(envs) if isinstance(envs, list | dict) else []
    default_env = data.get("default_env", "production")
    if envs and isinstance(default_env, str) and default_env not in envs:
        problems.append((("default_env",), f"environment {default_env!r} is not in environments"))
    teams = data.get("teams") if isinstance(data.get("teams"), dict) else None
    services = data.get("services") if isinstance(data.get("services"), list) else []
    seen: dict[str, int] = {}
    for index, service in enumerate(services or []):
        if not isinstance(service, dict):
            continue
        name = service.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append(
                    (("services", index, "name"), f"duplicate service name {name!r} (also service #{seen[name] + 1})")
                )
            else:
                seen[name] = index
        tier = service.get("tier")
        if isinstance(tier, int) and not isinstance(tier, bool) and tier not in tiers:
            known = ", ".join(str(t) for t in sorted(tiers))
            problems.append((("services", index, "tier"), f"tier {tier} does not exist (tiers: {known})"))
        owner = service.get("owner")
        if teams and isinstance(owner, str) and owner not in teams:
            problems.append((("services", index, "owner"), f"team {owner!r} is not in teams"))
        service_envs = service.get("environments")
        for env in service_envs if isinstance(service_envs, dict) else {}:
            if env not in envs:
                problems.append(
                    (("services", index, "environments", env), f"environment {env!r} is not in environments")
                )
    policy = data.get("policy")
    if isinstance(policy, dict) and policy.get("plaintext_env_secrets") == "refuse":
        for loc, value in references(data):
            if value.startswith("env:"):
                problems.append((loc, _ENV_REFUSED))
    return problems


_ENV_REFUSED = (
    "an env: secret reference, refused by policy.plaintext_env_secrets: refuse; "
    "use vault:PATH#KEY, aws-sm:NAME or file:PATH"
)


def references(data: Any, model: Any = None, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every value of raw config ``data`` in a field that takes a secret reference, with its
    location; found from the models' types, so a new secret field is covered without a list."""
    tp: Any = Config if model is None else model
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        if any(meta is REFERENCE_FIELD for meta in tp.__metadata__):
            if isinstance(data, str):
                yield loc, data
            return
        yield from references(data, args[0], loc)
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        if not isinstance(data, dict):
            return
        for name, info in tp.model_fields.items():
            key = info.validation_alias if isinstance(info.validation_alias, str) else info.alias or name
            if key not in data:
                continue
            if any(meta is REFERENCE_FIELD for meta in info.metadata):
                if isinstance(data[key], str):
                    yield (*loc, key), data[key]
            else:
                yield from references(data[key], info.annotation, (*loc, key))
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from references(data, arg, loc)
    elif origin is list and isinstance(data, list):
        for index, item in enumerate(data):
            yield from references(item, args[0], (*loc, index))
    elif origin is dict and isinstance(data, dict):
        for key, item in data.items():
            yield from references(item, args[1], (*loc, key))


def json_schema() -> dict[str, Any]:
    """The JSON schema of opsctl.yaml, every default written as the config writes it
    (durations as ``30s``: pydantic would give ISO 8601 ``PT30S``, which the schema's own
    duration pattern refuses)."""
    from pydantic.json_schema import GenerateJsonSchema

    class Schema(GenerateJsonSchema):
        def encode_default(self, dft: Any) -> Any:
            if isinstance(dft, timedelta):
                return format_duration(dft)
            return super().encode_default(dft)

    return Config.model_json_schema(by_alias=True, schema_generator=Schema)
