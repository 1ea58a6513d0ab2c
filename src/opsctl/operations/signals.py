"""SIGINT, SIGTERM and SIGHUP while an operation runs: stop at a safe point, never silently.

The guard's behaviour depends on the run's phase:

* ``waiting``/``planning`` (waiting for the lock, reading state): nothing has changed yet, so
  the first signal stops at once.
* ``applying``: the first signal asks the run to stop at the next safe point (step boundary,
  or an interruptible sleep, which wakes at once); the current step finishes, then the
  completed steps are compensated.  A second signal stops the step in its tracks.
* ``compensating``: a rollback is never abandoned silently.  Each signal says what is still
  being undone; the third one abandons the rollback, and the runner records exactly what was
  left undone.

Signals that were ignored when opsctl started (``nohup``, a background job) stay ignored.
Handlers are only installed from the main thread.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

from opsctl.operations.model import Interrupted

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
ABANDON_AFTER = 3  # signals during a rollback before it is abandoned

_current: SignalGuard | None = None


class SignalGuard:
    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify
        self.phase = "waiting"
        self.signame: str | None = None  # the first signal received while applying
        self.stop = threading.Event()  # set by a signal or a lost lease: wakes interruptible sleeps
        self.undoing: Callable[[], str] = lambda: "the completed steps"
        self._during_undo = 0
        self._applying_count = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalGuard:
        global _current
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                current = signal.getsignal(sig)
                if current is signal.SIG_IGN:
                    continue
                self._previous[sig] = current
                signal.signal(sig, self._handle)
        _current = self
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _current
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()
        if _current is self:
            _current = None

    # ----------------------------------------------------------------- the handler
    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.phase in ("waiting", "planning"):
            raise Interrupted(name)
        if self.phase == "compensating":
            self._during_undo += 1
            left = ABANDON_AFTER - self._during_undo
            if left <= 0:
                self._say(f"{name} received again: abandoning the rollback; the run is left interrupted")
                raise Interrupted(name)
            self._say(
                f"{name} received: still undoing {self.undoing()}; opsctl stops when the rollback is done"
                f" ({left} more to abandon it and leave the run half rolled back)"
            )
            return
        self._applying_count += 1
        if self._applying_count == 1:
            self.signame = name
            self.stop.set()
            self._say(
                f"{name} received: stopping at the next safe point, then undoing the completed steps"
                " (send it again to stop the current step at once)"
            )
            return
        raise Interrupted(self.signame or name)

    def _say(self, text: str) -> None:
        try:
            self.notify(text)
        except Exception:  # a message must never break the handler
            pass

    # ----------------------------------------------------------------- for the run
    def pending(self) -> str | None:
        """The signal that asked the run to stop, if any (none counts while undoing: a rollback
        is not cut short by the signal that started it)."""
        return None if self.phase == "compensating" else self.signame

    def begin_undo(self) -> None:
        """Compensations run now: their sleeps sleep, and signals only report (until abandoned)."""
        self.phase = "compensating"
        self.stop.clear()


def interruptible_sleep(seconds: float) -> None:
    """``time.sleep`` that a signal (or a lost lease) of the running operation cuts short.

    Outside an operation it is a plain sleep.  Raises :class:`Interrupted` when a signal
    asked the run to stop; returns early when the lease was lost (the caller checks)."""
    guard = _current
    if guard is None:
        import time

        time.sleep(seconds)
        return
    if guard.stop.wait(max(0.0, seconds)) and guard.pending() is not None:
        raise Interrupted(guard.signame or "SIGINT")
