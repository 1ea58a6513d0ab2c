"""`cache audit SERVICE`: every key under the service's prefix against the manual's rule — every
Redis key has a TTL, and no TTL is longer than its group's maximum.

The walk: SCAN (never KEYS) on every primary (one node, or each master of a cluster), then PTTL of
each batch in one pipeline on that node.  Keys are put in groups (the config's ``groups``, matched
on the key without the prefix; else the first segment, ``user:*``); per group the keys, those
without a TTL, those over the maximum, a sample of offenders and ``MEMORY USAGE`` of a sample of
the keys without a TTL (what they hold now, and estimated for all of them).  Memory stays bounded
whatever the keyspace: counts, and samples of fixed size.

``--fix-ttl DURATION`` then sets a TTL on the offenders, on the runner (plan, confirmation, lock,
audit): the keys are walked again and changed with ``PEXPIRE … NX`` (only a key still without a
TTL) or ``PEXPIRE … LT`` (only lowering a TTL), so a key changed meanwhile is left alone; the TTL
is the duration given, never above the group's maximum."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsctl.errors import RefusedError, UsageError
from opsctl.operations.model import Operation, Step

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.integrations.rediskv import Redis
    from opsctl.operations.progress import Progress
    from opsctl.settings import Service
    from opsctl.settings.services import Cache

KIND = "cache fix-ttl"
BATCH = 1000
SAMPLE = 10  # offenders shown per group
MEMORY_SAMPLE = 50  # keys without a TTL measured with MEMORY USAGE, per group
MAX_AUTO_GROUPS = 50
BUCKETS = [(60_000, "<1m"), (3_600_000, "1m-1h"), (86_400_000, "1h-1d"), (7 * 86_400_000, "1d-7d"),
           (30 * 86_400_000, "7d-30d")]  # fmt: skip


@dataclass
class Group:
    name: str
    pattern: str
    max_ttl_ms: int | None
    keys: int = 0
    without_ttl: int = 0
    over_max_ttl: int = 0
    sample: list[str] = field(default_factory=list)
    memory_bytes_sampled: int = 0
    memory_sampled_keys: int = 0

    def to_dict(self) -> dict[str, Any]:
        estimated = (
            round(self.memory_bytes_sampled / self.memory_sampled_keys * self.without_ttl)
            if self.memory_sampled_keys else 0
        )  # fmt: skip
        return {
            "pattern": self.pattern, "max_ttl_seconds": None if self.max_ttl_ms is None else self.max_ttl_ms / 1000,
            "keys": self.keys, "without_ttl": self.without_ttl, "over_max_ttl": self.over_max_ttl,
            "sample": self.sample, "memory_bytes_sampled": self.memory_bytes_sampled,
            "memory_sampled_keys": self.memory_sampled_keys, "memory_bytes_estimated": estimated,
        }  # fmt: skip


def text(key: bytes) -> str:
    return key.decode("utf-8", errors="backslashreplace")


class Classifier:
    """Which group a key is in, on the key's bytes (decoded only to be shown)."""

    def __init__(self, cache: Cache) -> None:
        import re

        self.prefix = cache.key_prefix.encode()
        self.groups: dict[str, Group] = {}
        self.configured: list[tuple[Any, Group]] = []
        for name, g in cache.groups.items():
            self.groups[name] = Group(name, g.pattern, _ms(g.max_ttl))
            regex = re.compile(fnmatch.translate(g.pattern).encode("utf-8"), re.DOTALL)
            self.configured.append((regex.match, self.groups[name]))
        self._auto: dict[bytes, Group] = {}

    def group(self, key: bytes) -> Group:
        rest = key[len(self.prefix) :] if key.startswith(self.prefix) else key
        for matches, group in self.configured:
            if matches(rest):
                return group
        head, sep, _ = rest.partition(b":")
        found = self._auto.get(head if sep else b"\0")
        if found is not None:
            return found
        name = f"{text(head)}:*" if sep else "(no ':' in the key)"
        if len(self._auto) >= MAX_AUTO_GROUPS:  # a keyspace of random names: bounded all the same
            name = "(other)"
        group = self.groups.get(name) or Group(name, name if name.endswith("*") else "*", None)
        self.groups[name] = group
        if name != "(other)":
            self._auto[head if sep else b"\0"] = group
        return group


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds() * 1000)


