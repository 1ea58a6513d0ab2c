"""The whole opsctl.yaml (:class:`Config`), the checks across its parts the models cannot make
alone (:func:`cross_check`), the walk over its secret references (:func:`references`) and its
JSON schema (:func:`json_schema`)."""

from __future__ import annotations

import types
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, computed_field, field_validator

from opsctl.settings.integrations import EnvironmentSettings, Integrations, StateConfig
from opsctl.settings.policy import BusinessHours, Policy, Team
from opsctl.settings.ratelimit import RateLimit
from opsctl.settings.services import Service
from opsctl.settings.tiers import BUILTIN_TIERS, Tier, TierOverride
from opsctl.settings.types import REFERENCE_FIELD, Model, Name
from opsctl.timeutil import format_duration


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
    ratelimit: RateLimit = RateLimit()
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

    def ratelimit_for(self, env: str) -> RateLimit:
        """The ``ratelimit`` block with environment ``env``'s overrides (the fields it gives)."""
        settings = self.environment_settings.get(env)
        override = settings.ratelimit if settings is not None else None
        if override is None:
            return self.ratelimit
        changes = {name: getattr(override, name) for name in override.model_fields_set}
        return RateLimit.model_validate({**self.ratelimit.model_dump(), **changes})

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
