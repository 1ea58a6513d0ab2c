"""Applying a run's steps, and undoing them when the run cannot go on.

The end states (see :mod:`opsctl.operations.model`): every step done → succeeded; a step failed
or a signal stopped the run → the completed steps (and the one in progress) are compensated in
reverse → rolled_back when everything changed was undone, failed or interrupted when something
is left applied; a lost lease → interrupted at once, nothing undone (someone else is in charge).
Each end writes the run record and the outcome audit record, then raises what the command
reports (or returns the result).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsctl.errors import ExitCode, OpsctlError
from opsctl.operations.audit import outcome_of
from opsctl.operations.model import (
    FAILED,
    INTERRUPTED,
    PAUSED,
    ROLLED_BACK,
    SUCCEEDED,
    Interrupted,
    LeaseLost,
    Pause,
    RunError,
    RunResult,
    Step,
)

if TYPE_CHECKING:
    from opsctl.operations.run import Run
    from opsctl.operations.runner import _Runner
    from opsctl.operations.signals import SignalGuard

log = logging.getLogger("opsctl.runs")


class Drive:
    """Applying the steps, and undoing them when the run cannot go on."""

    def __init__(self, runner: _Runner, run: Run, steps: list[Step], guard: SignalGuard) -> None:
        self.runner, self.run, self.steps, self.guard = runner, run, steps, guard
        self.results: dict[str, Any] = {}

    def go(self, done: set[int], in_progress: int | None, rollback: bool) -> RunResult:
        completed = sorted(done)
        if rollback:
            return self._undo(completed, in_progress, cause=None, signame=None, requested=True)
        for index, step in enumerate(self.steps):
            if index in done:
                continue
            try:
                self.run.boundary()
                if not self.run.changed:
                    self.run.changed = True
                    self.runner.audit("started", ExitCode.OK, f"{len(self.steps)} step(s) planned", self.run.id)
                self.run.step_started(index, step, len(self.steps))
                in_progress = index
                value = step.apply(self.run) if step.apply is not None else None
                self.run.step_done(index, step, value)
                in_progress = None
                completed.append(index)
                self.results[step.name] = value
            except LeaseLost as exc:
                return self._lost(str(exc), in_progress)
            except Pause as exc:
                return self._pause(exc, index)
            except KeyboardInterrupt as exc:
                signame = exc.signame if isinstance(exc, Interrupted) else "SIGINT"
                return self._undo(completed, in_progress, cause=None, signame=signame)
            except Exception as exc:
                quietly(self.run.event, "step_failed", index=index, step=step.name, error=_text(exc))
                return self._undo(completed, in_progress, cause=exc, signame=None)
        late = self.guard.pending()
        count = len(self.steps)
        message = "; ".join(self.run.notes) or (
            f"{count} step{'s' if count != 1 else ''} done" if count else "nothing to do"
        )
        if late:
            message += f" ({late} arrived during the last step, which completed)"
        self.run.finish(SUCCEEDED, message)
        self.runner.audit("ok", ExitCode.OK, message, self.run.id)
        return self._result(SUCCEEDED, message)

    def _result(self, state: str, message: str) -> RunResult:
        plan = [s.describe() for s in self.steps]
        return RunResult(state, self.run.id, plan, self.results, self.run.notes, message=message)

    # --------------------------------------------------------------- stopping
    def _lost(self, reason: str, in_progress: int | None) -> RunResult:
        where = self.steps[in_progress].name if in_progress is not None else (self.run.record.step or "-")
        message = f"{reason}: made no further change; run {self.run.id} stopped at step '{where}'"
        quietly(self.run.finish, INTERRUPTED, message)
        self.runner.audit("interrupted", ExitCode.REFUSED, message, self.run.id)
        raise _audited(
            RunError(
                message,
                f"see 'opsctl runs show {self.run.id}'; whoever holds the lock now is in charge",
                self._result(INTERRUPTED, message),
                ExitCode.REFUSED,
            )
        )

    def _pause(self, pause: Pause, index: int) -> RunResult:
        message = f"paused at step '{self.steps[index].name}': {pause.message}"
        quietly(self.run.event, "paused", index=index, step=self.steps[index].name, reason=pause.message)
        quietly(self.run.finish, PAUSED, message)
        self.runner.audit("paused", pause.exit_code, message, self.run.id)
        result = self._result(PAUSED, message)
        if pause.exit_code == ExitCode.OK:
            return result
        raise _audited(RunError(message, pause.hint, result, pause.exit_code))

    def _undo(
        self,
        completed: list[int],
        in_progress: int | None,
        *,
        cause: BaseException | None,
        signame: str | None,
        requested: bool = False,
    ) -> RunResult:
        changed = [i for i in completed + ([in_progress] if in_progress is not None else []) if self.steps[i].changes]
        queue = [i for i in reversed(changed) if self.steps[i].compensate is not None]
        undone: list[int] = []
        problem: str | None = None
        self.guard.begin_undo()
        for i in queue:
            step = self.steps[i]
            left = [self.steps[j].name for j in queue if j not in undone]
            self.guard.undoing = lambda left=left: "'" + "', '".join(left) + "'"  # type: ignore[misc]
            try:
                self.run.checkpoint_lease()
                quietly(self.run.event, "compensating", index=i, step=step.name)
                self.run.progress.phase(f"undo: {step.name}")
                assert step.compensate is not None
                step.compensate(self.run)
                quietly(self.run.event, "compensated", index=i, step=step.name)
                undone.append(i)
            except LeaseLost as exc:
                problem = f"stopped undoing: {exc}"
                break
            except KeyboardInterrupt:
                problem = "the rollback was abandoned by a repeated signal"
                quietly(self.run.event, "rollback_abandoned", step=step.name)
                break
            except Exception as exc:
                problem = f"undoing '{step.name}' failed: {_text(exc)}"
                quietly(self.run.event, "compensation_failed", index=i, step=step.name, error=_text(exc))
                break
        still = [self.steps[i].name for i in changed if i not in undone]
        return self._end(cause, signame, requested, undone, still, problem)

    def _end(
        self,
        cause: BaseException | None,
        signame: str | None,
        requested: bool,
        undone: list[int],
        still: list[str],
        problem: str | None,
    ) -> RunResult:
        names = [self.steps[i].name for i in undone]
        undid = f"undid {', '.join(repr(n) for n in names)}" if names else "nothing to undo"
        left = f"; still applied: {', '.join(repr(n) for n in still)}" if still else ""
        trouble = f"; {problem}" if problem else ""
        clean = not still and problem is None
        # A signal always ends "interrupted" (the message says what was undone); a failure ends
        # "rolled_back" when everything it changed was undone, else "failed".
        state = INTERRUPTED if signame else ROLLED_BACK if clean and names else INTERRUPTED if not still else FAILED
        if still:
            self.run.record.data["still_applied"] = still  # for engines: the run left a half-done change
        if requested:
            state = ROLLED_BACK if clean else FAILED
            message = f"rolled back on request: {undid}{left}{trouble}"
        elif signame:
            message = f"interrupted by {signame}: {undid}{left}{trouble}"
            if not names and not still:
                message = f"interrupted by {signame} before any change"
        else:
            message = f"step failed: {_text(cause)}; {undid}{left}{trouble}"
        quietly(self.run.finish, state, message)
        hint = self._hint(state, still)
        result = self._result(state, message)
        if requested and state == ROLLED_BACK:
            self.runner.audit("rolled_back", ExitCode.OK, message, self.run.id)
            return result
        if signame:
            self.runner.audit("interrupted", ExitCode.INTERRUPTED, message, self.run.id)
            raise _audited(RunError(message, hint, result, ExitCode.INTERRUPTED))
        if isinstance(cause, OpsctlError) and not names and problem is None:
            outcome, code, _ = outcome_of(cause)
            self.runner.audit(outcome, code, message, self.run.id)
            raise _audited(cause)  # nothing could be undone: the step's own error (and exit code) tells it best
        code = ExitCode.FAILED
        self.runner.audit("rolled_back" if state == ROLLED_BACK else "failed", code, message, self.run.id)
        if cause is not None and not isinstance(cause, OpsctlError):
            log.error("step failed with an internal error", exc_info=cause)
        raise _audited(RunError(message, hint, result, code))

    def _hint(self, state: str, still: list[str]) -> str | None:
        if state == ROLLED_BACK or not still:
            return None
        resume = self.runner.op.resume_hint or f"take run {self.run.id} over with the command's resume or rollback"
        return f"the run is {state}; 'opsctl runs show {self.run.id}' has its timeline; {resume}"


def quietly(write: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """A bookkeeping write (the run's end, its timeline) that must not keep the undo from running
    or the outcome from being audited: when the store fails (disk full, database down), log, go on."""
    try:
        write(*args, **kwargs)
    except Exception as exc:
        log.warning(
            "could not record %s of the run in the state store: %s", getattr(write, "__name__", "a change"), exc
        )


def _audited(exc: BaseException) -> BaseException:
    """Mark an exception whose outcome record is written, so nobody writes a second one."""
    exc._opsctl_audited = True  # type: ignore[attr-defined]
    return exc


def _text(exc: BaseException | None) -> str:
    if exc is None:
        return "-"
    if isinstance(exc, OpsctlError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
