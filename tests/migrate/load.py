"""The previous application version, as a load: writers that insert and update ``users`` without
knowing the new column, and a reader — recording every error and every latency."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Load:
    dsn: str
    writers: int = 2
    readers: int = 1
    pause: float = 0.005
    errors: list[str] = field(default_factory=list)
    write_latencies: list[float] = field(default_factory=list)
    read_latencies: list[float] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for n in range(self.writers):
            self._threads.append(threading.Thread(target=self._write, args=(n,), daemon=True))
        for _ in range(self.readers):
            self._threads.append(threading.Thread(target=self._read, daemon=True))
        for t in self._threads:
            t.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True, application_name="old-app")

    def _write(self, n: int) -> None:
        rng = random.Random(n)
        with self._connect() as conn:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    if rng.random() < 0.5:
                        conn.execute("INSERT INTO users (email) VALUES (%s)", (f"New{n}-{rng.random()}@Example.com",))
                        with self._lock:
                            self.inserted += 1
                    else:
                        conn.execute(
                            "UPDATE users SET email = %s WHERE id = (SELECT floor(random() * max(id))::bigint + 1"
                            " FROM users)",
                            (f"Upd{n}-{rng.random()}@Example.com",),
                        )
                        with self._lock:
                            self.updated += 1
                except Exception as exc:  # the point of the test: there must be none
                    self.errors.append(f"writer: {type(exc).__name__}: {exc}")
                self.write_latencies.append(time.perf_counter() - start)
                time.sleep(self.pause)

    def _read(self) -> None:
        with self._connect() as conn:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    conn.execute("SELECT id, email FROM users ORDER BY id DESC LIMIT 20").fetchall()
                except Exception as exc:
                    self.errors.append(f"reader: {type(exc).__name__}: {exc}")
                self.read_latencies.append(time.perf_counter() - start)
                time.sleep(self.pause)

    def max_write(self) -> float:
        return max(self.write_latencies, default=0.0)
