"""What a command gets: settings, output, clock, sleep, progress, and lazily built clients.

One :class:`Context` per invocation.  Tests build their own (``Context(...)`` with a fixed
clock and sleep, a temp state dir, captured streams; ``ctx.clients.put(...)`` for their own
clients) instead of patching.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.errors import RefusedError, UsageError
from opsctl.output import Output
from opsctl.timeutil import Clock, utcnow

if TYPE_CHECKING:
    from opsctl.clients import Clients
    from opsctl.configfile import Source
    from opsctl.integrations.pagerduty import PagerDutyAdapter
    from opsctl.operations.progress import Progress, Sink
    from opsctl.secrets import SecretResolver
    from opsctl.settings import Config, Integrations, Service
    from opsctl.state.base import Store
    from opsctl.state.locks import LockBackend


log = logging.getLogger("opsctl.context")


@dataclass
class Context:
    config_path: str | None = None
    env_name: str | None = None
    output: Output = field(default_factory=Output)
    dry_run: bool = False
    yes: bool = False
    verbose: int = 0
    clock: Clock = utcnow
    state_dir: Path | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv[1:]))
    is_tty: Callable[[], bool] = field(default=lambda: sys.stdin.isatty())
    sleep: Callable[[float], None] = field(default=lambda seconds: _sleep(seconds))  # cut short by signals in a run
    log_format: str = "text"

    # ------------------------------------------------------------ config
    @cached_property
    def source(self) -> Source:
        from opsctl.configfile import discover

        return discover(self.config_path)

    @cached_property
    def settings(self) -> Config:
        from opsctl.configfile import load

        source = self.source
        config = load(source)
        log.info("config %s (from %s): %d services", source.label, source.reason, len(config.services))
        return config

    @cached_property
    def snapshot(self) -> dict[str, Any]:
        """The validated config as plain data, cached by content (fast read-only views)."""
        from opsctl.configfile import snapshot
        from opsctl.state import default_state_dir

        return snapshot(self.source, (self.state_dir or default_state_dir()) / "config-cache")

    @property
    def env(self) -> str:
        """The environment this invocation works in (``--env``, ``$OPSCTL_ENV``, the config's default)."""
        env = self.env_name or self.settings.default_env
        if env not in self.settings.environments:
            raise UsageError(f"unknown environment {env!r}", _env_hint(env, list(self.settings.environments)))
        return env

    def service(self, name: str, *, env: str | None = None) -> Service:
        """The named service with the blocks of ``env`` (default: this invocation's) applied;
        exit 2 with suggestions if unknown."""
        found = self.settings.service(name)
        if found is None:
            names = [s.name for s in self.settings.services]
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "run 'opsctl services' to list them"
            raise UsageError(f"unknown service {name!r}", hint)
        from opsctl.logging import set_service

        set_service(found.name)
        return found.in_env(env or self.env)

    def check_env(self) -> None:
        """Refuse an unknown ``--env``/``$OPSCTL_ENV`` early (exit 2, with suggestions), from the
        cached config snapshot so that even the fast read-only commands check it."""
        if self.env_name is None or "settings" in self.__dict__:
            return
        known = list(self.snapshot.get("environments", []))
        if known and self.env_name not in known:
            raise UsageError(f"unknown environment {self.env_name!r}", _env_hint(self.env_name, known))

    def integrations_for(self, env: str | None = None) -> Integrations:
        """The integration settings of ``env`` (default: this invocation's), overrides merged."""
        return self.settings.integrations_for(env or self.env)

    # ------------------------------------------------------------- clients
    @cached_property
    def clients(self) -> Clients:
        from opsctl.clients import Clients

        return Clients(self)

    @property
    def secrets(self) -> SecretResolver:
        return self.clients.get("secrets")  # type: ignore[no-any-return]

    def resolve(self, value: str | None) -> str | None:
        """A config value that may be a secret reference, resolved (lazily, once per process)."""
        from opsctl.redact import is_reference

        if value is None or not is_reference(value):
            return value
        return self.secrets.resolve(value)

    @property
    def store(self) -> Store:
        return self.clients.get("state")  # type: ignore[no-any-return]

    @property
    def locks(self) -> LockBackend:
        return self.clients.get("locks")  # type: ignore[no-any-return]

    @property
    def pagerduty(self) -> PagerDutyAdapter | None:
        """The PagerDuty client of this environment, or None when no token is configured."""
        return self.clients.get("pagerduty")  # type: ignore[no-any-return]

    # ------------------------------------------------------------- progress
    def progress_sink(self, *, quiet: bool = False) -> Sink:
        """Where progress is drawn: a live display on a terminal, lines in a pipe, JSON lines
        with ``--log-format json``; nothing for a ``quiet`` task (a short one) unless ``-v``."""
        if quiet and self.verbose == 0:
            from opsctl.operations.progress import NullSink

            return NullSink()
        from opsctl import display

        if self.log_format == "json":
            return display.JsonSink(self.clock)
        if self.output.interactive:
            return display.LiveSink(self.output.err)
        return display.LineSink(self.output.err, self.clock)

    def progress(self, title: str = "") -> Progress:
        """A progress reporter for an engine's long task (outside a run: a scan, a wait)."""
        from opsctl.operations.progress import Progress

        return Progress(self.progress_sink(), self.clock, title=title)

    # ------------------------------------------------------ confirmation
    def needs_confirmation(self, service: Service | None) -> bool:
        tier = service.tier if service is not None else -1
        return self.settings.policy.needs_confirmation(tier, self.env)

    def confirm(self, question: str, *, service: Service | None = None, always: bool = False) -> None:
        """Ask before a risky change when policy says so; refuse (exit 3) when nobody can answer."""
        if self.yes or self.dry_run or not (always or self.needs_confirmation(service)):
            return
        if not self.is_tty():
            raise RefusedError(
                f"confirmation needed to {question} and there is no terminal to ask",
                "rerun with --yes to confirm, or --dry-run to see the plan",
            )
        import typer

        try:
            answer = typer.confirm(f"{question} [{self.env}]?", default=False, err=True)
        except typer.Abort as exc:  # Ctrl-C at the prompt is an interruption; end of input is a "no"
            if isinstance(exc.__context__, KeyboardInterrupt):
                raise exc.__context__ from None
            answer = False
        if not answer:
            raise RefusedError("not confirmed; nothing was changed")

    def close(self) -> None:
        clients = self.__dict__.get("clients")
        if clients is not None:
            clients.close()


def _sleep(seconds: float) -> None:
    from opsctl.operations.signals import interruptible_sleep

    interruptible_sleep(seconds)


def _env_hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=2)
    listed = ", ".join(known)
    return f"did you mean {' or '.join(close)}? (environments: {listed})" if close else f"use one of: {listed}"


def environ_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
