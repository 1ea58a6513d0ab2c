"""Several processes opening a brand-new SQLite store at the same moment (a command and the
'status' polls of a second terminal): the switch to WAL mode takes a lock SQLite does not wait for,
so the store retries instead of failing with "database is locked"."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path


def _open_and_write(path: str, start: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from opsctl.state.sqlite import SQLiteStore

    while time.time() < start:
        pass
    try:
        store = SQLiteStore(Path(path), busy_timeout=10)
        store.schema_version()
        store.close()
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_many_processes_open_a_new_store_at_once() -> None:
    ctx = multiprocessing.get_context("fork")
    failures: list[str] = []
    for _ in range(5):
        path = str(Path(tempfile.mkdtemp(prefix="opsctl-open-")) / "state" / "opsctl.db")
        results = ctx.Queue()
        start = time.time() + 0.3
        procs = [ctx.Process(target=_open_and_write, args=(path, start, results)) for _ in range(6)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        failures += [r for r in (results.get(timeout=5) for _ in procs) if r != "ok"]
    assert failures == []
