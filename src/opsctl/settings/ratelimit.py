"""The rate-limit counters ``ratelimit show|reset`` read (top-level ``ratelimit:``, overridable per
environment): where they are, how they are laid out, and the manual's limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from opsctl.settings.types import Duration, Model, UrlOrSecret


def _default_limits() -> dict[str, int]:
    return {"ip": 1000, "user": 300, "org": 5000, "login": 5}


class RateLimit(Model):
    redis_url: UrlOrSecret = Field(default="redis://127.0.0.1:6379/0", description="the Redis holding the counters")
    cluster: bool | None = Field(default=None, description="a Redis Cluster (default: ask the server)")
    key: str = Field(default="ratelimit:{scope}:{id}", description="the counter's key, with {scope} and {id}")
    layout: Literal["sliding-log", "fixed-window"] = Field(
        default="sliding-log",
        description="sliding-log: a sorted set, one member per request scored in epoch ms;"
        " fixed-window: an integer at <key>:<window start, epoch seconds>",
    )
    window: Duration = Field(default=timedelta(seconds=60), description="the window the limits count over")
    limits: dict[str, int] = Field(default_factory=_default_limits, description="requests per window, per scope")

    @field_validator("key")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        if "{scope}" not in value or "{id}" not in value:
            raise ValueError("the key needs {scope} and {id}")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("the window is at least 1s")
        return value

    @field_validator("limits")
    @classmethod
    def _limits(cls, value: dict[str, int]) -> dict[str, int]:
        merged = {**_default_limits(), **value}
        for scope, limit in merged.items():
            if limit < 0 or not scope.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"limits.{scope}: a scope is a word and its limit a count >= 0")
        return merged


class RateLimitOverride(Model):
    redis_url: UrlOrSecret | None = None
    cluster: bool | None = None
    key: str | None = None
    layout: Literal["sliding-log", "fixed-window"] | None = None
    window: Duration | None = None
    limits: dict[str, int] | None = None
