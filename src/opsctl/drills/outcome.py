"""Running a drill on the runner and turning whatever happened into its report: a drill that
failed or was interrupted still has a report (Failed, with its timeline and rollback), printed
before the error line and its exit code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsctl.errors import OpsctlError
from opsctl.operations.runner import execute

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.operations.model import Operation, Step
    from opsctl.operations.run import Run


@dataclass
class Outcome:
    report: dict[str, Any]
    error: BaseException | None = None  # raised by the command after it printed the report
    dry_run: bool = False


def run_drill(ctx: Context, op: Operation, plan: Callable[[Run], list[Step]]) -> Outcome:
    from opsctl.drills import report
    from opsctl.operations.model import RunError

    seen: dict[str, str] = {}

    def planned(run: Run) -> list[Step]:
        seen["id"] = run.id
        return plan(run)

    error: BaseException | None = None
    try:
        result = execute(ctx, op, planned)
    except (RunError, OpsctlError, KeyboardInterrupt) as exc:
        if "id" not in seen or ctx.dry_run:
            raise
        error = exc
    else:
        if result.dry_run:
            return Outcome({"dry_run": True, "kind": op.kind, "service": op.service.name if op.service else None,
                            "plan": result.plan}, dry_run=True)  # fmt: skip
    run = ctx.store.get_run(seen["id"])
    if run is None:  # the run was never written (the store failed): nothing to report from
        if error is not None:
            raise error
        raise OpsctlError(f"drill run {seen['id']} is not in the state store")
    return Outcome(report.build(ctx, run), error)
