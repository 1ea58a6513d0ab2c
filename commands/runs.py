"""`opsctl runs [--service S] [--all]` and `opsctl runs show ID`."""

from __future__ import annotations

from typing import Any

import typer

from opsctl.commands._common import context
from opsctl.output import Column

app = typer.Typer(rich_markup_mode=None)

_STATE_COLOURS = {
    "running": "cyan",
    "succeeded": "green",
    "orphaned": "bold red",
    "failed": "red",
    "interrupted": "yellow",
    "rolled_back": "yellow",
}


def _driver(value: Any) -> str:
    return f"{value['user']}@{value['host']}:{value['pid']}" if isinstance(value, dict) else "-"


def _step(row: dict[str, Any]) -> str:
    if not row.get("step"):
        return "-"
    index = min(row["step_index"] + (0 if row["state"] in ("succeeded",) else 1), row["steps"] or 1)
    return f"{index}/{row['steps']}:{row['step']}" if row["steps"] else row["step"]


COLUMNS = [
    Column("id", style="bold"),
    Column("kind"),
    Column("service"),
    Column("env"),
    Column("state", color=lambda v: _STATE_COLOURS.get(str(v))),
    Column("step_label", "STEP"),
    Column("driver", fmt=_driver),
    Column("heartbeat_age_seconds", "HEARTBEAT", fmt=lambda v: f"{v}s_ago" if v is not None else "-"),
    Column("started_at", "STARTED"),
    Column("message"),
]


@app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    service: str | None = typer.Option(None, "--service", help="Only this service.", metavar="SERVICE"),
    all_: bool = typer.Option(False, "--all", "-a", help="Include finished runs, not only those running now."),
    limit: int = typer.Option(
        50, "--limit", "-n", min=1, max=10_000, metavar="N", help="At most this many (newest first)."
    ),
) -> None:
    """What is running now across the team (orphaned runs marked); --all for finished ones too."""
    if ctx.invoked_subcommand is not None:
        return
    from opsctl.operations import views

    c = context(ctx)
    if service is not None:
        service = c.service(service).name
    env = c.env if c.env_name is not None else None
    rows = views.list_runs(c, service=service, env=env, include_finished=all_, limit=limit)
    for row in rows:
        row["step_label"] = _step(row)
    c.output.data(rows, columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, run_id: str = typer.Argument(..., metavar="ID", help="A run id (RUN-…).")) -> None:
    """One run: its state, driver, plan, progress and timeline."""
    from opsctl.operations import views

    c = context(ctx)
    data = views.show(c, run_id)
    if c.output.format != "table":
        c.output.data(data)
        return
    timeline = data.pop("timeline")
    plan = data.pop("plan")
    data["driver"] = _driver(data["driver"])
    c.output.data(data)
    c.output.data(
        [{"n": i + 1, **step} for i, step in enumerate(plan)],
        columns=[Column("n", "#"), Column("name", "STEP"), Column("action"), Column("target"), Column("undo")],
    )
    c.output.data(
        timeline, columns=[Column("at", "WHEN"), Column("author", "WHO"), Column("event"), Column("data", "DETAILS")]
    )
