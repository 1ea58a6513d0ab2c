"""A multi-step test operation run through the real opsctl CLI, for signal and takeover tests.

    python tests/fakes/slow_op.py [global options] test-op SERVICE WORLD_DIR [--steps N] [--pause S]
        [--slow-at I --slow S] [--fail-at I] [--resume RUN_ID] [--rollback] [--short]

Step i creates ``WORLD_DIR/step<i>`` (a real change on disk) and its compensation deletes it;
each step then pauses in ``run.sleep`` (where a signal or a lost lease cuts in) and prints
``applied <i>`` on stderr so that a test knows where the child is.  Everything else — the CLI
entry point, global options, context, runner, store, locks, signals, audit — is opsctl's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from opsctl.cli import app, run
from opsctl.commands._common import context
from opsctl.errors import FailedError
from opsctl.operations.model import Operation, Step
from opsctl.operations.runner import execute


@app.command("test-op", hidden=True)
def test_op(
    ctx: typer.Context,
    service: str,
    world: Path,
    steps: int = typer.Option(4, "--steps"),
    pause: float = typer.Option(0.3, "--pause"),
    slow_at: int = typer.Option(-1, "--slow-at", help="This step pauses --slow seconds instead."),
    slow: float = typer.Option(60.0, "--slow"),
    fail_at: int = typer.Option(-1, "--fail-at"),
    resume: str | None = typer.Option(None, "--resume"),
    rollback: bool = typer.Option(False, "--rollback"),
    short: bool = typer.Option(False, "--short"),
) -> None:
    c = context(ctx)
    svc = c.service(service)

    def make(i: int) -> Step:
        target = world / f"step{i}"

        def apply(r):  # type: ignore[no-untyped-def]
            target.write_text(r.id)
            r.save(last=i)
            print(f"applied {i}", file=sys.stderr, flush=True)
            r.sleep(slow if i == slow_at else pause)
            if i == fail_at:
                raise FailedError(f"step {i} broke on purpose")
            return i

        def undo(r):  # type: ignore[no-untyped-def]
            target.unlink(missing_ok=True)
            print(f"undone {i}", file=sys.stderr, flush=True)
            r.sleep(pause / 3)

        return Step(
            f"step {i}", f"create {target.name}", target=str(world), apply=apply, compensate=undo, undo="delete it"
        )

    op = Operation("test op", svc, {"world": str(world), "steps": steps}, lock="testop", short=short)
    result = execute(c, op, lambda r: [make(i) for i in range(steps)], takeover=resume, rollback=rollback)
    c.output.data({"state": result.state, "run_id": result.run_id, "plan": len(result.plan)})


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
