"""Secret references: ``vault:PATH#KEY``, ``aws-sm:NAME[#KEY]``, ``file:PATH`` and ``env:NAME``.

A reference is resolved lazily, at most once per resolver (the context holds one per process).
Every value is registered with :mod:`opsctl.redact` the moment it is read, then stripped of
surrounding whitespace and checked to be one line without control characters: a token file with
a second line would otherwise end up in an HTTP header, and the client's "illegal header value"
error would print it.  Error messages name the reference, never the value.

The clients can be supplied by the caller (a per-context registry that also closes them): an
``httpx.Client`` for Vault, which the resolver then never closes, and a factory
``(region, endpoint_url, profile) -> client`` for AWS Secrets Manager.  Vault is read through the
shared retry loop (:mod:`opsctl.integrations.retry`).  httpx and boto3 are imported only when needed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import unicodedata
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
_VAULT_DEFAULT = "http://127.0.0.1:8200"
VAULT_BUDGET = 30.0  # seconds for one secret read, retries included
VAULT_REQUEST_TIMEOUT = 10.0  # per attempt (connecting: 5 s at most), capped by what is left
VAULT_ATTEMPTS = 3  # two quick retries for connection errors, 429 and 5xx
VAULT_BACKOFF = 0.2
_FILE_LIMIT = 64 * 1024

AwsClientFactory = Callable[[str | None, str | None, str | None], Any]
"""``(region, endpoint_url, profile) -> a boto3 secretsmanager client``."""


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


def check_secret(value: str, label: str) -> str:
    """``value`` without surrounding whitespace, registered for redaction; :class:`UsageError`
    naming ``label`` (never the value) unless it is one line without control characters."""
    register(value)
    stripped = value.strip()
    lines = stripped.splitlines()
    for line in lines:
        register(line.strip())
    if len(lines) > 1:
        raise UsageError(
            f"{label} has {len(lines)} lines; a secret must be a single line",
            "keep only the secret itself in it, without comments or a second value",
        )
    bad = next((c for c in stripped if unicodedata.category(c) in ("Cc", "Cf")), None)  # incl. invisible ones
    if bad is not None:
        raise UsageError(
            f"{label} contains a control character (U+{ord(bad):04X}); a secret must be printable text",
            "keep only the secret itself in it",
        )
    return stripped


def _default_aws_client(region: str | None, endpoint_url: str | None, profile: str | None) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    session = boto3.Session(profile_name=profile, region_name=region)
    return session.client(
        "secretsmanager",
        endpoint_url=endpoint_url,
        config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10),
    )


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class SecretResolver:
    """Resolves references lazily and caches them (one lookup per reference).

    A path of a single segment (``vault:db#dsn``) uses ``vault_mount``; otherwise the first
    segment is the KV v2 mount.  ``vault_client``: the ``httpx.Client`` Vault is read with,
    owned (and closed) by the caller; without it each read builds and closes its own (trusting
    ``$VAULT_CACERT``).  ``aws_client``: makes the Secrets Manager client, called once per secret
    read, with the configured region, endpoint and profile.  ``sleep``/``monotonic`` drive the
    retries' waits and time budget.
    """

    def __init__(
        self,
        vault: VaultLike | None = None,
        aws: AwsLike | None = None,
        *,
        env_policy: Literal["warn", "refuse"] = "warn",
        warn: Callable[[str], None] = _stderr_warning,
        vault_mount: str = "secret",
        vault_client: httpx.Client | None = None,
        aws_client: AwsClientFactory | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vault, self._aws = vault, aws
        self._env_policy, self._warn = env_policy, warn
        self._vault_mount = vault_mount
        self._vault_client, self._aws_client = vault_client, aws_client or _default_aws_client
        self._sleep, self._monotonic = sleep, monotonic
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
            raw: str = getattr(self, f"_resolve_{parsed.scheme.replace('-', '_')}")(parsed)
            value = check_secret(raw, f"secret {parsed}")
            if not value:
                raise UsageError(f"secret reference {parsed} resolved to an empty value")
            self._values[parsed.raw] = value
            return value

    # ------------------------------------------------------------- local

    def _resolve_file(self, ref: SecretRef) -> str:
        path = Path(ref.path).expanduser()
        try:
            with path.open("rb") as fh:
                data = fh.read(_FILE_LIMIT + 1)
            if len(data) > _FILE_LIMIT:
                raise UsageError(f"secret file {path} (reference {ref}) is larger than {_FILE_LIMIT // 1024} KiB")
            return data.decode("utf-8-sig")  # an editor's byte order mark is not part of the secret
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

        from opsctl.integrations.http import HttpClassifier
        from opsctl.integrations.http import client as http_client
        from opsctl.integrations.retry import Retrier

        token = check_secret(_vault_token(), "the Vault token (VAULT_TOKEN or ~/.vault-token)")
        headers = {"X-Vault-Token": token, "Accept": "application/json"}
        namespace = os.environ.get("VAULT_NAMESPACE") or (self._vault.namespace if self._vault else None)
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        retrier = Retrier(
            f"Vault at {address}",
            request_timeout=VAULT_REQUEST_TIMEOUT,
            classifier=HttpClassifier(detail=_vault_errors),
            sleep=self._sleep,
            monotonic=self._monotonic,
            hint=f"{ref} could not be read; check that Vault is up and unsealed (VAULT_ADDR)",
            hints={"tls": "set VAULT_CACERT to the CA that signed Vault's certificate"},
            backoff_initial=VAULT_BACKOFF,
            max_attempts=VAULT_ATTEMPTS,
        )
        owned = None
        if self._vault_client is None:
            owned = http_client(timeout=httpx.Timeout(10.0, connect=5.0), verify=os.environ.get("VAULT_CACERT") or True)
        client = self._vault_client or owned
        assert client is not None
        try:
            response = retrier.call(
                lambda timeout: client.get(
                    url, headers=headers, timeout=httpx.Timeout(timeout, connect=min(5.0, timeout))
                ),
                f"GET {ref}",
                retrier.budget(VAULT_BUDGET),
                idempotent=True,
            )
        finally:
            if owned is not None:
                owned.close()
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
        from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

        where = f"AWS Secrets Manager ({endpoint or region or 'default region'})"
        try:
            client = self._aws_client(region, endpoint, self._aws.profile if self._aws else None)
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
