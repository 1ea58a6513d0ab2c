"""Running a server tool (pgBackRest, pg_ctl, pg_basebackup) with a time limit: no shell, its own
process group (killed whole on timeout), output captured, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess

from opsctl.errors import UpstreamError


def run_bounded(
    argv: list[str], *, timeout: float, what: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell) in its own process group; on timeout the whole group is killed.
    ``env`` adds variables to the inherited environment (a password never goes on a command line)."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    except OSError as exc:
        raise UpstreamError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise UpstreamError(f"{what} timed out after {timeout:g}s") from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