def bucket(pttl: int) -> str:
    if pttl < 0:
        return "none"
    for limit, name in BUCKETS:
        if pttl < limit:
            return name
    return ">30d"


def match_pattern(cache: Cache, match: str | None) -> str:
    """The SCAN pattern: the service's prefix (literal) and ``--match`` (a glob) or everything."""
    from opsctl.integrations.rediskv import escape_glob

    if match is not None and (not match or len(match) > 512 or any(ord(c) < 32 for c in match)):
        raise UsageError("--match: a glob pattern of printable characters, at most 512")
    if not cache.key_prefix and match is None:
        raise RefusedError("the service has no key_prefix: the audit would walk every key of the instance",
                           "pass --match '*' to mean that (or --match 'session:*' for part of it)")  # fmt: skip
    return escape_glob(cache.key_prefix) + (match if match is not None else "*")


# PTTL of a whole SCAN batch in one call, answered as one comma-separated string (one command to
# send and one value to parse, not one each per key).  The keys all live on the node that listed
# them but in any slots: passed as arguments (a cluster refuses KEYS of several slots), with the
# flag that lets the script reach them.
PTTLS = """#!lua flags=allow-cross-slot-keys,no-writes
local out = {}
for i, key in ipairs(ARGV) do out[i] = redis.call('PTTL', key) end
return table.concat(out, ',')
"""


def walk(redis: Redis, pattern: str, progress: Progress | None = None) -> Iterator[tuple[Any, list[bytes], list[int]]]:
    """Per batch of keys: the node's client, the keys and their PTTL (-2: gone meanwhile)."""
    from opsctl.integrations.rediskv import redis_errors, scan

    for where, client in redis.masters():
        with redis_errors(where, "scanning"):
            pttls = client.register_script(PTTLS)
            for keys in scan(client, pattern, count=BATCH):
                answer = pttls(args=keys)
                ttls = [int(t) for t in answer.split(b",")] if keys else []
                if progress is not None:
                    progress.update(advance=len(keys), status=f"node {where}")
                yield client, keys, ttls


def _total(redis: Redis) -> int:
    from opsctl.integrations.rediskv import redis_errors

    total = 0
    for where, client in redis.masters():
        with redis_errors(where, "DBSIZE"):
            total += int(client.dbsize())
    return total


def offender(group: Group, pttl: int) -> str | None:
    if pttl == -1:
        return "no TTL"
    if group.max_ttl_ms is not None and pttl > group.max_ttl_ms:
        return "over max"
    return None


def audit(ctx: Context, name: str, *, match: str | None = None, fix_ttl: timedelta | None = None) -> dict[str, Any]:
    from opsctl.integrations.rediskv import Redis, redis_errors

    service = ctx.service(name)
    cache = cache_of(service)
    pattern = match_pattern(cache, match)
    if fix_ttl is not None and fix_ttl.total_seconds() < 1:
        raise UsageError("--fix-ttl: at least 1s")
    redis = Redis((ctx.resolve(cache.redis_url) or "").strip(), cluster=cache.cluster)
    try:
        nodes = [where for where, _ in redis.masters()]
        progress = ctx.progress(f"cache audit {service.name}@{ctx.env}")
        progress.phase("scan", total=_total(redis), unit="keys")
        classes = Classifier(cache)
        histogram = dict.fromkeys(["none", *[b for _, b in BUCKETS], ">30d"], 0)
        scanned = vanished = 0
        for client, keys, ttls in walk(redis, pattern, progress):
            unmeasured: list[tuple[Group, bytes]] = []
            for key, pttl in zip(keys, ttls, strict=True):
                if pttl == -2:
                    vanished += 1
                    continue
                scanned += 1
                group = classes.group(key)
                group.keys += 1
                histogram[bucket(pttl)] += 1
                why = offender(group, pttl)
                if why is None:
                    continue
                if why == "no TTL":
                    group.without_ttl += 1
                    if group.memory_sampled_keys + len([g for g, _ in unmeasured if g is group]) < MEMORY_SAMPLE:
                        unmeasured.append((group, key))
                else:
                    group.over_max_ttl += 1
                if len(group.sample) < SAMPLE:
                    group.sample.append(text(key))
            if unmeasured:
                with redis_errors(redis.where, "MEMORY USAGE"):
                    pipe = client.pipeline(transaction=False)
                    for _, key in unmeasured:
                        pipe.memory_usage(key, samples=0)
                    for (group, _), used in zip(unmeasured, pipe.execute(raise_on_error=False), strict=True):
                        if isinstance(used, int):
                            group.memory_bytes_sampled += used
                            group.memory_sampled_keys += 1
        progress.close()
        without = sum(g.without_ttl for g in classes.groups.values())
        over = sum(g.over_max_ttl for g in classes.groups.values())
        report: dict[str, Any] = {
            "service": service.name, "env": ctx.env, "pattern": pattern, "cluster": redis.is_cluster, "nodes": nodes,
            "scanned": scanned, "vanished": vanished, "without_ttl": without, "over_max_ttl": over,
            "groups": {g.name: g.to_dict() for g in classes.groups.values() if g.keys or g.name in cache.groups},
            "ttl_histogram": histogram, "violations": without + over, "fixed": None,
        }  # fmt: skip
        if fix_ttl is not None and (without or over):
            report["fixed"] = fix(ctx, service, cache, redis, pattern, fix_ttl, without + over, report)
        return report
    finally:
        redis.close()


