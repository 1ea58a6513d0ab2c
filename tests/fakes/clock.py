"""A fake monotonic clock whose sleep only advances it (waits and timeouts tested without waiting)."""

from __future__ import annotations


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
