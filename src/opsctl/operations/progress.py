"""The progress port: engines report phase, done/total, status; displays draw it.

Engines call :class:`Progress` (from ``ctx.progress()`` or ``run.progress``) and never import
rich.  A :class:`Sink` draws: a rich live display on a terminal, periodic plain lines in a
pipe, JSON lines with ``--log-format json`` (see :mod:`opsctl.display`), or nothing.  The
tracker computes the rate and ETA from the injected clock, so tests can check them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from opsctl.timeutil import Clock


@dataclass(frozen=True)
class Snapshot:
    title: str  # what runs: "deploy canary api@production"
    phase: str  # the current step or phase: "bake 20%"
    step: int | None = None  # 1-based step number, when a run reports it
    steps: int | None = None
    done: float | None = None
    total: float | None = None
    unit: str = ""
    rate: float | None = None  # units per second over the current phase
    eta_seconds: float | None = None
    status: str = ""  # free text: "waiting for 3 pods", "error rate 0.2% (SLA 0.1%)"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


class Sink(Protocol):
    def show(self, snapshot: Snapshot) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class NullSink:
    def show(self, snapshot: Snapshot) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class Progress:
    """One task's progress, reported to a sink (and to ``on_change``, e.g. the run record)."""

    def __init__(
        self,
        sink: Sink,
        clock: Clock,
        *,
        title: str = "",
        on_change: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self._sink, self._clock, self._on_change = sink, clock, on_change
        self._snap = Snapshot(title=title, phase="")
        self._phase_started: datetime = clock()
        self._phase_done0: float = 0.0

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    def phase(
        self,
        name: str,
        *,
        total: float | None = None,
        unit: str = "",
        step: int | None = None,
        steps: int | None = None,
    ) -> None:
        """Start a phase (a step, a batch loop); done/rate/ETA restart from zero."""
        self._phase_started, self._phase_done0 = self._clock(), 0.0
        self._set(
            Snapshot(
                title=self._snap.title,
                phase=name,
                step=step if step is not None else self._snap.step,
                steps=steps if steps is not None else self._snap.steps,
                done=0 if total is not None else None,
                total=total,
                unit=unit,
            )
        )

    def update(
        self,
        *,
        done: float | None = None,
        advance: float | None = None,
        total: float | None = None,
        status: str | None = None,
    ) -> None:
        current = self._snap
        new_done = current.done
        if done is not None:
            new_done = done
        elif advance is not None:
            new_done = (current.done or 0) + advance
        new_total = total if total is not None else current.total
        rate, eta = self._rate(new_done, new_total)
        self._set(
            Snapshot(
                title=current.title, phase=current.phase, step=current.step, steps=current.steps, done=new_done,
                total=new_total, unit=current.unit, rate=rate, eta_seconds=eta,
                status=current.status if status is None else status,
            )
        )  # fmt: skip

    def status(self, text: str) -> None:
        self.update(status=text)

    def note(self, text: str) -> None:
        """A line worth keeping (printed above a live display, or as a log line)."""
        self._sink.note(text)

    def close(self) -> None:
        self._sink.close()

    def _rate(self, done: float | None, total: float | None) -> tuple[float | None, float | None]:
        if done is None:
            return None, None
        elapsed = (self._clock() - self._phase_started).total_seconds()
        progressed = done - self._phase_done0
        if elapsed <= 0 or progressed <= 0:
            return None, None
        rate = progressed / elapsed
        eta = (total - done) / rate if total is not None and total >= done else None
        return rate, eta

    def _set(self, snap: Snapshot) -> None:
        self._snap = snap
        self._sink.show(snap)
        if self._on_change is not None:
            self._on_change(snap)