def cache_of(service: Service) -> Cache:
    if service.cache is None:
        raise UsageError(f"service {service.name} has no cache block", "add cache: {redis_url, key_prefix}")
    return service.cache


def fix(ctx: Context, service: Service, cache: Cache, redis: Redis, pattern: str, ttl: timedelta, count: int,
        report: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    from opsctl.operations.runner import execute

    seconds = ttl.total_seconds()
    params = {"pattern": pattern, "ttl": seconds, "offenders": count}
    sample = [k for g in report["groups"].values() for k in g["sample"]][:20]
    op = Operation(KIND, service, params, lock="cache", env=ctx.env,
                   confirm=f"set a TTL (at most {seconds:.0f}s) on {count} key(s) of {service.name} matching {pattern}",
                   resume_hint="rerun: keys fixed already are left alone")  # fmt: skip

    def plan(run: Any) -> list[Step]:
        def apply(r: Any) -> dict[str, Any]:
            return _apply_ttl(r, cache, redis, pattern, int(seconds * 1000))

        return [Step("set ttl", f"PEXPIRE NX (no TTL) / LT (over the group's max) → {seconds:.0f}s", pattern,
                     detail={"offenders": count, "sample": sample}, apply=apply,
                     undo="none: the TTL is what the policy requires")]  # fmt: skip

    result = execute(ctx, op, plan)
    if result.dry_run:
        return {"dry_run": True, "plan": result.plan, "offenders": count}
    done = result.results.get("set ttl") or {}
    return {**done, "run_id": result.run_id, "ttl_seconds": seconds}


def _apply_ttl(run: Any, cache: Cache, redis: Redis, pattern: str, ttl_ms: int) -> dict[str, Any]:
    from opsctl.integrations.rediskv import redis_errors

    classes = Classifier(cache)
    set_none = lowered = 0
    run.progress.phase("set ttl", total=None, unit="keys")
    for client, keys, ttls in walk(redis, pattern):
        run.checkpoint()
        pipe = client.pipeline(transaction=False)
        kinds: list[str] = []
        for key, pttl in zip(keys, ttls, strict=True):
            group = classes.group(key)
            why = offender(group, pttl)
            if why is None:
                continue
            target = ttl_ms if group.max_ttl_ms is None else min(ttl_ms, group.max_ttl_ms)
            pipe.execute_command("PEXPIRE", key, target, "NX" if why == "no TTL" else "LT")
            kinds.append(why)
        if kinds:
            with redis_errors(redis.where, "PEXPIRE"):
                answers = pipe.execute(raise_on_error=False)
            for why, changed in zip(kinds, answers, strict=True):
                if changed == 1:
                    set_none += why == "no TTL"
                    lowered += why != "no TTL"
            run.progress.update(advance=len(kinds), status=f"{set_none + lowered} keys fixed")
            run.save(fixed={"set": set_none, "lowered": lowered})
    return {"set": set_none, "lowered": lowered, "keys": set_none + lowered}
