"""`opsctl completion bash|zsh|fish`: print the shell completion script."""

from __future__ import annotations

from enum import StrEnum

import typer


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def register(app: typer.Typer) -> None:
    app.command("completion")(completion)


def completion(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the completion script; e.g. opsctl completion bash > /etc/bash_completion.d/opsctl."""
    from opsctl.completion import script

    typer.echo(script(shell.value), nl=False)
