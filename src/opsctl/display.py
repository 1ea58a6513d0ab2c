"""Drawing progress and live views on stderr: the sinks behind the progress port.

* :class:`LiveSink` — a rich live display on a terminal.  It never touches stdout (``-o json``
  output stays parseable under it), and log lines and warnings are printed above it instead
  of tearing it (logging writes to whatever ``sys.stderr`` is, which the display redirects).
* :class:`LineSink` — plain lines in a pipe: one when the phase changes, and at most one per
  ``every`` seconds while it runs.
* :class:`JsonSink` — with ``--log-format json``: the same, as JSON log lines.

Engines never import this module; the context picks a sink (``ctx.progress_sink()``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsctl.operations.progress import Snapshot
from opsctl.timeutil import Clock, format_duration

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("opsctl.progress")


def describe(snap: Snapshot) -> str:
    """One line: ``[2/4] bake 20%: 120/300 s (2.0 s/s, ETA 1m30s) — error rate 0.1%``."""
    from datetime import timedelta

    parts = []
    if snap.step is not None and snap.steps:
        parts.append(f"[{snap.step}/{snap.steps}]")
    parts.append(snap.phase or snap.title)
    if snap.done is not None:
        amount = f"{_num(snap.done)}/{_num(snap.total)}" if snap.total is not None else _num(snap.done)
        if snap.unit:
            amount += f" {snap.unit}"
        extra = []
        if snap.total:
            extra.append(f"{100 * snap.done / snap.total:.0f}%")
        if snap.rate:
            extra.append(f"{_num(snap.rate)}/s")
        if snap.eta_seconds is not None:
            extra.append("ETA " + format_duration(timedelta(seconds=int(snap.eta_seconds))))
        parts.append(amount + (f" ({', '.join(extra)})" if extra else ""))
    if snap.status:
        parts.append(f"— {snap.status}")
    from opsctl.output import printable
    from opsctl.redact import redact

    return printable(redact(" ".join(parts)))


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


class LineSink:
    """Progress as plain lines on stderr (pipes, CI logs)."""

    def __init__(self, console: Console | None, clock: Clock, every: float = 10.0) -> None:
        self.console, self.clock, self.every = console, clock, every
        self._last: datetime | None = None
        self._phase: tuple[str, int | None] | None = None

    def _due(self, snap: Snapshot) -> bool:
        """A new phase is always shown; within one, at most one line per ``every`` seconds."""
        now = self.clock()
        phase = (snap.phase, snap.step)
        if phase == self._phase and self._last is not None and (now - self._last).total_seconds() < self.every:
            return False
        self._phase, self._last = phase, now
        return True

    def show(self, snap: Snapshot) -> None:
        if self._due(snap) and self.console is not None:
            self.console.print(describe(snap), markup=False, highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        from opsctl.output import printable
        from opsctl.redact import redact

        if self.console is not None:
            self.console.print(printable(redact(text)), markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


class JsonSink(LineSink):
    """Progress as JSON log lines (``--log-format json``): ``event: progress`` plus the snapshot."""

    def __init__(self, clock: Clock, every: float = 10.0) -> None:
        super().__init__(None, clock, every)

    def show(self, snap: Snapshot) -> None:
        if not self._due(snap):
            return
        log.info(describe(snap), extra={"event": "progress", **{f"progress_{k}": v for k, v in snap.to_dict().items()}})

    def note(self, text: str) -> None:
        log.info(text, extra={"event": "progress_note"})


class LiveSink:
    """A rich live display on stderr, started on the first snapshot."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Any = None

    def show(self, snap: Snapshot) -> None:
        from rich.text import Text

        text = Text(describe(snap))
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                text, console=self.console, redirect_stdout=False, redirect_stderr=True, transient=True,
                refresh_per_second=4,
            )  # fmt: skip
            self._live.start()
        else:
            self._live.update(text)

    def note(self, text: str) -> None:
        from opsctl.output import printable
        from opsctl.redact import redact

        self.console.print(printable(redact(text)), markup=False, highlight=False)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def live_frames(console: Console, frames: Any, *, transient: bool = False) -> None:
    """Draw each renderable that ``frames`` yields in place until it is exhausted (a live board).

    Used for views that redraw (``incident watch``); stdout is never redirected."""
    from rich.live import Live

    live: Any = None
    try:
        for frame in frames:
            if live is None:
                live = Live(frame, console=console, redirect_stdout=False, redirect_stderr=True, transient=transient)
                live.start()
            else:
                live.update(frame, refresh=True)
    finally:
        if live is not None:
            live.stop()
