"""Secret references: ``vault:PATH#KEY``, ``aws-sm:NAME[#KEY]``, ``file:PATH`` and ``env:NAME``.

A reference is resolved lazily, at most once per resolver (the context holds one per process),
and every value is registered with :mod:`opsctl.redact` before it is returned.  Error messages
name the reference, never the value.  httpx and boto3 are imported only when they are needed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

from opsctl.errors import RefusedError, UpstreamError, UsageError
from opsctl.redact import is_reference as is_reference  # re-exported: part of this module's API
from opsctl.redact import redact, register

if TYPE_CHECKING:
    import httpx

    from opsctl.settings import Config

Scheme = Literal["vault", "aws-sm", "file", "env"]
SCHEMES: tuple[Scheme, ...] = ("vault", "aws-sm", "file", "env")
FORMS = "vault:PATH#KEY, aws-sm:NAME[#KEY], file:PATH or env:NAME"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RETRY_DELAYS = (0.2, 0.5)  # two quick retries for connection errors, 429 and 5xx
_VAULT_DEFAULT = "http://127.0.0.1:8200"


class VaultLike(Protocol):
    @property
    def address(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...


class AwsLike(Protocol):
    @property
    def region(self) -> str: ...
    @property
    def endpoint_url(self) -> str | None: ...
    @property
    def profile(self) -> str | None: ...


@dataclass(frozen=True)
class SecretRef:
    """A parsed reference; holds only the reference, so its repr is safe to show."""

    scheme: Scheme
    path: str
    key: str | None
    raw: str

    def __str__(self) -> str:
        return self.raw


def parse_ref(text: str) -> SecretRef:
    """Parse a reference; :class:`UsageError` if it is malformed.  The text of something
    that is not a reference at all is not echoed: it may be a pasted secret."""
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in SCHEMES:
        shown = f" {scheme!r}" if sep and re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme) else ""
        raise UsageError(f"not a secret reference: unknown scheme{shown}", hint=f"use {FORMS}")
    if not rest or any(c.isspace() for c in text):
        raise UsageError(f"malformed secret reference {text!r}: empty or contains spaces", hint=f"use {FORMS}")
    path, key = rest, None
    if scheme in ("vault", "aws-sm"):
        path, has_key, key_text = rest.partition("#")
        key = key_text if has_key else None
        if has_key and not key_text:
            raise UsageError(f"malformed secret reference {text!r}: empty key after '#'")
        if not path:
            raise UsageError(f"malformed secret reference {text!r}: no {'path' if scheme == 'vault' else 'name'}")
    if scheme == "vault":
        if key is None:
            raise UsageError(f"malformed secret reference {text!r}: Vault references need a key", hint="vault:PATH#KEY")
        path = path.strip("/")
        if not path or "" in path.split("/"):
            raise UsageError(f"malformed secret reference {text!r}: bad Vault path", hint="vault:MOUNT/PATH#KEY")
    elif scheme == "env" and not _ENV_NAME.match(rest):
        raise UsageError(f"malformed secret reference {text!r}: not an environment variable name")
    return SecretRef(scheme, path, key, text)


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class SecretResolver:
    """Resolves references lazily and caches them (one lookup per reference).

    A path of a single segment (``vault:db#dsn``) uses ``vault_mount``; otherwise the first
    segment is the KV v2 mount.  ``http_client`` makes a new ``httpx.Client`` for Vault.
    """

    def __init__(
        self,
        vault: VaultLike | None = None,
        aws: AwsLike | None = None,
        *,
        env_policy: Literal["warn", "refuse"] = "warn",
        warn: Callable[[str], None] = _stderr_warning,
        vault_mount: str = "secret",
        http_client: Callable[[], httpx.Client] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._vault, self._aws = vault, aws
        self._env_policy, self._warn = env_policy, warn
        self._vault_mount = vault_mount
        self._http_client, self._sleep = http_client, sleep
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        self._documents: dict[tuple[str, str], Any] = {}  # fetched secrets, shared by their keys

    @classmethod
    def from_config(cls, config: Config, *, warn: Callable[[str], None] = _stderr_warning) -> SecretResolver:
        vault = config.integrations.vault
        return cls(
            vault,
            config.integrations.aws,
            env_policy=config.policy.plaintext_env_secrets,
            warn=warn,
            vault_mount=vault.mount,
        )

    def resolve(self, ref: str | SecretRef) -> str:
        parsed = ref if isinstance(ref, SecretRef) else parse_ref(ref)
        with self._lock:
            if parsed.raw in self._values:
                return self._values[parsed.raw]
            value: str = getattr(self, f"_resolve_{parsed.scheme.replace('-', '_')}")(parsed)
            if not value:
                raise UsageError(f"secret reference {parsed} resolved to an empty value")
            register(value)
            self._values[parsed.raw] = value
            return value

    # ------------------------------------------------------------- local

    def _resolve_file(self, ref: SecretRef) -> str:
        path = Path(ref.path).expanduser()
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise UsageError(f"secret file {path} not found (reference {ref})") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise UsageError(f"cannot read secret file {path} (reference {ref}): {reason}") from None

    def _resolve_env(self, ref: SecretRef) -> str:
        where = "store it in Vault (vault:PATH#KEY) or AWS Secrets Manager (aws-sm:NAME[#KEY])"
        if self._env_policy == "refuse":
            raise RefusedError(
                f"secret reference {ref} is a plain-text environment variable, which the security policy refuses",
                hint=where,
            )
        self._warn(
            f"secret reference {ref} reads a plain-text environment variable, against the security policy; {where}"
        )
        value = os.environ.get(ref.path)
        if value is None:
            raise UsageError(f"environment variable {ref.path} is not set (secret reference {ref})")
        return value

    # ------------------------------------------------------------- vault

    def _resolve_vault(self, ref: SecretRef) -> str:
        address = (os.environ.get("VAULT_ADDR") or (self._vault.address if self._vault else _VAULT_DEFAULT)).rstrip("/")
        mount, _, rest = ref.path.partition("/")
        if not rest:
            mount, rest = self._vault_mount, ref.path
        url = f"{address}/v1/{quote(mount, safe='')}/data/{'/'.join(quote(s, safe='') for s in rest.split('/'))}"
        if ("vault", url) not in self._documents:
            self._documents[("vault", url)] = self._fetch_vault(ref, address, url)
        data = self._documents[("vault", url)]
        return _pick(data, ref, f"Vault secret {mount}/{rest}")

    def _fetch_vault(self, ref: SecretRef, address: str, url: str) -> Any:
        import httpx

        from opsctl.integrations.http import client as http_client

        headers = {"X-Vault-Token": _vault_token(), "Accept": "application/json"}
        register(headers["X-Vault-Token"])
        namespace = os.environ.get("VAULT_NAMESPACE") or (self._vault.namespace if self._vault else None)
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        make = self._http_client or (
            lambda: http_client(timeout=httpx.Timeout(10.0, connect=5.0), verify=os.environ.get("VAULT_CACERT") or True)
        )
        problem = ""
        for attempt in range(len(_RETRY_DELAYS) + 1):
            if attempt:
                self._sleep(_RETRY_DELAYS[attempt - 1])
            try:
                with make() as client:
                    response = client.get(url, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                problem = f"HTTP {response.status_code}{_vault_errors(response)}"
                continue
            if response.status_code == 403:
                raise UsageError(
                    f"Vault at {address} denied access to {ref} (403{_vault_errors(response)})",
                    hint="check the token's policies, or run 'vault login'",
                )
            if response.status_code == 404:
                if _deleted(response):
                    raise UsageError(f"secret {ref} is deleted in Vault at {address}", hint="undelete or rewrite it")
                raise UsageError(f"secret {ref} not found in Vault at {address}", hint="check the mount and path")
            if response.status_code != 200:
                raise UsageError(
                    f"Vault at {address} rejected {ref} (HTTP {response.status_code}{_vault_errors(response)})"
                )
            try:
                data = response.json()["data"]["data"]
            except (ValueError, KeyError, TypeError):
                raise UpstreamError(f"Vault at {address} sent an unexpected answer for {ref}") from None
            if not isinstance(data, dict):
                raise UpstreamError(f"Vault at {address} sent no data for {ref}")
            return data
        raise UpstreamError(f"Vault at {address} failed for {ref} after {len(_RETRY_DELAYS) + 1} attempts ({problem})")

    # ------------------------------------------------------------- aws

    def _resolve_aws_sm(self, ref: SecretRef) -> str:
        region = self._aws.region if self._aws else None
        endpoint = self._aws.endpoint_url if self._aws else None
        cache_key = ("aws-sm", f"{region}|{endpoint}|{ref.path}")
        if cache_key not in self._documents:
            self._documents[cache_key] = self._fetch_aws(ref, region, endpoint)
        text: str = self._documents[cache_key]
        if ref.key is None:
            return text
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UsageError(f"AWS secret {ref.path} is not a JSON object, so {ref} cannot pick the key {ref.key!r}")
        return _pick(data, ref, f"AWS secret {ref.path}")

    def _fetch_aws(self, ref: SecretRef, region: str | None, endpoint: str | None) -> str:
        import boto3
        from botocore.config import Config as BotoConfig
        from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

        where = f"AWS Secrets Manager ({endpoint or region or 'default region'})"
        try:
            session = boto3.Session(profile_name=self._aws.profile if self._aws else None, region_name=region)
            client = session.client(
                "secretsmanager",
                endpoint_url=endpoint,
                config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10),
            )
            answer = client.get_secret_value(SecretId=ref.path)
        except ProfileNotFound as exc:
            raise UsageError(f"cannot read {ref}: {exc}", hint="check integrations.aws.profile") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise UsageError(
                    f"secret {ref} not found in {where}", hint="check the secret name and region"
                ) from None
            if code in ("AccessDeniedException", "InvalidRequestException", "InvalidParameterException"):
                message = exc.response.get("Error", {}).get("Message", "")
                raise UsageError(f"{where} refused {ref}: {code}: {message}") from None
            raise UpstreamError(f"{where} failed for {ref}: {code or exc}") from None
        except BotoCoreError as exc:
            raise UpstreamError(f"{where} failed for {ref}: {exc}") from None
        if answer.get("SecretString") is not None:
            return str(answer["SecretString"])
        try:
            return bytes(answer["SecretBinary"]).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            raise UsageError(f"AWS secret {ref.path} holds binary data, not text") from None


def _pick(data: dict[str, Any], ref: SecretRef, what: str) -> str:
    """The field ``ref.key`` of a secret; an error lists the keys, never their values."""
    assert ref.key is not None
    if ref.key not in data:
        keys = ", ".join(sorted(map(str, data))) or "none"
        raise UsageError(f"key {ref.key!r} not found in {what} (reference {ref}; keys: {keys})")
    value = data[ref.key]
    return value if isinstance(value, str) else json.dumps(value)


def _vault_token() -> str:
    token = os.environ.get("VAULT_TOKEN", "").strip()
    if not token:
        try:
            token = (Path.home() / ".vault-token").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError, RuntimeError):
            token = ""
    if not token:
        raise UsageError("no Vault token: set VAULT_TOKEN or run 'vault login'")
    return token


def _vault_errors(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    return f": {redact('; '.join(map(str, errors)))}" if errors else ""


def _deleted(response: httpx.Response) -> bool:
    """KV v2 answers 404 with the metadata when the latest version is soft-deleted or destroyed."""
    try:
        metadata = response.json()["data"]["metadata"]
        return bool(metadata.get("deletion_time") or metadata.get("destroyed"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
