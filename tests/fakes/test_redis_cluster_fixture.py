"""The real Redis Cluster fixture: its shape, where keys land, bulk loading, flushing, and the rebuild after a kill.

One cluster serves the whole file (session fixture); the kill test comes last but one, and the test after
it gets a rebuilt cluster from the ``cluster`` fixture.
"""

from __future__ import annotations

import time

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.fakes.redis_cluster import BUS_OFFSET, MAX_PORT, Cluster, cluster_nodes, prepare
from tests.fakes.redis_keys import DAY_MS, THIRTY_DAYS_MS, keyspace, load_keys


def _keys_on(cluster: Cluster, port: int) -> set[str]:
    with cluster.node(port) as node:
        return set(node.scan_iter(count=2000))


def _slot_owner(cluster: Cluster) -> dict[int, int]:
    """Slot -> port of the master serving it, from CLUSTER SLOTS (not from the client's routing)."""
    owner: dict[int, int] = {}
    with cluster.node(cluster.ports[0]) as node:
        for start, end, master, *_ in node.execute_command("CLUSTER", "SLOTS"):
            owner.update(dict.fromkeys(range(int(start), int(end) + 1), int(master[1])))
    return owner


def _pttls(cluster: Cluster, port: int, keys: set[str]) -> dict[str, int]:
    ordered = sorted(keys)
    with cluster.node(port) as node, node.pipeline(transaction=False) as pipe:
        for key in ordered:
            pipe.pttl(key)
        return dict(zip(ordered, pipe.execute(), strict=True))


def test_three_masters_with_one_replica_each(cluster: Cluster) -> None:
    ports = cluster.ports
    assert len(ports) == 6 and len(set(ports)) == 6
    assert all(port <= MAX_PORT for port in ports)
    assert not {port + BUS_OFFSET for port in ports} & set(ports)  # no node on another's bus port
    assert cluster.url == f"redis://127.0.0.1:{ports[0]}/0"
    assert cluster.urls == [f"redis://127.0.0.1:{port}/0" for port in ports]

    masters = cluster.masters()
    assert sorted(masters) == sorted(ports[:3])  # redis-cli made the first three the masters
    replicas = cluster.replicas()
    assert sorted(replicas) == sorted(ports[3:])
    assert sorted(replicas.values()) == sorted(masters)  # exactly one replica per master

    expected = {port: "master" if port in masters else "slave" for port in ports}
    for port in ports:
        assert cluster_nodes(port) == expected  # every node's CLUSTER NODES agrees with the nodes' ROLE
    assert set(_slot_owner(cluster).values()) == set(masters)
    assert len(_slot_owner(cluster)) == 16384

    client = RedisCluster.from_url(cluster.url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
    with client:
        assert client.set("via-url", "1") and client.get("via-url") == "1"


def test_keys_written_through_the_cluster_client_land_on_every_master(cluster: Cluster) -> None:
    keys = [f"spread:{i}" for i in range(3000)]
    with cluster.client() as client:
        assert client.mset_nonatomic({key: key for key in keys})
        assert client.get("spread:1234") == "spread:1234"

    owner = _slot_owner(cluster)
    shares = {port: _keys_on(cluster, port) for port in cluster.masters()}
    assert len(shares) == 3
    for port, share in shares.items():
        assert 0.25 * len(keys) < len(share) < 0.42 * len(keys), (port, len(share))  # about a third each
        assert {owner[key_slot(key.encode())] for key in share} == {port}  # only keys of its own slots
    assert sum(len(share) for share in shares.values()) == len(keys)
    assert set().union(*shares.values()) == set(keys)


def test_load_keys_writes_the_keyspace_with_its_ttls(cluster: Cluster) -> None:
    expected = dict(keyspace(30_000, "lk:", seed=7))
    assert dict(keyspace(30_000, "lk:", seed=7)) == expected  # deterministic
    assert dict(keyspace(30_000, "lk:", seed=8)) != expected
    without_ttl = {key for key, ttl in expected.items() if ttl is None}
    assert 0.08 < len(without_ttl) / len(expected) < 0.12
    assert {key.split(":")[1] for key in expected} == {"session", "user", "feed"}
    ttls = [ttl for ttl in expected.values() if ttl is not None]
    assert ttls.count(THIRTY_DAYS_MS) > 0.15 * len(expected) and min(ttls) < DAY_MS

    began = time.monotonic()
    with cluster.client() as client:
        assert load_keys(client, expected.items(), batch=5000) == 30_000
        sample = list(expected)[::1000]
        assert client.mget_nonatomic(sample) == sample  # the value is the key's name
    slack_ms = int((time.monotonic() - began) * 1000) + 5000

    seen: dict[str, int] = {}
    for port in cluster.masters():
        share = _keys_on(cluster, port)
        assert share and not share & seen.keys()
        seen.update(_pttls(cluster, port, share))
    assert seen.keys() == expected.keys()
    assert {key for key, pttl in seen.items() if pttl == -1} == without_ttl
    for key, pttl in seen.items():
        ttl = expected[key]
        if ttl is not None:
            assert ttl - slack_ms < pttl <= ttl, (key, ttl, pttl)


def test_flush_empties_every_node(cluster: Cluster) -> None:
    with cluster.client() as client:
        client.mset_nonatomic({f"flush:{i}": "x" for i in range(300)})
    masters = cluster.masters()
    before = {}
    for port in masters:
        with cluster.node(port) as node:
            before[port] = node.dbsize()
    assert sum(before.values()) == 300 and all(before.values())

    cluster.flush()  # replicas answer READONLY to FLUSHALL: ignored

    for port in masters:
        with cluster.node(port) as node:
            assert node.dbsize() == 0
    deadline = time.monotonic() + 10  # replicas follow their master's FLUSHALL asynchronously
    for port in cluster.replicas():
        with cluster.node(port) as node:
            while node.dbsize() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert node.dbsize() == 0
    with cluster.client() as client:
        assert client.get("flush:7") is None


def test_a_killed_master_fails_fast_and_the_next_preparation_rebuilds(cluster: Cluster) -> None:
    victim = cluster.masters()[0]
    ports, rebuilds = list(cluster.ports), cluster.rebuilds

    cluster.kill(victim)

    assert cluster.procs[victim].poll() is not None
    began = time.monotonic()
    with cluster.node(victim) as node, pytest.raises(RedisConnectionError):
        node.ping()
    assert time.monotonic() - began < 3  # the fixture's clients fail fast on a dead node
    assert not cluster.alive(victim)
    assert victim not in cluster.masters()
    assert not cluster.healthy()

    assert prepare(cluster) is cluster  # what the `cluster` fixture does before the next test: updated in place
    assert cluster.rebuilds == rebuilds + 1
    assert cluster.ports != ports
    assert all(cluster.alive(port) for port in cluster.ports)
    assert cluster.healthy()
    assert sorted(cluster.masters()) == sorted(cluster.ports[:3])
    assert len(cluster.replicas()) == 3

    with cluster.client() as client:
        assert load_keys(client, keyspace(600, "after:", seed=1)) == 600
    counts = []
    for port in cluster.masters():
        with cluster.node(port) as node:
            counts.append(node.dbsize())
    assert sum(counts) == 600 and all(counts)
