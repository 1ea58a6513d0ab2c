"""A real Redis Cluster for tests: six ``redis-server`` processes (3 masters, 3 replicas) on loopback, and its fixtures.

:func:`start_cluster` picks six ports whose cluster bus port (port + 10000) is free as well, starts one
``redis-server --cluster-enabled yes`` per port as a child process (its own process group, its log and
``nodes-<port>.conf`` in ``<base>/<port>``), waits for each to answer PING, joins them with
``redis-cli --cluster create ... --cluster-replicas 1`` (the first three ports become the masters) and
waits until every node says ``cluster_state:ok``, the roles are 3 masters and 3 linked replicas, and a
:class:`redis.cluster.RedisCluster` client can write and read keys on every master. Every wait is bounded;
a failure raises :class:`RuntimeError` with the nodes' log tails. :func:`stop_cluster` sends SIGTERM, then
SIGKILL after 5 s, and removes the base dir.

The clients made here (:func:`node_client`, :meth:`Cluster.client`) use 2 s socket timeouts and a single
immediate retry: redis-py's default (10 retries with backoff) turns a dead node into a hang of many seconds.

Fixtures (registered in tests/conftest.py):

* ``redis_cluster`` (session): one cluster for the whole run, under ``tempfile.mkdtemp(prefix="opsctl-rcluster-")``;
* ``cluster`` (per test): the same :class:`Cluster`, emptied (:meth:`Cluster.flush`) before the test. If a
  previous test left a node dead (:meth:`Cluster.kill`) or the cluster unhealthy, the whole cluster is
  rebuilt first (stop, then start anew on new ports; the session object is updated in place).

    def test_x(cluster):
        client = cluster.client()
        client.set("k", "v")
        assert len(cluster.masters()) == 3
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import redis
    from redis.cluster import RedisCluster

REDIS_SERVER = os.environ.get("OPSCTL_TEST_REDIS_SERVER", "/usr/bin/redis-server")
REDIS_CLI = os.environ.get("OPSCTL_TEST_REDIS_CLI", "/usr/bin/redis-cli")
HOST = "127.0.0.1"
NODES = 6
MASTERS = 3
BUS_OFFSET = 10000  # Redis Cluster's bus listens on port + 10000
MAX_PORT = 65535 - BUS_OFFSET
MIN_PORT = 10000
NODE_TIMEOUT_MS = 2000
PING_TIMEOUT = 20.0  # hang guards, not expectations
CREATE_TIMEOUT = 60.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
SOCKET_TIMEOUT = 2.0
START_ATTEMPTS = 3  # a port taken between picking and binding: start again on other ports


# ------------------------------------------------------------------ clients


def _retry() -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 1)


def node_client(port: int) -> redis.Redis:
    """A plain client on one node (strings decoded), failing fast when the node is gone."""
    import redis

    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=_retry(),
        decode_responses=True,
    )


def _cluster_info(port: int) -> dict[str, str]:
    with node_client(port) as client:
        text = client.execute_command("CLUSTER", "INFO")
    if isinstance(text, dict):  # in case a response callback parsed it already
        return {str(k): str(v) for k, v in text.items()}
    lines = (line.partition(":") for line in str(text).splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, _, value in lines}


def cluster_nodes(port: int) -> dict[int, str]:
    """The node's view (CLUSTER NODES) of every node: port -> ``master``, ``slave``, or ``<role>,<bad flags>``
    (flags such as ``fail``, ``fail?``, ``handshake`` or ``noaddr``)."""
    with node_client(port) as client:
        text = str(client.execute_command("CLUSTER", "NODES"))
    view: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        address = fields[1].split("@")[0]
        flags = set(fields[2].split(",")) - {"myself", "nofailover"}
        role = "master" if "master" in flags else "slave" if "slave" in flags else "?"
        bad = sorted(flags - {"master", "slave"})
        view[int(address.rsplit(":", 1)[1])] = ",".join([role, *bad])
    return view


def _role(port: int) -> list[Any]:
    with node_client(port) as client:
        return list(client.execute_command("ROLE"))


# ------------------------------------------------------------------ the cluster


@dataclass
class Cluster:
    """Six nodes on ``ports`` (the first three started as masters), each with its dir ``base/<port>``."""

    ports: list[int]
    base: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False, compare=False)
    started_in: float = 0.0  # seconds start_cluster took (for the record)
    rebuilds: int = 0  # times the ``cluster`` fixture rebuilt it after a dead node

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.ports[0]}/0"

    @property
    def urls(self) -> list[str]:
        return [f"redis://{HOST}:{port}/0" for port in self.ports]

    def client(self) -> RedisCluster:
        """A cluster client (strings decoded) bootstrapped from every node, failing fast on a dead one."""
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(
            startup_nodes=[ClusterNode(HOST, port) for port in self.ports],  # type: ignore[no-untyped-call]
            retry=_retry(),
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            decode_responses=True,
        )

    def node(self, port: int) -> redis.Redis:
        """A plain client on one node; use it with ``with`` (it is closed on exit)."""
        return node_client(port)

    def masters(self) -> list[int]:
        """The ports whose node says (ROLE, asked now) it is a master; dead nodes are left out."""
        from redis.exceptions import RedisError

        found = []
        for port in self.ports:
            try:
                if _role(port)[0] == "master":
                    found.append(port)
            except (RedisError, OSError):
                continue
        return found

    def replicas(self) -> dict[int, int]:
        """Each live replica's port and the port of the master it replicates (ROLE, asked now)."""
        from redis.exceptions import RedisError

        found = {}
        for port in self.ports:
            try:
                role = _role(port)
            except (RedisError, OSError):
                continue
            if role[0] == "slave":
                found[port] = int(role[2])
        return found

    def alive(self, port: int) -> bool:
        """The node's process runs and answers PING."""
        from redis.exceptions import RedisError

        proc = self.procs.get(port)
        if proc is None or proc.poll() is not None:
            return False
        try:
            with node_client(port) as client:
                return bool(client.ping())
        except (RedisError, OSError):
            return False

    def healthy(self) -> bool:
        """Every node alive and ``cluster_state:ok``, and three masters."""
        from redis.exceptions import RedisError

        if not all(self.alive(port) for port in self.ports):
            return False
        try:
            if any(_cluster_info(port).get("cluster_state") != "ok" for port in self.ports):
                return False
        except (RedisError, OSError):
            return False
        return len(self.masters()) == MASTERS

    def kill(self, port: int) -> None:
        """SIGKILL one node (for dead-node tests); the ``cluster`` fixture rebuilds the cluster for the next test."""
        proc = self.procs[port]
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)

    def flush(self) -> None:
        """FLUSHALL on every master (replicas answer READONLY: ignored; they follow their master)."""
        from redis.exceptions import ReadOnlyError

        for port in self.ports:
            with node_client(port) as client:
                try:
                    client.flushall()
                except ReadOnlyError:
                    continue

    def log_tail(self, port: int, lines: int = 15) -> str:
        try:
            text = (self.base / str(port) / "redis.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def logs(self, ports: list[int] | None = None) -> str:
        return "\n".join(f"--- node {p} ---\n{self.log_tail(p)}" for p in (self.ports if ports is None else ports))


# ------------------------------------------------------------------ ports


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_ports(count: int = NODES) -> list[int]:
    """``count`` ports ≤ 55535, each bindable and with its bus port (+10000) bindable, no two overlapping.

    Ports whose pair stays out of the kernel's ephemeral range are preferred, so an outgoing
    connection cannot take one between the pick and the server's bind.
    """
    low, high = _ephemeral_range()
    everything = range(MIN_PORT, MAX_PORT + 1)
    quiet = [p for p in everything if not (low <= p <= high or low <= p + BUS_OFFSET <= high)]
    rng = random.Random()
    picked: list[int] = []
    taken: set[int] = set()
    for pool in (quiet, everything):
        for _ in range(2000 if pool else 0):
            port = rng.choice(pool)
            if port in taken or port + BUS_OFFSET in taken:
                continue
            if _bindable(port) and _bindable(port + BUS_OFFSET):
                picked.append(port)
                taken.update((port, port + BUS_OFFSET))
                if len(picked) == count:
                    return picked
    raise RuntimeError(f"found only {len(picked)} of {count} free port pairs (port and port+{BUS_OFFSET})")


# ------------------------------------------------------------------ processes


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies (PR_SET_PDEATHSIG), so no node outlives a killed run."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (AttributeError, OSError):  # not Linux: the teardown alone stops it
        pass


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)  # its own process group (process_group=0): pgid == pid
    except ProcessLookupError:
        pass


