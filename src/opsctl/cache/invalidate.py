"""`cache invalidate SERVICE ENTITY ID...`: delete the keys the config maps to the entity (its
patterns with ``{id}``, under the service's prefix) and publish the ``EntityUpdated`` event the
services listen to (a Pub/Sub channel or a stream, payload field names from config).

The keys are found when the plan is made (exact keys with EXISTS, patterns with SCAN on every
primary), so ``--dry-run`` lists exactly what a real run deletes.  An id is literal: glob
characters in it match only themselves.  The deletion comes first, the event after it, so a
service that re-reads on the event does not find the old value in Redis."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opsctl.errors import RefusedError, UsageError
from opsctl.operations.model import Operation, Step

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.integrations.rediskv import Redis
    from opsctl.settings.services import Cache, CacheEvents

KIND = "cache invalidate"
MAX_KEYS = 100_000
MAX_IDS = 1000
_GLOB = set("*?[")


def check_ids(ids: list[str]) -> list[str]:
    if not ids:
        raise UsageError("give at least one ID")
    if len(ids) > MAX_IDS:
        raise UsageError(f"{len(ids)} IDs: at most {MAX_IDS} at a time")
    for given in ids:
        if not given or len(given) > 256 or any(ord(c) < 32 or c in "{}" for c in given):
            raise UsageError(f"ID {given[:40]!r}: 1-256 printable characters, no braces")
    return list(dict.fromkeys(ids))


def key_patterns(cache: Cache, entity: str, ident: str) -> list[tuple[str, bool]]:
    """``(key or SCAN pattern, is_pattern)`` for one id of the entity."""
    from opsctl.integrations.rediskv import escape_glob

    patterns = cache.entities.get(entity)
    if patterns is None:
        known = ", ".join(sorted(cache.entities)) or "none configured"
        raise UsageError(f"entity {entity!r} is not in cache.entities ({known})")
    out = []
    for pattern in patterns:
        template = pattern.replace("{id}", "\0")
        if _GLOB & set(template):
            glob = escape_glob(cache.key_prefix) + template.replace("\0", escape_glob(ident))
            out.append((glob, True))
        else:
            out.append((cache.key_prefix + template.replace("\0", ident), False))
    return out


def find_keys(redis: Redis, wanted: list[tuple[str, bool]]) -> list[tuple[str, bytes]]:
    """``(node, key)`` of every key that exists now (node "" for an exact key: routed by the client)."""
    from opsctl.integrations.rediskv import redis_errors, scan

    found: dict[bytes, str] = {}
    for key, is_pattern in wanted:
        if is_pattern:
            for where, client in redis.masters():
                with redis_errors(where, "scanning"):
                    for batch in scan(client, key):
                        for k in batch:
                            found.setdefault(k, where)
                        if len(found) > MAX_KEYS:
                            raise RefusedError(f"the patterns match more than {MAX_KEYS} keys: too broad to invalidate",
                                               "check cache.entities")  # fmt: skip
        else:
            with redis_errors(redis.where, "EXISTS"):
                if redis.client.exists(key.encode()):
                    found.setdefault(key.encode(), "")
    return [(where, key) for key, where in found.items()]


def payload(events: CacheEvents, entity: str, ident: str, at: str, trace: str) -> dict[str, str]:
    values = {"type": events.type, "entity": entity, "id": ident, "time": at, "trace_id": trace}
    return {events.fields.get(name, name): value for name, value in values.items()}


def invalidate(ctx: Context, name: str, entity: str, ids: list[str]) -> dict[str, Any]:
    from opsctl import tracing
    from opsctl.cache.audit import cache_of, text
    from opsctl.integrations.rediskv import Redis
    from opsctl.operations.runner import execute
    from opsctl.timeutil import isoformat

    service = ctx.service(name)
    cache = cache_of(service)
    ids = check_ids(ids)
    events = cache.events
    if events is None:
        raise UsageError(f"service {service.name} has no cache.events",
                         "set cache.events.channel (or .stream): invalidation goes through EntityUpdated events")  # fmt: skip
    wanted = [kp for ident in ids for kp in key_patterns(cache, entity, ident)]
    redis = Redis((ctx.resolve(cache.redis_url) or "").strip(), cluster=cache.cluster)
    state: dict[str, Any] = {}
    params = {"entity": entity, "ids": ids, "patterns": [k for k, _ in wanted]}
    op = Operation(KIND, service, params, lock="cache", env=ctx.env, short=True,
                   confirm=f"delete the cached {entity} {', '.join(ids[:5])}{'…' if len(ids) > 5 else ''} of"
                           f" {service.name} and publish EntityUpdated")  # fmt: skip

    def plan(run: Any) -> list[Step]:
        keys = find_keys(redis, wanted)
        state["keys"] = keys
        shown = [text(k) for _, k in keys]
        target = f"channel {events.channel}" if events.channel else f"stream {events.stream}"

        def delete(r: Any) -> dict[str, Any]:
            deleted = _delete(redis, keys)
            state["deleted"] = deleted
            return {"deleted": len(deleted)}

        def publish(r: Any) -> dict[str, Any]:
            at, trace = isoformat(ctx.clock()) or "", tracing.trace_id()
            sent = [_publish(redis, events, payload(events, entity, ident, at, trace)) for ident in ids]
            state["event"] = {"channel": events.channel, "stream": events.stream,
                              "payloads": [s["payload"] for s in sent],
                              "receivers": sum(int(s.get("receivers") or 0) for s in sent) if events.channel else None,
                              "ids": [s.get("id") for s in sent] if events.stream else None}  # fmt: skip
            return {"published": len(sent)}

        return [
            Step("delete keys", f"UNLINK {len(keys)} key(s)", f"{service.name} cache", detail={"keys": shown[:200]},
                 apply=delete, undo="none: a cache refills from its source"),
            Step("publish event", f"{'PUBLISH' if events.channel else 'XADD'} {events.type}", target,
                 detail={"entity": entity, "ids": ids}, apply=publish),
        ]  # fmt: skip

    try:
        result = execute(ctx, op, plan)
    finally:
        redis.close()
    keys = [text(k) for _, k in state.get("keys", [])]
    if result.dry_run:
        return {"dry_run": True, "plan": result.plan, "keys": keys}
    return {"service": service.name, "env": ctx.env, "entity": entity, "ids": ids,
            "deleted": [text(k) for k in state.get("deleted", [])], "event": state.get("event"),
            "run_id": result.run_id}  # fmt: skip


def _delete(redis: Redis, keys: list[tuple[str, bytes]]) -> list[bytes]:
    from opsctl.integrations.rediskv import redis_errors

    by_node: dict[str, list[bytes]] = {}
    for where, key in keys:
        by_node.setdefault(where, []).append(key)
    deleted: list[bytes] = []
    clients = dict(redis.masters())
    for where, batch in by_node.items():
        with redis_errors(where or redis.where, "UNLINK"):
            if where and where in clients:
                pipe = clients[where].pipeline(transaction=False)
                for key in batch:
                    pipe.unlink(key)
                answers = pipe.execute()
            else:
                answers = [redis.client.unlink(key) for key in batch]  # exact keys: the client routes each
        deleted += [key for key, n in zip(batch, answers, strict=True) if int(n) == 1]
    return deleted


def _publish(redis: Redis, events: CacheEvents, body: dict[str, str]) -> dict[str, Any]:
    from opsctl.integrations.rediskv import redis_errors

    with redis_errors(redis.where, "publishing the event"):
        if events.channel:
            return {"payload": body, "receivers": redis.client.publish(events.channel, json.dumps(body))}
        ident = redis.client.xadd(events.stream, body, maxlen=events.maxlen, approximate=True)
        return {"payload": body, "id": ident.decode() if isinstance(ident, bytes) else ident}
