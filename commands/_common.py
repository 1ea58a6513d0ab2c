"""Helpers shared by the command modules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from opsctl.context import Context


def context(ctx: typer.Context) -> Context:
    """The invocation's :class:`~opsctl.context.Context` (set by the root callback)."""
    found = ctx.find_object(Context)
    if found is None:  # a command run without the root app (tests using the group directly)
        found = Context()
        ctx.obj = found
    return found


def duration(text: str | None, param: str, *, least: float = 0.0, most: float | None = None) -> timedelta | None:
    """A duration option (``90s``, ``2m``), checked against its bounds: a usage error naming ``param``."""
    if text is None:
        return None
    from opsctl.timeutil import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=param) from None
    if value.total_seconds() < least:
        raise typer.BadParameter(f"at least {least:g}s", param_hint=param)
    if most is not None and value.total_seconds() > most:
        raise typer.BadParameter(f"at most {most:g}s", param_hint=param)
    return value


def plan_table(c: Context, plan: list[dict[str, Any]]) -> None:
    """A dry run's plan: the steps a real run would apply, as a table (or the list under -o json)."""
    from opsctl.output import Column

    c.output.info("dry run: nothing was changed")
    if c.output.format != "table":
        c.output.data(plan)
        return
    c.output.data(
        [{"n": i + 1, **step} for i, step in enumerate(plan)],
        columns=[Column("n", "#"), Column("name", "STEP"), Column("action"), Column("target"), Column("undo")],
    )
