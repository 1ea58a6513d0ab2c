"""One exit-code enum and the error types that carry them.

Every error opsctl raises on purpose is an :class:`OpsctlError`; the CLI's error
boundary turns it into one clear line on stderr and its exit code.  Anything
else is a bug and is reported as such (a traceback only with ``OPSCTL_DEBUG=1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation ran and failed, found violations, or rolled back
    USAGE = 2  # usage or configuration error
    REFUSED = 3  # refused by a precondition or safety rule
    UPSTREAM = 4  # an upstream system failed after retries
    INTERRUPTED = 130


class OpsctlError(Exception):
    """Base error: ``message`` says what was wrong, ``hint`` what to do."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        text = self.message if not self.hint else f"{self.message}; {self.hint}"
        return [text]


class FailedError(OpsctlError):
    exit_code = ExitCode.FAILED


class UsageError(OpsctlError):
    exit_code = ExitCode.USAGE


class RefusedError(OpsctlError):
    exit_code = ExitCode.REFUSED


class UpstreamError(OpsctlError):
    exit_code = ExitCode.UPSTREAM


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file, located as precisely as we can."""

    file: str
    line: int | None
    path: str  # dotted key path, e.g. ``services.auth.tier``; "" for the document
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(OpsctlError):
    """A config file is invalid; carries every problem found, not just the first."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        first = str(problems[0]) if problems else "invalid configuration"
        super().__init__(first, None)

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]
