"""Helpers shared by the command modules."""

from __future__ import annotations

import typer

from opsctl.context import Context


def context(ctx: typer.Context) -> Context:
    """The invocation's :class:`~opsctl.context.Context` (set by the root callback)."""
    found = ctx.find_object(Context)
    if found is None:  # a command run without the root app (tests using the group directly)
        found = Context()
        ctx.obj = found
    return found
