"""`drill failover --failback`: after the failover is measured, return to where the drill started.

Self-managed PostgreSQL with both servers on this host (their data directories are read from the
servers and must be here; the commands run as the directories' owner):

1. rebuild old primary — stop it, set its data directory aside, ``pg_basebackup -R`` from the new
   primary into a fresh one, start it on its own port, wait until it streams.  Undo: put the old
   directory back and start it (fenced, as the failover left it).
2. switch back — fence the new primary, wait until the rebuilt one has replayed everything, promote
   it, lift the fence there, point DNS at the primary again, prove a write.  Undo (before the
   promotion only): lift the fence on the new primary and point DNS back at it.
3. rebuild replica — the same rebuild for the server that was promoted by the drill, now a standby
   of the original primary again; the directories set aside are removed once all is done.

RDS has no such return (an instance never becomes a replica again): ``--failback`` is refused there."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.drills import pgnode
from opsctl.drills.measure import observe
from opsctl.errors import FailedError
from opsctl.operations.model import Step

if TYPE_CHECKING:
    import psycopg

    from opsctl.drills.failover import Failover
    from opsctl.operations.run import Run


def preflight(engine: Failover) -> list[str]:
    """Both servers' data directories and ports, and that they are on this host."""
    from opsctl.integrations import pgctl

    if engine.mode != "postgres":
        return ["--failback needs self-managed PostgreSQL on this host (RDS: create a new read replica by hand)"]
    problems = []
    for role in ("primary", "replica"):
        try:
            conn = engine.nodes(role)
            row = conn.execute("SELECT current_setting('data_directory'), current_setting('port')").fetchone()
        except Exception as exc:
            problems.append(f"--failback: cannot read the {role}'s data directory: {getattr(exc, 'message', exc)}")
            continue
        assert row is not None
        data_dir, port = str(row[0]), int(row[1])
        if not (Path(data_dir) / "PG_VERSION").exists():
            problems.append(f"--failback: the {role}'s data directory {data_dir} is not on this host")
            continue
        try:
            user = pgctl.owner(data_dir)
            pgctl._as(user)
        except Exception as exc:
            problems.append(f"--failback: {getattr(exc, 'message', exc)}")
            continue
        engine.facts.setdefault("servers", {})[role] = {"data_dir": data_dir, "port": port, "owner": user}
    return problems