def _spawn(base: Path, port: int) -> subprocess.Popen[bytes]:
    workdir = base / str(port)
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        REDIS_SERVER,
        "--port", str(port),
        "--bind", HOST,
        "--cluster-enabled", "yes",
        "--cluster-config-file", f"nodes-{port}.conf",
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--daemonize", "no",
    ]  # fmt: skip
    with (workdir / "redis.log").open("ab") as log:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            process_group=0,
            preexec_fn=_die_with_parent,
        )


def _terminate(procs: dict[int, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every node, SIGKILL those still running 5 s later."""
    for proc in procs.values():
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)


class _PortTaken(Exception):
    """A node could not bind its port (taken after we picked it): start again on other ports."""


def _wait_for_ping(cluster: Cluster) -> None:
    from redis.exceptions import RedisError

    deadline = time.monotonic() + PING_TIMEOUT
    waiting = list(cluster.ports)
    while waiting:
        for port in list(waiting):
            proc = cluster.procs[port]
            if proc.poll() is not None:
                tail = cluster.log_tail(port)
                if "Address already in use" in tail:
                    raise _PortTaken(port)
                raise RuntimeError(f"redis-server on port {port} exited ({proc.returncode}); its log ends:\n{tail}")
            try:
                with node_client(port) as client:
                    if client.ping():
                        waiting.remove(port)
            except (RedisError, OSError):
                pass
        if waiting:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no PING answer within {PING_TIMEOUT:g}s from {waiting}:\n{cluster.logs(waiting)}")
            time.sleep(0.05)


def _create(cluster: Cluster) -> None:
    command = [REDIS_CLI, "--cluster", "create", *(f"{HOST}:{port}" for port in cluster.ports)]
    command += ["--cluster-replicas", "1", "--cluster-yes"]
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CREATE_TIMEOUT, cwd=cluster.base
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"redis-cli --cluster create did not finish in {CREATE_TIMEOUT:g}s") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-3000:]
        raise RuntimeError(f"redis-cli --cluster create failed ({done.returncode}):\n{output}\n{cluster.logs()}")


def _not_ready(cluster: Cluster) -> str | None:
    """Why the cluster cannot be used yet, or None when it can."""
    from redis.exceptions import RedisError

    try:
        for port in cluster.ports:
            info = _cluster_info(port)
            if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(NODES):
                return (
                    f"node {port}: cluster_state={info.get('cluster_state')}, nodes={info.get('cluster_known_nodes')}"
                )
        for port in cluster.ports:  # every node's gossip has caught up with the roles
            view = cluster_nodes(port)
            if sorted(view.values()) != ["master"] * MASTERS + ["slave"] * (NODES - MASTERS):
                return f"node {port} sees {view}"
        masters = cluster.masters()
        if len(masters) != MASTERS:
            return f"masters: {masters}"
        replicas = cluster.replicas()
        if sorted(set(replicas.values())) != sorted(masters) or len(replicas) != NODES - MASTERS:
            return f"replicas (port: master): {replicas}, masters {masters}"
        with cluster.client() as client:
            keys = [f"opsctl-ready:{i}" for i in range(30)]  # slots spread over every master
            owners = {client.get_node_from_key(key).port for key in keys}
            if owners != set(masters):
                return f"the client routes keys to {sorted(owners)}, masters are {masters}"
            for key in keys:
                client.set(key, key)
            if [client.get(key) for key in keys] != keys:
                return "keys written through RedisCluster did not read back"
            client.delete(*keys)  # split by slot by the client
    except (RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _wait_ready(cluster: Cluster) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while (reason := _not_ready(cluster)) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster was not ready within {READY_TIMEOUT:g}s: {reason}\n{cluster.logs()}")
        time.sleep(0.1)


def start_cluster(base: Path) -> Cluster:
    """Start six nodes under ``base`` and join them into a cluster of 3 masters with one replica each."""
    began = time.monotonic()
    base.mkdir(parents=True, exist_ok=True)
    for _ in range(START_ATTEMPTS):
        cluster = Cluster(ports=pick_ports(), base=base)
        try:
            for port in cluster.ports:
                cluster.procs[port] = _spawn(base, port)
            _wait_for_ping(cluster)
            _create(cluster)
            _wait_ready(cluster)
        except _PortTaken:
            _terminate(cluster.procs)
            for port in cluster.ports:
                shutil.rmtree(base / str(port), ignore_errors=True)
            continue
        except BaseException:
            _terminate(cluster.procs)  # the logs stay under base for a look
            raise
        cluster.started_in = time.monotonic() - began
        return cluster
    raise RuntimeError(f"every one of {START_ATTEMPTS} attempts met a port taken after it was picked")


def stop_cluster(cluster: Cluster) -> None:
    """SIGTERM every node, SIGKILL after 5 s, then remove the base dir."""
    _terminate(cluster.procs)
    cluster.procs = {}
    shutil.rmtree(cluster.base, ignore_errors=True)


def rebuild_cluster(cluster: Cluster) -> Cluster:
    """Stop the cluster and start a new one in the same base dir, updating ``cluster`` in place."""
    stop_cluster(cluster)
    fresh = start_cluster(cluster.base)
    cluster.ports, cluster.procs, cluster.started_in = fresh.ports, fresh.procs, fresh.started_in
    cluster.rebuilds += 1
    return cluster


# ------------------------------------------------------------------ fixtures


def _require_binaries() -> None:
    for binary in (REDIS_SERVER, REDIS_CLI):
        if not os.access(binary, os.X_OK):
            pytest.fail(
                f"{binary} is missing: install the Debian package 'redis-server' (redis-server and redis-cli) or set "
                "OPSCTL_TEST_REDIS_SERVER / OPSCTL_TEST_REDIS_CLI",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    """One real Redis Cluster (3 masters, 3 replicas) for the whole session."""
    _require_binaries()
    started = start_cluster(Path(tempfile.mkdtemp(prefix="opsctl-rcluster-")))
    try:
        yield started
    finally:
        stop_cluster(started)


def prepare(cluster: Cluster) -> Cluster:
    """The cluster ready for a test: rebuilt first if a node is dead or it is unhealthy, then emptied."""
    if not cluster.healthy():
        rebuild_cluster(cluster)
    cluster.flush()
    return cluster


@pytest.fixture
def cluster(redis_cluster: Cluster) -> Cluster:
    """The session's cluster, emptied; rebuilt first if a previous test left a node dead or it is unhealthy."""
    return prepare(redis_cluster)
