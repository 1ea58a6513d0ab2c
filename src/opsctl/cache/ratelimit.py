"""`ratelimit show|reset KEY`: one client's rate-limit counter, as the X-RateLimit-* headers would
say it (limit, remaining, reset), and its reset.

The counters' layout is the config's (``ratelimit:``, per environment):
- ``sliding-log``: a sorted set per client, one member per request, scored with the request's
  time in epoch milliseconds; the count is the members inside the last window; the window resets
  (a request leaves it) when its oldest member is a window old.
- ``fixed-window``: an integer at ``<key>:<window start, epoch seconds>``; it resets at the next
  window start.

``reset`` deletes the client's counter (the sliding log, or every window counter of the client)
on the runner — confirmation, the lock, audit — and its undo writes the members / counts back."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsctl.errors import UsageError
from opsctl.operations.model import Operation, Step

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.integrations.rediskv import Redis
    from opsctl.settings.ratelimit import RateLimit

KIND = "ratelimit reset"
_KEY = re.compile(r"^([A-Za-z0-9_-]{1,32}):(.{1,256})$", re.DOTALL)


def parse(text: str, config: RateLimit) -> tuple[str, str]:
    match = _KEY.match(text)
    if match is None or any(ord(c) < 32 for c in text):
        raise UsageError(f"KEY {text[:60]!r}: scope:id, like ip:1.2.3.4, user:42, org:7 or login:alice")
    scope, ident = match.group(1), match.group(2)
    if scope not in config.limits:
        raise UsageError(f"scope {scope!r} has no limit", "scopes: " + ", ".join(sorted(config.limits)))
    return scope, ident


def redis_key(config: RateLimit, scope: str, ident: str) -> str:
    return config.key.replace("{scope}", scope).replace("{id}", ident)


def _epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _at(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def read(redis: Redis, config: RateLimit, scope: str, ident: str, now: datetime) -> dict[str, Any]:
    """The counter as the headers would give it at ``now``."""
    from opsctl.integrations.rediskv import redis_errors
    from opsctl.timeutil import isoformat

    key = redis_key(config, scope, ident)
    window_ms = int(config.window.total_seconds() * 1000)
    limit = config.limits[scope]
    now_ms = _epoch_ms(now)
    with redis_errors(redis.where, f"reading {key}"):
        if config.layout == "sliding-log":
            start = now_ms - window_ms
            count = int(redis.client.zcount(key, f"({start}", now_ms))
            oldest = redis.client.zrangebyscore(key, f"({start}", now_ms, start=0, num=1, withscores=True)
            reset = _at(oldest[0][1] + window_ms) if oldest else now
            counter = key
        else:
            window_s = int(config.window.total_seconds())
            started = int(now.timestamp()) // window_s * window_s
            counter = f"{key}:{started}"
            raw = redis.client.get(counter)
            try:
                count = int(raw) if raw is not None else 0
            except ValueError:
                raise UsageError(f"{counter} does not hold a counter ({raw[:40]!r}): check ratelimit.layout") from None
            reset = datetime.fromtimestamp(started + window_s, tz=UTC)
    return {
        "key": f"{scope}:{ident}", "redis_key": counter, "layout": config.layout,
        "window": config.window.total_seconds(), "limit": limit, "count": count,
        "remaining": max(0, limit - count), "reset_at": isoformat(reset),
        "reset_in_seconds": max(0, round((reset - now).total_seconds(), 3)), "limited": count >= limit,
    }  # fmt: skip


def _open(ctx: Context) -> tuple[RateLimit, Redis]:
    from opsctl.integrations.rediskv import Redis

    config = ctx.settings.ratelimit_for(ctx.env)
    return config, Redis((ctx.resolve(config.redis_url) or "").strip(), cluster=config.cluster)


def show(ctx: Context, text: str) -> dict[str, Any]:
    config, redis = _open(ctx)
    scope, ident = parse(text, config)
    try:
        return {"env": ctx.env, **read(redis, config, scope, ident, ctx.clock())}
    finally:
        redis.close()


def reset(ctx: Context, text: str) -> dict[str, Any]:
    from opsctl.integrations.rediskv import escape_glob, redis_errors
    from opsctl.operations.runner import execute

    config, redis = _open(ctx)
    scope, ident = parse(text, config)
    key = redis_key(config, scope, ident)
    saved: dict[bytes, Any] = {}
    op = Operation(KIND, None, {"key": f"{scope}:{ident}", "layout": config.layout}, lock=f"ratelimit {scope}",
                   short=True, env=ctx.env, must_confirm=True,
                   confirm=f"reset the rate-limit counter of {scope}:{ident} in {ctx.env}")  # fmt: skip

    def plan(run: Any) -> list[Step]:
        def counters() -> list[bytes]:
            if config.layout == "sliding-log":
                return [key.encode()] if redis.client.exists(key) else []
            found: list[bytes] = []
            for _, client in redis.masters():
                found += list(client.scan_iter(match=escape_glob(key) + ":[0-9]*", count=1000))
            return found

        def apply(r: Any) -> dict[str, Any]:
            with redis_errors(redis.where, f"resetting {key}"):
                keys = counters()
                for k in keys:  # kept for the undo (a sliding log is at most the limit's size, a window one int)
                    kind = redis.client.type(k)
                    kind = kind.decode() if isinstance(kind, bytes) else kind
                    ttl = int(redis.client.pttl(k))
                    if kind == "zset":
                        saved[k] = ("zset", redis.client.zrange(k, 0, -1, withscores=True), ttl)
                    else:
                        saved[k] = ("string", redis.client.get(k), ttl)
                    redis.client.delete(k)
            return {"deleted": [k.decode(errors="backslashreplace") for k in saved]}

        def undo(r: Any) -> None:
            with redis_errors(redis.where, f"restoring {key}"):
                for k, (kind, value, ttl) in saved.items():
                    if kind == "zset" and value:
                        redis.client.zadd(k, dict(value))
                    elif value is not None:
                        redis.client.set(k, value)
                    if ttl > 0:
                        redis.client.pexpire(k, ttl)

        return [Step("reset", "DEL the client's counter", key, detail={"layout": config.layout}, apply=apply,
                     compensate=undo, undo="write the counter back")]  # fmt: skip

    try:
        before = read(redis, config, scope, ident, ctx.clock())
        result = execute(ctx, op, plan)
        if result.dry_run:
            return {"dry_run": True, "plan": result.plan, "before": before}
        after = read(redis, config, scope, ident, ctx.clock())
    finally:
        redis.close()
    return {"env": ctx.env, "key": f"{scope}:{ident}", "run_id": result.run_id, "before": before, "after": after,
            "deleted": (result.results.get("reset") or {}).get("deleted", [])}  # fmt: skip
