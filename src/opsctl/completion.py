"""Shell completion scripts, generated from the app by click's completion machinery."""

from __future__ import annotations


def script(shell: str) -> str:
    """The completion script for ``shell`` (what ``_OPSCTL_COMPLETE=source_<shell> opsctl`` prints)."""
    from click.shell_completion import get_completion_class

    from opsctl.cli import app
    from typer.main import get_command

    cls = get_completion_class(shell)
    if cls is None:
        raise ValueError(f"unsupported shell {shell!r}")
    command = get_command(app)
    return cls(command, {}, "opsctl", "_OPSCTL_COMPLETE").source()
