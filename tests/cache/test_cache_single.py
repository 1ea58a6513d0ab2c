"""`cache audit` and `cache invalidate` through the real CLI on the real Redis (127.0.0.1:6379),
each test in its own key prefix (database 0 is shared with the rest of the suite)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cache.conftest import URL
from tests.cli.conftest import Runner

DAY = 86_400_000

CONFIG = """\
version: 1
environments: [production]
default_env: production
teams: {{platform: {{}}}}
services:
  - name: api
    tier: 2
    owner: platform
    cache:
      redis_url: "{url}"
      key_prefix: "{prefix}"
      groups:
        session: {{pattern: "session:*", max_ttl: 7d}}
        user: {{pattern: "user:*"}}
      entities:
        user: ["user:{{id}}", "user:{{id}}:*", "feed:{{id}}"]
      events: {events}
"""


@pytest.fixture
def cli(isolated: Path) -> Runner:
    return Runner(dict(os.environ))


def write_config(tmp: Path, prefix: str, *, events: str = "{channel: entity-updates}", url: str = URL) -> Path:
    path = tmp / "opsctl.yaml"
    path.write_text(CONFIG.format(url=url, prefix=prefix, events=events))
    return path


def seed(r: redis.Redis, prefix: str) -> dict[str, int | None]:
    """A keyspace: sessions (one of them 30 days: over the 7-day max), users, feeds; some without TTL."""
    keys: dict[str, int | None] = {}
    for i in range(40):
        keys[f"session:{i}"] = 7_200_000 if i != 7 else 30 * DAY
    for i in range(25):
        keys[f"user:{i}"] = None if i % 5 == 0 else 600_000
    for i in range(10):
        keys[f"feed:{i}"] = None if i < 2 else 90 * DAY  # feed has no group max: 90 days is allowed
    pipe = r.pipeline(transaction=False)
    for key, ttl in keys.items():
        pipe.set(prefix + key, "x" * 100)
        if ttl is not None:
            pipe.pexpire(prefix + key, ttl)
    pipe.execute()
    r.set("unprefixed-neighbour-" + prefix, "keep")  # outside the prefix: never counted, never touched
    return keys


def test_the_audit_counts_exactly_and_exits_1(r: redis.Redis, prefix: str, isolated: Path, cli: Runner) -> None:
    seed(r, prefix)
    config = write_config(isolated, prefix)
    a = cli("--config", str(config), "-o", "json", "cache", "audit", "api")
    assert a.code == 1, a.stderr
    report = a.json()
    assert report["scanned"] == 75 and report["without_ttl"] == 5 + 2 and report["over_max_ttl"] == 1
    groups = report["groups"]
    assert groups["session"]["keys"] == 40 and groups["session"]["over_max_ttl"] == 1
    assert groups["session"]["sample"] == [prefix + "session:7"] and groups["session"]["without_ttl"] == 0
    assert groups["user"]["without_ttl"] == 5 and groups["user"]["memory_sampled_keys"] == 5
    assert groups["user"]["memory_bytes_sampled"] >= 5 * 100
    assert groups["feed:*"]["keys"] == 10 and groups["feed:*"]["without_ttl"] == 2
    assert sorted(groups["feed:*"]["sample"]) == [prefix + "feed:0", prefix + "feed:1"]
    assert report["ttl_histogram"]["none"] == 7 and report["ttl_histogram"][">30d"] == 8
    assert (
        report["ttl_histogram"]["1h-1d"] == 39
        and report["ttl_histogram"]["1m-1h"] == 20
        and sum(report["ttl_histogram"].values()) == 75
    )
    assert "break the TTL policy" in a.stderr
    table = cli("--config", str(config), "cache", "audit", "api", "--match", "session:*")
    assert table.code == 1 and "40 keys, 0 without a TTL, 1 over" in table.stderr + table.stdout


def test_fix_ttl_fixes_only_the_offenders(r: redis.Redis, prefix: str, isolated: Path, cli: Runner) -> None:
    keys = seed(r, prefix)
    config = write_config(isolated, prefix)
    dry = cli("--config", str(config), "--dry-run", "-o", "json", "cache", "audit", "api", "--fix-ttl", "1d")
    assert dry.code == 1 and dry.json()["fixed"]["offenders"] == 8, dry.stderr
    assert r.ttl(prefix + "user:0") == -1  # the dry run changed nothing
    before = {k: r.pttl(prefix + k) for k, ttl in keys.items() if ttl is not None and k != "session:7"}
    fixed = cli("--config", str(config), "--yes", "-o", "json", "cache", "audit", "api", "--fix-ttl", "1d")
    assert fixed.code == 0, fixed.stderr
    assert fixed.json()["fixed"]["set"] == 7 and fixed.json()["fixed"]["lowered"] == 1
    for key in ("user:0", "user:5", "feed:0", "feed:1"):
        assert 0 < r.pttl(prefix + key) <= DAY
    assert 0 < r.pttl(prefix + "session:7") <= DAY  # lowered from 30 days, to 1 d (under the group's 7 d)
    for key, ttl in before.items():  # the others were not touched
        assert abs(r.pttl(prefix + key) - ttl) < 60_000, key
    assert r.ttl("unprefixed-neighbour-" + prefix) == -1
    again = cli("--config", str(config), "-o", "json", "cache", "audit", "api")
    assert again.code == 0 and again.json()["violations"] == 0, again.stdout
    audit = cli("--config", str(config), "-o", "json", "audit", "--service", "api").json()
    assert [(a["command"], a["outcome"], a["dry_run"]) for a in audit] == [
        ("cache fix-ttl", "ok", True),
        ("cache fix-ttl", "started", False),
        ("cache fix-ttl", "ok", False),
    ]
    r.delete("unprefixed-neighbour-" + prefix)


def test_the_whole_instance_is_refused_without_match(r: redis.Redis, isolated: Path, cli: Runner) -> None:
    config = write_config(isolated, "")
    refused = cli("--config", str(config), "cache", "audit", "api")
    assert refused.code == 3 and "every key of the instance" in refused.stderr and "--match" in refused.stderr


def test_a_dead_redis_is_exit_4_with_its_address(isolated: Path, cli: Runner) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(isolated, "x:", url=f"redis://127.0.0.1:{port}/0")
    started = time.monotonic()
    dead = cli("--config", str(config), "cache", "audit", "api", timeout=60)
    assert dead.code == 4 and f"127.0.0.1:{port}" in dead.stderr and "Traceback" not in dead.stderr, dead.stderr
    assert time.monotonic() - started < 30  # bounded retries, not redis-py's default hang
    inval = cli("--config", str(config), "--yes", "cache", "invalidate", "api", "user", "1")
    assert inval.code == 4 and f"127.0.0.1:{port}" in inval.stderr


def test_invalidate_deletes_exactly_the_mapped_keys_and_a_subscriber_gets_the_event(
    r: redis.Redis, prefix: str, isolated: Path, cli: Runner
) -> None:
    for key in (
        "user:42",
        "user:42:profile",
        "user:42:settings",
        "feed:42",
        "user:420",
        "user:4",
        "feed:43",
        "session:42",
    ):
        r.set(prefix + key, "v", ex=600)
    r.set(prefix + "user:*", "literal star")  # an id is literal: 'user:*' must not mean every user
    config = write_config(isolated, prefix)
    dry = cli("--config", str(config), "--dry-run", "-o", "json", "cache", "invalidate", "api", "user", "42")
    assert dry.code == 0, dry.stderr
    assert sorted(dry.json()["keys"]) == sorted(prefix + k for k in ("user:42", "user:42:profile", "user:42:settings",
                                                                     "feed:42"))  # fmt: skip
    assert r.exists(prefix + "user:42")
    received: list[dict[str, Any]] = []
    pubsub = r.pubsub()
    pubsub.subscribe("entity-updates")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]

    def listen() -> None:
        message = pubsub.get_message(timeout=30)
        while message is not None and message["type"] != "message":
            message = pubsub.get_message(timeout=30)
        if message is not None:
            received.append(json.loads(message["data"]))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    done = cli("--config", str(config), "--yes", "-o", "json", "cache", "invalidate", "api", "user", "42")
    listener.join(30)
    pubsub.close()
    assert done.code == 0, done.stderr
    result = done.json()
    assert sorted(result["deleted"]) == sorted(dry.json()["keys"])
    for key in ("user:420", "user:4", "feed:43", "session:42", "user:*"):
        assert r.exists(prefix + key), key
    assert not r.exists(prefix + "user:42") and not r.exists(prefix + "user:42:profile")
    (event,) = received
    assert event["type"] == "EntityUpdated" and event["entity"] == "user" and event["id"] == "42"
    assert event["time"] and len(event["trace_id"]) == 32 and result["event"]["receivers"] == 1
    star = cli("--config", str(config), "--yes", "-o", "json", "cache", "invalidate", "api", "user", "*")
    assert star.code == 0 and star.json()["deleted"] == [prefix + "user:*"]  # only the literal key
    assert r.exists(prefix + "user:420")


def test_invalidate_to_a_stream_with_renamed_fields(r: redis.Redis, prefix: str, isolated: Path, cli: Runner) -> None:
    stream = prefix + "events"
    config = write_config(isolated, prefix, events=f'{{stream: "{stream}", fields: {{entity: kind, id: entity_id}}}}')
    r.set(prefix + "feed:7", "v", ex=600)
    done = cli("--config", str(config), "--yes", "-o", "json", "cache", "invalidate", "api", "user", "7", "8")
    assert done.code == 0, done.stderr
    assert done.json()["deleted"] == [prefix + "feed:7"]
    entries = r.xrange(stream)
    assert [(e[1][b"kind"], e[1][b"entity_id"], e[1][b"type"]) for e in entries] == [
        (b"user", b"7", b"EntityUpdated"),
        (b"user", b"8", b"EntityUpdated"),
    ]
    unknown = cli("--config", str(config), "--yes", "cache", "invalidate", "api", "order", "1")
    assert unknown.code == 2 and "not in cache.entities" in unknown.stderr
