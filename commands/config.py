"""`opsctl config validate|show`."""

from __future__ import annotations

import typer

from opsctl.commands._common import context

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)


@app.command("validate")
def validate(
    ctx: typer.Context,
    path: str | None = typer.Argument(None, help="Config file (default: the one opsctl would use)."),
) -> None:
    """Check a config file; print every problem as file:line: key: message (exit 2)."""
    from pathlib import Path

    from opsctl.configfile import Source, load
    from opsctl.errors import ConfigError

    c = context(ctx)
    source = Source(Path(path), "argument") if path else c.source
    try:
        config = load(source)
    except ConfigError as exc:
        if c.output.format != "table":  # programs get the problems as data too
            problems = [{"file": p.file, "line": p.line, "path": p.path, "message": p.message} for p in exc.problems]
            c.output.data({"valid": False, "source": source.label, "problems": problems})
        raise
    summary = {
        "valid": True,
        "source": source.label,
        "services": len(config.services),
        "tiers": len(config.effective_tiers()),
        "environments": config.environments,
    }
    if c.output.format == "table":
        c.output.success(
            f"{source.label}: valid ({len(config.services)} services, {len(config.effective_tiers())} tiers)"
        )
    else:
        c.output.data(summary)


@app.command("show")
def show(
    ctx: typer.Context,
    service: str | None = typer.Argument(None, help="Show only this service, as it applies in --env."),
) -> None:
    """Show the effective config: defaults and tiers merged in, secrets as references only."""
    from opsctl import inventory

    c = context(ctx)
    if service:
        data = inventory.effective_service(c.settings, c.service(service), c.env)
    else:
        data = inventory.effective_config(c.snapshot, c.source.label)
    if c.output.format == "table":
        import yaml

        from opsctl.output import to_plain

        c.output.text(yaml.safe_dump(to_plain(data), sort_keys=False))
    else:
        c.output.data(data)
