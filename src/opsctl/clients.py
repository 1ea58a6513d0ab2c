"""One registry of clients per invocation: built lazily per (kind, service, environment), closed together.

    ctx.clients.get("pagerduty")                 # for the context's environment
    ctx.clients.get("state")                     # shared by every environment
    ctx.clients.put("pagerduty", fake_adapter)   # tests swap in their own

Factories read the config (the environment's integration settings) and resolve secrets
through the context; heavy client libraries are imported inside them only.  ``close()``
closes what was built, newest first, and never lets one failure hide another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.context import Context

log = logging.getLogger("opsctl.clients")

Factory = Callable[["Context", "str | None", "str | None"], Any]
Key = tuple[str, str | None, str | None]

# Kinds that are the same in every environment (no env in their key).
GLOBAL = {"state", "locks", "secrets", "vault-http"}


class Clients:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._made: dict[Key, Any] = {}
        self._factories: dict[str, Factory] = dict(FACTORIES)

    def _key(self, kind: str, service: str | None, env: str | None) -> Key:
        if kind in GLOBAL:
            return (kind, None, None)
        return (kind, service, env if env is not None else self._ctx.env)

    def get(self, kind: str, *, service: str | None = None, env: str | None = None) -> Any:
        key = self._key(kind, service, env)
        if key not in self._made:
            factory = self._factories.get(kind)
            if factory is None:
                raise UsageError(f"no client of kind {kind!r}")
            self._made[key] = factory(self._ctx, key[1], key[2])
        return self._made[key]

    def built(self, kind: str, *, service: str | None = None, env: str | None = None) -> bool:
        return self._key(kind, service, env) in self._made

    def put(self, kind: str, client: Any, *, service: str | None = None, env: str | None = None) -> None:
        """Use ``client`` for this key (tests; or a caller that built one itself)."""
        self._made[self._key(kind, service, env)] = client

    def register(self, kind: str, factory: Factory) -> None:
        self._factories[kind] = factory

    def close(self) -> None:
        made, self._made = self._made, {}
        for key, client in reversed(list(made.items())):
            closer = getattr(client, "close", None)
            if closer is None:
                continue
            try:
                closer()
            except Exception as exc:  # closing one client must not stop the others
                log.warning("could not close the %s client: %s", key[0], exc)


# ---------------------------------------------------------------------- factories


def _state(ctx: Context, service: str | None, env: str | None) -> Any:
    from opsctl.state import default_state_dir, open_store

    url = ctx.resolve(ctx.settings.state.url)
    return open_store(url, ctx.state_dir or default_state_dir())


def _locks(ctx: Context, service: str | None, env: str | None) -> Any:
    from opsctl.state.locks import RedisLockBackend, StoreLockBackend

    state = ctx.settings.state
    if state.locks == "redis":
        url = ctx.resolve(state.redis_url)
        if not url:
            raise UsageError("state.locks is redis but state.redis_url is not set", "set state.redis_url")
        return RedisLockBackend(url)
    return StoreLockBackend(ctx.clients.get("state"))


def _secrets(ctx: Context, service: str | None, env: str | None) -> Any:
    """Secret references are resolved with the config's global settings (the config itself
    holds them: they cannot depend on the environment being worked on)."""
    from opsctl.secrets import SecretResolver

    settings = ctx.settings

    def aws_client(region: str | None, endpoint_url: str | None, profile: str | None) -> Any:
        return ctx.clients.get("aws", env="-").client(
            "secretsmanager", region=region, endpoint_url=endpoint_url, profile=profile
        )

    return SecretResolver(
        vault=settings.integrations.vault,
        aws=settings.integrations.aws,
        env_policy=settings.policy.plaintext_env_secrets,
        warn=ctx.output.warn,
        vault_mount=settings.integrations.vault.mount,
        vault_client=ctx.clients.get("vault-http"),
        aws_client=aws_client,
        sleep=ctx.sleep,
    )


def _vault_http(ctx: Context, service: str | None, env: str | None) -> Any:
    """An httpx client for Vault (built lazily: httpx is imported when a vault: reference is read)."""

    def make() -> Any:
        import os

        from opsctl.integrations.http import client

        return client(verify=os.environ.get("VAULT_CACERT") or True)

    return _LazyHttp(make)


class _LazyHttp:
    """Builds the real httpx client on first use, so that a config without Vault never imports httpx."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _aws(ctx: Context, service: str | None, env: str | None) -> Any:
    from opsctl.integrations.aws import AwsClients

    bundle = ctx.integrations_for(env if env not in (None, "-") else None).aws.ca_bundle
    return AwsClients(verify=str(Path(bundle).expanduser()) if bundle else True)


def _pagerduty(ctx: Context, service: str | None, env: str | None) -> Any:
    """The PagerDuty adapter for ``env``, or None when no token is configured (incidents stay local)."""
    settings = ctx.integrations_for(env).pagerduty
    if not settings.token:
        return None
    if not settings.from_:
        raise UsageError("integrations.pagerduty.from is not set", "set it to the email PagerDuty should act as")
    from opsctl.integrations.pagerduty import PagerDutyAdapter

    token = ctx.resolve(settings.token)
    assert token is not None
    return PagerDutyAdapter(
        token=token,
        from_email=settings.from_,
        base_url=settings.base_url,
        ca_bundle=settings.ca_bundle,
        budget=settings.timeout.total_seconds(),
        request_timeout=settings.request_timeout.total_seconds(),
        sleep=ctx.sleep,
    )


def _kube(ctx: Context, service: str | None, env: str | None) -> Any:
    """Kubernetes for a service in an environment: the environment's kubeconfig, the service's
    context (or the environment's default context)."""
    from opsctl.integrations.kube import KubeClient

    settings = ctx.integrations_for(env).kubernetes
    context = settings.context
    if service is not None:
        block = ctx.service(service, env=env).kubernetes
        if block is not None and block.context:
            context = block.context
    return KubeClient(
        settings.kubeconfig,
        context,
        request_timeout=settings.request_timeout.total_seconds(),
        budget=settings.timeout.total_seconds(),
        sleep=ctx.sleep,
    )


def _prometheus(ctx: Context, service: str | None, env: str | None) -> Any:
    from opsctl.integrations.prometheus import PrometheusClient

    settings = ctx.integrations_for(env).prometheus
    return PrometheusClient(
        settings.url, ca_bundle=settings.ca_bundle, budget=settings.timeout.total_seconds(), sleep=ctx.sleep
    )


FACTORIES: dict[str, Factory] = {
    "kube": _kube,
    "prometheus": _prometheus,
    "state": _state,
    "locks": _locks,
    "secrets": _secrets,
    "vault-http": _vault_http,
    "aws": _aws,
    "pagerduty": _pagerduty,
}
