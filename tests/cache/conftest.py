"""Fixtures of the cache tests: a client of the real Redis and a key prefix of the test's own
(database 0 is shared with the rest of the suite: every key a test makes is under its prefix)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL)
    yield client
    client.close()


@pytest.fixture
def prefix(r: redis.Redis) -> Iterator[str]:
    value = f"t{secrets.token_hex(4)}:"
    yield value
    keys = list(r.scan_iter(match=value + "*", count=1000))
    if keys:
        r.delete(*keys)
