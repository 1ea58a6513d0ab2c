"""What a command gets: settings, output, clock, state, locks, secrets — built lazily.

One :class:`Context` per invocation.  Tests build their own (``Context(...)``
with a fixed clock, a temp state dir, captured streams) instead of patching.
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
    from opsctl.configfile import Source
    from opsctl.integrations.pagerduty import PagerDutyAdapter
    from opsctl.secrets import SecretResolver
    from opsctl.settings import Config, Service
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
            known = ", ".join(self.settings.environments)
            raise UsageError(f"unknown environment {env!r}", f"use one of: {known}")
        return env

    def service(self, name: str) -> Service:
        """The named service with its environment's blocks applied; exit 2 with suggestions if unknown."""
        found = self.settings.service(name)
        if found is None:
            names = [s.name for s in self.settings.services]
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "run 'opsctl services' to list them"
            raise UsageError(f"unknown service {name!r}", hint)
        return found.in_env(self.env)

    # ------------------------------------------------------------- state
    @cached_property
    def secrets(self) -> SecretResolver:
        from opsctl.secrets import SecretResolver

        settings = self.settings
        return SecretResolver(
            vault=settings.integrations.vault,
            aws=settings.integrations.aws,
            env_policy=settings.policy.plaintext_env_secrets,
            warn=self.output.warn,
            vault_mount=settings.integrations.vault.mount,
        )

    def resolve(self, value: str | None) -> str | None:
        """A config value that may be a secret reference, resolved (lazily, once per process)."""
        from opsctl.redact import is_reference

        if value is None or not is_reference(value):
            return value
        return self.secrets.resolve(value)

    @cached_property
    def store(self) -> Store:
        from opsctl.state import default_state_dir, open_store

        url = self.resolve(self.settings.state.url)
        return open_store(url, self.state_dir or default_state_dir())

    @cached_property
    def locks(self) -> LockBackend:
        from opsctl.state.locks import RedisLockBackend, StoreLockBackend

        state = self.settings.state
        if state.locks == "redis":
            url = self.resolve(state.redis_url)
            if not url:
                raise UsageError("state.locks is redis but state.redis_url is not set", "set state.redis_url")
            return RedisLockBackend(url)
        return StoreLockBackend(self.store)

    @cached_property
    def pagerduty(self) -> PagerDutyAdapter | None:
        """The PagerDuty client, or None when no token is configured (incidents stay local)."""
        settings = self.settings.integrations.pagerduty
        if not settings.token:
            return None
        if not settings.from_:
            raise UsageError("integrations.pagerduty.from is not set", "set it to the email PagerDuty should act as")
        from opsctl.integrations.pagerduty import PagerDutyAdapter

        token = self.resolve(settings.token)
        assert token is not None
        return PagerDutyAdapter(
            token=token,
            from_email=settings.from_,
            base_url=settings.base_url,
            ca_bundle=settings.ca_bundle,
            budget=settings.timeout.total_seconds(),
            request_timeout=settings.request_timeout.total_seconds(),
        )

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

        answer = typer.confirm(f"{question} [{self.env}]?", default=False, err=True)
        if not answer:
            raise RefusedError("not confirmed; nothing was changed")

    def close(self) -> None:
        for name in ("pagerduty", "store"):
            resource = self.__dict__.get(name)
            if resource is not None:
                resource.close()


def environ_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def audit_args(params: dict[str, Any]) -> dict[str, Any]:
    """Command arguments as they go into the audit log: secrets masked, None dropped."""
    from opsctl.output import to_plain
    from opsctl.redact import redact_data

    cleaned = {k: v for k, v in params.items() if v is not None and k not in ("ctx",)}
    return dict(redact_data(to_plain(cleaned)))
