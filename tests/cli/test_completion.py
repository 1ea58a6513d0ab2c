"""Completion scripts print and complete from the real app."""

from __future__ import annotations

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_the_committed_script(opsctl, shell):
    result = opsctl("completion", shell)
    assert result.code == 0, result.stderr
    assert result.stdout == (REPO / "completions" / f"opsctl.{shell}").read_text()
    assert "_OPSCTL_COMPLETE" in result.stdout


def test_bash_completion_completes_commands(opsctl):
    result = opsctl(env={"_OPSCTL_COMPLETE": "complete_bash", "COMP_WORDS": "opsctl ser", "COMP_CWORD": "1"})
    assert result.code == 0
    assert result.stdout.split() == ["services"]
    result = opsctl(env={"_OPSCTL_COMPLETE": "complete_bash", "COMP_WORDS": "opsctl config ", "COMP_CWORD": "2"})
    assert set(result.stdout.split()) == {"validate", "show"}


def test_unknown_shell_is_a_usage_error(opsctl):
    result = opsctl("completion", "tcsh")
    assert result.code == 2
    assert "tcsh" in result.stderr
