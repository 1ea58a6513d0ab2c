"""Shell completion scripts for bash, zsh and fish.

The scripts call back into ``opsctl`` (``_OPSCTL_COMPLETE=complete_<shell>``), so
commands, options and service names complete from the installed app and config.
"""

from __future__ import annotations

SHELLS = ("bash", "zsh", "fish")


def script(shell: str) -> str:
    """The completion script for ``shell``, as committed under completions/."""
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise ValueError(f"unsupported shell {shell!r}: use bash, zsh or fish")
    return get_completion_script(prog_name="opsctl", complete_var="_OPSCTL_COMPLETE", shell=shell).rstrip("\n") + "\n"