def _wait(run: Run, what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() >= deadline:
            raise FailedError(f"{what} did not happen within {timeout:.0f}s")
        run.progress.status(f"waiting: {what}")
        run.sleep(0.5)


def _streaming(conn_of: Any) -> bool:
    conn = conn_of()
    row = conn.execute("SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)").fetchone()
    return bool(row and row[0] and row[1] == "streaming")


class Failback:
    def __init__(self, engine: Failover) -> None:
        self.e = engine
        self.timeout = engine.policy.promote_timeout.total_seconds()

    def server(self, role: str) -> dict[str, Any]:
        return dict(self.e.facts["servers"][role])

    def _aside(self, run: Run, role: str) -> str:
        return f"{self.server(role)['data_dir']}.opsctl-{run.id.lower()}"

    def _log(self, role: str) -> str:
        data = Path(self.server(role)["data_dir"])
        return str(data.parent / f"{data.name}.opsctl-failback.log")

    def rebuild(self, run: Run, role: str, source_role: str) -> dict[str, Any]:
        """``role``'s server becomes a fresh standby of ``source_role``'s."""
        from opsctl.integrations import pgctl

        server = self.server(role)
        data, aside = server["data_dir"], self._aside(run, role)
        self.e.nodes.close(role)
        run.progress.status(f"stopping {data}")
        pgctl.stop(data)
        if not Path(aside).exists():
            os.rename(data, aside)
        run.save(failback_aside={**(run.data.get("failback_aside") or {}), role: aside})
        if Path(data).exists():
            shutil.rmtree(data)  # a partial copy from an earlier attempt of this run
        pgctl.make_empty(data, server["owner"])
        run.progress.status(f"pg_basebackup from the {source_role} into {data}")
        source = self.e.nodes.dsns[source_role] or ""
        pgctl.basebackup(source, data, server["owner"], tool_dir=aside, timeout=max(self.timeout, 600))
        pgctl.start(data, server["port"], self._log(role))
        _wait(run, f"the rebuilt {role} streams from the {source_role}", lambda: _streaming(
            lambda: self.e.nodes(role, fresh=True)), self.timeout)  # fmt: skip
        return {"data_dir": data, "set_aside": aside, "port": server["port"]}

    def put_back(self, run: Run, role: str) -> None:
        """Undo a rebuild: the original data directory back in place and started."""
        from opsctl.integrations import pgctl

        server = self.server(role)
        data, aside = server["data_dir"], self._aside(run, role)
        if not Path(aside).exists():
            return
        self.e.nodes.close(role)
        try:
            pgctl.stop(data, mode="immediate")
        except Exception:
            pass
        shutil.rmtree(data, ignore_errors=True)
        os.rename(aside, data)
        pgctl.start(data, server["port"], self._log(role))
        run.progress.note(f"put the original data directory of the {role} back ({data}) and started it")

    # ------------------------------------------------------------------ switching back
    def switch_back(self, run: Run) -> dict[str, Any]:
        new = self.e.nodes("replica", fresh=True)
        pgnode.fence(new)
        target = str(new.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
        self.e.nodes.close("replica")
        _wait(run, f"the rebuilt primary replays up to {target}", lambda: _replayed(
            self.e.nodes("primary", fresh=True), target), self.timeout)  # fmt: skip
        old = self.e.nodes("primary", fresh=True)
        pgnode.promote(old, self.timeout)
        pgnode.unfence(old)
        moved = self.e._point(run, "primary") if self.e.service.dns is not None else None
        conn = self.e.nodes("primary", fresh=True)
        pgnode.proof_write(conn, run.id + "-failback")
        return {"promoted": "the original primary", "dns": moved}

    def undo_switch_back(self, run: Run) -> None:
        old_in_recovery = True
        try:
            row = self.e.nodes("primary", fresh=True).execute("SELECT pg_is_in_recovery()").fetchone()
            old_in_recovery = bool(row and row[0])
        except Exception:
            pass
        if not old_in_recovery:
            observe(run, "the switch back had promoted the original primary when it stopped: it stays the primary",
                    follow_up="rebuild the other server as its replica (pg_basebackup -R)")  # fmt: skip
            return
        pgnode.unfence(self.e.nodes("replica", fresh=True))
        if self.e.service.dns is not None:
            self.e._point(run, "secondary")

    def finish(self, run: Run) -> dict[str, Any]:
        result = self.rebuild(run, "replica", "primary")
        removed = []
        for aside in (run.data.get("failback_aside") or {}).values():
            shutil.rmtree(aside, ignore_errors=True)
            removed.append(aside)
        run.save(failback_aside={})
        return {**result, "removed": removed}


def _replayed(conn: psycopg.Connection[Any], lsn: str) -> bool:
    row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
    return bool(row and row[0])


def failback_steps(engine: Failover, run: Run) -> list[Step]:
    fb = Failback(engine)
    servers = engine.facts.get("servers") or {}
    old = (servers.get("primary") or {}).get("data_dir", "the old primary")
    new = (servers.get("replica") or {}).get("data_dir", "the promoted replica")
    return [
        Step("rebuild old primary", "stop, set aside, pg_basebackup -R from the new primary, start, stream", old,
             apply=lambda r: fb.rebuild(r, "primary", "replica"), compensate=lambda r: fb.put_back(r, "primary"),
             undo="put the original data directory back and start it"),
        Step("switch back", "fence the new primary, catch up, promote the original, DNS back, a write", old,
             apply=fb.switch_back, compensate=fb.undo_switch_back,
             undo="lift the fence on the new primary and point DNS at it (before the promotion only)"),
        Step("rebuild replica", "stop, set aside, pg_basebackup -R from the primary, start, stream", new,
             apply=fb.finish),
    ]  # fmt: skip
