"""What an operation is made of: steps that describe, apply and compensate themselves.

An engine builds an :class:`Operation` (what, on which service and environment, under which
lock) and a plan function that returns its :class:`Step` list; the runner
(:func:`opsctl.operations.execute`) prints that same list for ``--dry-run`` and applies it
otherwise.  There is no second code path for the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsctl.errors import ExitCode, OpsctlError

if TYPE_CHECKING:
    from opsctl.operations.run import Run
    from opsctl.settings import Service

# Stored run states; "orphaned" is derived when reading (a running run whose heartbeat is stale).
RUNNING, SUCCEEDED, FAILED, ROLLED_BACK, INTERRUPTED, ORPHANED, PAUSED = (
    "running", "succeeded", "failed", "rolled_back", "interrupted", "orphaned", "paused",
)  # fmt: skip
STATES = (RUNNING, PAUSED, SUCCEEDED, FAILED, ROLLED_BACK, INTERRUPTED, ORPHANED)
ACTIVE = (RUNNING, ORPHANED, PAUSED)  # in flight: shown by 'opsctl runs' without --all


@dataclass
class Step:
    """One change.  ``action``/``target``/``detail`` describe it (the dry-run plan shows them);
    ``apply(run)`` makes it and may return a result; ``compensate(run)``, where an undo exists,
    reverts it.  A compensation must be idempotent and safe after a partial or failed apply:
    the runner also compensates the step that was in progress when it stopped."""

    name: str
    action: str
    target: str = ""
    detail: Any = None
    apply: Callable[[Run], Any] | None = None
    compensate: Callable[[Run], Any] | None = None
    undo: str = ""  # what the compensation does, in words (shown in the plan)
    changes: bool = True  # False for a step that only waits or reads (a bake, an analysis): nothing to undo

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "undo": self.undo or (None if self.compensate is None else "revert"),
        }


@dataclass
class Operation:
    """A mutating operation: its kind (``"incident declare"``), where it runs, and its rules.

    ``params`` are what the engine needs to rebuild the steps (on resume or takeover) and
    what the audit log records (secrets masked).  ``lock`` names the lock kind (one lock per
    kind, service and environment).  ``short`` operations wait up to ``policy.lock_wait``
    for a held lock; long ones refuse at once, naming the holder."""

    kind: str
    service: Service | None
    params: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None
    short: bool = False
    confirm: str | None = None  # the question asked when policy wants a confirmation
    must_confirm: bool = False  # ask it even when no policy rule matches (tier 0-1 canaries)
    env: str | None = None  # default: the context's environment
    check: Callable[[], None] | None = None  # validates the input first (its refusal is audited too)
    resume_hint: str = ""  # how to resume or roll back a run left half done, e.g. "opsctl deploy rollback api"
    supersede: bool = False  # an orphaned run on the lock is closed, not refused: a rerun resumes from the
    # target's own record of what is done (a migration's history table, a backfill's cursor)


@dataclass
class RunResult:
    """What the runner hands back: the run's end state, its plan, and each step's result."""

    state: str
    run_id: str | None
    plan: list[dict[str, Any]]
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    message: str = ""


class RunError(OpsctlError):
    """A run ended badly; carries the result so a command can still render what happened."""

    def __init__(self, message: str, hint: str | None, result: RunResult, exit_code: ExitCode) -> None:
        super().__init__(message, hint)
        self.result = result
        self.exit_code = exit_code


class Interrupted(KeyboardInterrupt):
    """Raised at a safe point after SIGINT, SIGTERM or SIGHUP (a KeyboardInterrupt, so that
    ``except Exception`` in client code never swallows it)."""

    def __init__(self, signame: str = "SIGINT") -> None:
        super().__init__(signame)
        self.signame = signame


class LeaseLost(Exception):
    """The run's lock or heartbeat was lost: no further change may be made."""


class Pause(Exception):
    """Raised by a step to stop the run where it stands, on purpose and resumable: nothing is
    undone, the run is ``paused`` at that step (which is applied again on resume), the lock is
    released.  ``exit_code`` is what the command exits with (a pause for a human's decision is
    not a success)."""

    def __init__(self, message: str, hint: str | None = None, exit_code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.message, self.hint, self.exit_code = message, hint, exit_code
