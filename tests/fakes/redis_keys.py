"""Bulk key loading for Redis tests and benchmarks: :func:`load_keys` and the deterministic :func:`keyspace`.

:func:`load_keys` writes ``SET key key`` (the value is the key's own name, so a reader can check it)
and ``PEXPIRE key ttl_ms`` for keys with a TTL, in non-transactional pipelines of at most ``batch``
commands. The same code serves a plain :class:`redis.Redis` and a :class:`redis.cluster.RedisCluster`:
the cluster's pipeline routes each command to the master owning its slot and sends one batch per node.

:func:`keyspace` yields ``(key, ttl_ms | None)`` pairs shaped like a cache/session store:
``<prefix>session:<i>`` (about half), ``<prefix>feed:<i>`` (about 30 %) and ``<prefix>user:<i>``
(about 20 %); about 10 % have no TTL, about a quarter expire in exactly 30 days, the others in
minutes to days depending on the kind. Keep braces out of ``prefix``: ``{...}`` is a hash tag and
would put every key into one slot.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
THIRTY_DAYS_MS = 30 * DAY_MS
NO_TTL_SHARE = 0.10
THIRTY_DAYS_SHARE = 0.25

# kind: (share of the keys, shortest TTL, longest TTL) for the keys with neither no TTL nor 30 days
_KINDS: tuple[tuple[str, float, int, int], ...] = (
    ("session", 0.50, 5 * MINUTE_MS, DAY_MS),
    ("feed", 0.30, HOUR_MS, 7 * DAY_MS),
    ("user", 0.20, MINUTE_MS, 3 * DAY_MS),
)


def _kind(pick: float) -> tuple[str, int, int]:
    """The kind whose share of [0, 1) holds ``pick``, with its TTL bounds."""
    for kind, share, shortest, longest in _KINDS:
        if pick < share:
            return kind, shortest, longest
        pick -= share
    kind, _, shortest, longest = _KINDS[-1]  # float rounding at the very top
    return kind, shortest, longest


def keyspace(n: int, prefix: str, seed: int) -> Iterator[tuple[str, int | None]]:
    """``n`` distinct ``(key, ttl_ms or None)`` pairs, the same for the same ``seed``."""
    rng = random.Random(seed)
    for i in range(n):
        kind, shortest, longest = _kind(rng.random())
        draw = rng.random()
        ttl: int | None
        if draw < NO_TTL_SHARE:
            ttl = None
        elif draw < NO_TTL_SHARE + THIRTY_DAYS_SHARE:
            ttl = THIRTY_DAYS_MS
        else:
            ttl = rng.randint(shortest, longest)
        yield f"{prefix}{kind}:{i}", ttl


def load_keys(client: Any, keys: Iterable[tuple[str, int | None]], *, batch: int = 5000) -> int:
    """Write every ``(key, ttl_ms)``: SET, then PEXPIRE unless the TTL is None; return the number of keys.

    Commands go out in non-transactional pipelines of at most ``batch`` commands (a key's SET and
    PEXPIRE stay in the same pipeline); ``client`` is a ``redis.Redis`` or a ``redis.cluster.RedisCluster``.
    """
    if batch < 2:
        raise ValueError(f"batch must be at least 2 (a SET and its PEXPIRE), not {batch}")
    written = 0
    queued = 0
    with client.pipeline(transaction=False) as pipe:
        for key, ttl in keys:
            needed = 1 if ttl is None else 2
            if queued + needed > batch:
                pipe.execute()
                queued = 0
            pipe.set(key, key)
            if ttl is not None:
                pipe.pexpire(key, ttl)
            queued += needed
            written += 1
        if queued:
            pipe.execute()
    return written
