"""Secret references against a fake Vault over real HTTP and moto's real Secrets Manager server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

import opsctl
from opsctl import redact
from opsctl.errors import ExitCode, OpsctlError, RefusedError, UpstreamError, UsageError
from opsctl.secrets import SecretRef, SecretResolver, is_reference, parse_ref
from opsctl.settings import AwsIntegration, Config, VaultIntegration
from tests.fakes.vault import FakeVault

TOKEN = "s.fake-vault-token-1234"
DSN = "postgresql://auth:correct-horse-battery@db.internal:5432/auth"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _message(error: OpsctlError) -> str:
    return " ".join(error.lines())


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    redact.forget_all()
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for name in ("VAULT_TOKEN", "VAULT_ADDR", "VAULT_NAMESPACE", "VAULT_CACERT", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield
    redact.forget_all()


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vault:secret/auth/db#dsn", SecretRef("vault", "secret/auth/db", "dsn", "vault:secret/auth/db#dsn")),
        ("vault:/secret/auth/db/#dsn", SecretRef("vault", "secret/auth/db", "dsn", "vault:/secret/auth/db/#dsn")),
        ("aws-sm:prod/billing", SecretRef("aws-sm", "prod/billing", None, "aws-sm:prod/billing")),
        (
            "aws-sm:prod/billing#password",
            SecretRef("aws-sm", "prod/billing", "password", "aws-sm:prod/billing#password"),
        ),
        ("file:~/.pg#pass", SecretRef("file", "~/.pg#pass", None, "file:~/.pg#pass")),
        ("env:PGPASSWORD", SecretRef("env", "PGPASSWORD", None, "env:PGPASSWORD")),
    ],
)
def test_parse_ref_accepts_the_four_schemes(text: str, expected: SecretRef) -> None:
    assert parse_ref(text) == expected
    assert is_reference(text)
    assert str(parse_ref(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "vault:secret/auth/db",  # no key
        "vault:secret/auth/db#",  # empty key
        "vault:#dsn",  # no path
        "vault:secret//db#dsn",  # empty segment
        "aws-sm:#key",
        "aws-sm:name#",
        "env:NOT-A-NAME",
        "env:",
        "file:",
        "file:/tmp/with space",
        "s3:bucket/key",
        "no-colon-at-all",
    ],
)
def test_parse_ref_rejects_malformed_references(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_ref(text)
    assert info.value.exit_code == ExitCode.USAGE


def test_parse_ref_does_not_echo_text_that_is_not_a_reference() -> None:
    with pytest.raises(UsageError) as info:
        parse_ref("hunter2-Pa55word")
    assert "hunter2" not in _message(info.value)
    with pytest.raises(UsageError) as info:
        parse_ref("postgres://app:s3cr3t-pw@db/app")
    assert "s3cr3t" not in _message(info.value)
    assert "'postgres'" in _message(info.value)


def test_is_reference() -> None:
    assert is_reference("vault:secret/x#k")
    assert is_reference("aws-sm:name")
    assert not is_reference("redis://cache:6379/0")
    assert not is_reference("vault:")
    assert not is_reference("plain text")


def test_importing_secrets_does_not_import_boto3_or_httpx() -> None:
    src = str(Path(opsctl.__file__).resolve().parent.parent)
    code = "import sys, opsctl.secrets; print(sorted(m for m in ('boto3', 'botocore', 'httpx') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": src}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------ vault


@pytest.fixture(scope="module")
def vault_server() -> Iterator[FakeVault]:
    with FakeVault(token=TOKEN) as server:
        yield server


@pytest.fixture
def vault(vault_server: FakeVault, monkeypatch: pytest.MonkeyPatch) -> FakeVault:
    vault_server.reset()
    vault_server.put("secret/auth/db", {"dsn": DSN, "user": "auth", "port": 5432})
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    return vault_server


def _resolver(vault: FakeVault | None = None, **kwargs: Any) -> SecretResolver:
    address = vault.url if vault else "http://127.0.0.1:1"
    kwargs.setdefault("sleep", lambda seconds: None)
    return SecretResolver(VaultIntegration(address=address), AwsIntegration(), **kwargs)


def test_vault_reads_kv2_data_with_token_header(vault: FakeVault) -> None:
    assert _resolver(vault).resolve("vault:secret/auth/db#dsn") == DSN
    [request] = vault.requests
    assert request.method == "GET"
    assert request.path == "/v1/secret/data/auth/db"
    assert request.header("X-Vault-Token") == TOKEN
    assert request.header("X-Vault-Namespace") is None


def test_vault_sends_namespace_when_configured(vault: FakeVault) -> None:
    resolver = SecretResolver(VaultIntegration(address=vault.url, namespace="team-a"), sleep=lambda s: None)
    assert resolver.resolve("vault:secret/auth/db#user") == "auth"
    assert vault.requests[0].header("X-Vault-Namespace") == "team-a"


def test_vault_single_segment_path_uses_the_configured_mount(vault: FakeVault) -> None:
    vault.put("kv/db", {"password": "mount-default-pw"})
    resolver = _resolver(vault, vault_mount="kv")
    assert resolver.resolve("vault:db#password") == "mount-default-pw"
    assert vault.requests[-1].path == "/v1/kv/data/db"


def test_vault_non_string_values_come_back_as_json(vault: FakeVault) -> None:
    assert _resolver(vault).resolve("vault:secret/auth/db#port") == "5432"


def test_vault_request_carries_the_invocation_trace(vault: FakeVault) -> None:
    from opsctl import tracing

    trace = tracing.start_trace()
    _resolver(vault).resolve("vault:secret/auth/db#dsn")
    sent = vault.requests[0].header("traceparent")
    assert sent is not None
    assert re.fullmatch(rf"00-{trace}-[0-9a-f]{{16}}-01", sent), sent


def test_vault_addr_environment_overrides_configured_address(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    resolver = SecretResolver(VaultIntegration(address="http://127.0.0.1:1"), sleep=lambda s: None)
    assert resolver.resolve("vault:secret/auth/db#dsn") == DSN


def test_vault_token_from_home_file(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN")
    (Path(os.environ["HOME"]) / ".vault-token").write_text(TOKEN + "\n")
    assert _resolver(vault).resolve("vault:secret/auth/db#dsn") == DSN
    assert vault.requests[0].header("X-Vault-Token") == TOKEN


def test_vault_without_token_is_a_usage_error(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(UsageError) as info:
        _resolver(vault).resolve("vault:secret/auth/db#dsn")
    assert info.value.message == "no Vault token: set VAULT_TOKEN or run 'vault login'"
    assert vault.requests == []


def test_vault_wrong_token_is_a_usage_error_with_hint(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong-token-5678")
    with pytest.raises(UsageError) as info:
        _resolver(vault).resolve("vault:secret/auth/db#dsn")
    text = _message(info.value)
    assert "403" in text and "permission denied" in text and "vault login" in text
    assert "vault:secret/auth/db#dsn" in text
    assert "s.wrong-token-5678" not in text
    assert len(vault.requests) == 1  # no retries on 403


def test_vault_unknown_path_names_the_reference(vault: FakeVault) -> None:
    with pytest.raises(UsageError) as info:
        _resolver(vault).resolve("vault:secret/auth/nope#dsn")
    assert "vault:secret/auth/nope#dsn" in info.value.message
    assert "not found" in info.value.message


def test_vault_deleted_secret_says_so(vault: FakeVault) -> None:
    vault.delete("secret/auth/db")
    with pytest.raises(UsageError, match="is deleted"):
        _resolver(vault).resolve("vault:secret/auth/db#dsn")


def test_vault_missing_key_names_key_and_keys_but_no_values(vault: FakeVault) -> None:
    with pytest.raises(UsageError) as info:
        _resolver(vault).resolve("vault:secret/auth/db#password")
    text = _message(info.value)
    assert "'password'" in text and "dsn, port, user" in text
    assert DSN not in text and "correct-horse" not in text


def test_vault_retries_503_twice_then_succeeds(vault: FakeVault) -> None:
    slept: list[float] = []
    vault.fail_next(2)
    assert _resolver(vault, sleep=slept.append).resolve("vault:secret/auth/db#dsn") == DSN
    assert len(vault.requests) == 3
    assert len(slept) == 2 and sum(slept) < 2


def test_vault_keeps_failing_is_an_upstream_error_naming_the_address(vault: FakeVault) -> None:
    vault.fail_next(3)
    with pytest.raises(UpstreamError) as info:
        _resolver(vault).resolve("vault:secret/auth/db#dsn")
    assert info.value.exit_code == ExitCode.UPSTREAM
    assert vault.url in info.value.message and "503" in info.value.message
    assert len(vault.requests) == 3


def test_vault_unreachable_is_an_upstream_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    address = f"http://127.0.0.1:{_free_port()}"
    resolver = SecretResolver(VaultIntegration(address=address), sleep=lambda s: None)
    with pytest.raises(UpstreamError) as info:
        resolver.resolve("vault:secret/auth/db#dsn")
    assert address in info.value.message
    assert TOKEN not in _message(info.value)


def test_vault_resolves_once_per_reference(vault: FakeVault) -> None:
    resolver = _resolver(vault)
    assert resolver.resolve("vault:secret/auth/db#dsn") == DSN
    assert resolver.resolve("vault:secret/auth/db#dsn") == DSN
    assert len(vault.requests) == 1
    assert resolver.resolve("vault:secret/auth/db#user") == "auth"  # same secret, another key
    assert len(vault.requests) == 1


def test_vault_value_and_token_are_registered_for_redaction(vault: FakeVault) -> None:
    assert redact.redact(f"x {DSN} y") != f"x {redact.MASK} y"
    value = _resolver(vault).resolve("vault:secret/auth/db#dsn")
    assert redact.redact(f"x {value} y") == f"x {redact.MASK} y"
    assert redact.redact(f"token {TOKEN}") == f"token {redact.MASK}"


def test_vault_with_a_client_the_caller_owns(vault: FakeVault) -> None:
    vault.put("secret/auth/api", {"key": "api-key-value-1"})
    sent: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda request: sent.append(request.url.path)]}) as client:
        resolver = _resolver(vault, vault_client=client)
        assert resolver.resolve("vault:secret/auth/db#dsn") == DSN
        assert resolver.resolve("vault:secret/auth/api#key") == "api-key-value-1"
        assert sent == ["/v1/secret/data/auth/db", "/v1/secret/data/auth/api"]  # through the supplied client
        assert not client.is_closed  # the resolver never closes what it was given
        vault.fail_next(1)
        assert resolver.resolve("vault:secret/auth/db#user") == "auth"  # cached: no request at all
    assert len(vault.requests) == 2


def test_vault_retries_429_with_backoff_and_a_time_budget(vault: FakeVault) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    vault.fail_next(2, status=429)
    resolver = _resolver(vault, sleep=sleep, monotonic=lambda: now[0])
    assert resolver.resolve("vault:secret/auth/db#dsn") == DSN
    assert slept == [0.2, 0.4]
    assert len(vault.requests) == 3


def test_vault_wait_interrupted_propagates(vault: FakeVault) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    vault.fail_next(1)
    with pytest.raises(KeyboardInterrupt):
        _resolver(vault, sleep=interrupted).resolve("vault:secret/auth/db#dsn")
    assert len(vault.requests) == 1


def test_vault_token_with_a_second_line_is_refused_before_sending(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_TOKEN")
    (Path(os.environ["HOME"]) / ".vault-token").write_text(f"{TOKEN}\nold-token-value-0000\n")
    with pytest.raises(UsageError) as info:
        _resolver(vault).resolve("vault:secret/auth/db#dsn")
    assert (
        info.value.message
        == "the Vault token (VAULT_TOKEN or ~/.vault-token) has 2 lines; a secret must be a single line"
    )
    assert TOKEN not in _message(info.value) and "old-token" not in _message(info.value)
    assert vault.requests == []


def test_vault_value_over_several_lines_is_refused(vault: FakeVault) -> None:
    vault.put("secret/auth/cert", {"pem": "-----BEGIN KEY-----\nMIIBvalue\n-----END KEY-----\n"})
    with pytest.raises(UsageError) as info:
        _resolver(vault).resolve("vault:secret/auth/cert#pem")
    assert info.value.message == "secret vault:secret/auth/cert#pem has 3 lines; a secret must be a single line"
    assert redact.redact("MIIBvalue") == redact.MASK


def test_from_config_reads_integrations_and_policy(vault: FakeVault) -> None:
    config = Config.model_validate(
        {"integrations": {"vault": {"address": vault.url}}, "policy": {"plaintext_env_secrets": "refuse"}}
    )
    resolver = SecretResolver.from_config(config, warn=lambda message: None)
    assert resolver.resolve("vault:secret/auth/db#dsn") == DSN
    with pytest.raises(RefusedError):
        resolver.resolve("env:HOME")


# ------------------------------------------------------------------ aws secrets manager


@pytest.fixture
def aws(aws_env: str) -> AwsIntegration:
    """The integration config for the session's moto server (``aws_env``, tests/fakes/moto.py: reset for
    this test), with four secrets in it."""
    client = boto3.client("secretsmanager", region_name="eu-central-1", endpoint_url=aws_env)
    client.create_secret(Name="prod/billing/api-key", SecretString="sk_live_plain-string-value")
    client.create_secret(
        Name="prod/billing/db",
        SecretString=json.dumps({"username": "billing", "password": "json-pw-0123", "port": 5432}),
    )
    client.create_secret(Name="prod/raw", SecretBinary=b"binary-but-text")
    client.create_secret(Name="prod/not-json", SecretString="just-a-plain-string")
    return AwsIntegration(region="eu-central-1", endpoint_url=aws_env)


def test_aws_plain_secret_string(aws: AwsIntegration) -> None:
    resolver = SecretResolver(aws=aws)
    assert resolver.resolve("aws-sm:prod/billing/api-key") == "sk_live_plain-string-value"
    assert redact.redact("key=sk_live_plain-string-value") == f"key={redact.MASK}"


def test_aws_json_field(aws: AwsIntegration) -> None:
    resolver = SecretResolver(aws=aws)
    assert resolver.resolve("aws-sm:prod/billing/db#password") == "json-pw-0123"
    assert resolver.resolve("aws-sm:prod/billing/db#port") == "5432"
    assert redact.redact("pw json-pw-0123") == f"pw {redact.MASK}"


def test_aws_binary_secret_decoded_as_text(aws: AwsIntegration) -> None:
    assert SecretResolver(aws=aws).resolve("aws-sm:prod/raw") == "binary-but-text"


def test_aws_missing_json_key_names_the_key_not_the_contents(aws: AwsIntegration) -> None:
    with pytest.raises(UsageError) as info:
        SecretResolver(aws=aws).resolve("aws-sm:prod/billing/db#token")
    text = _message(info.value)
    assert "'token'" in text and "password, port, username" in text
    assert "json-pw-0123" not in text and 'billing"' not in text


def test_aws_key_on_a_non_json_secret_does_not_show_it(aws: AwsIntegration) -> None:
    with pytest.raises(UsageError) as info:
        SecretResolver(aws=aws).resolve("aws-sm:prod/not-json#field")
    assert "not a JSON object" in info.value.message
    assert "just-a-plain-string" not in _message(info.value)


def test_aws_not_found_is_a_usage_error(aws: AwsIntegration) -> None:
    with pytest.raises(UsageError) as info:
        SecretResolver(aws=aws).resolve("aws-sm:prod/nope")
    assert "aws-sm:prod/nope" in info.value.message and "not found" in info.value.message


def test_aws_unreachable_endpoint_is_an_upstream_error() -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"
    resolver = SecretResolver(aws=AwsIntegration(region="eu-central-1", endpoint_url=endpoint))
    with pytest.raises(UpstreamError) as info:
        resolver.resolve("aws-sm:prod/billing/db#password")
    assert endpoint in info.value.message


def test_aws_without_credentials_is_an_upstream_error(aws: AwsIntegration, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(UpstreamError, match="credentials"):
        SecretResolver(aws=aws).resolve("aws-sm:prod/billing/api-key")


def test_aws_unknown_profile_is_a_usage_error(aws: AwsIntegration) -> None:
    config = AwsIntegration(region="eu-central-1", endpoint_url=aws.endpoint_url, profile="no-such-profile")
    with pytest.raises(UsageError, match="no-such-profile"):
        SecretResolver(aws=config).resolve("aws-sm:prod/billing/api-key")


def test_aws_with_a_client_factory_the_caller_supplies(aws: AwsIntegration, moto_url: str) -> None:
    asked: list[tuple[str | None, str | None, str | None]] = []

    def factory(region: str | None, endpoint_url: str | None, profile: str | None) -> Any:
        asked.append((region, endpoint_url, profile))
        return boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint_url)

    config = AwsIntegration(region="eu-central-1", endpoint_url=moto_url, profile="ops")
    resolver = SecretResolver(aws=config, aws_client=factory)
    assert resolver.resolve("aws-sm:prod/billing/db#password") == "json-pw-0123"
    assert resolver.resolve("aws-sm:prod/billing/api-key") == "sk_live_plain-string-value"
    assert asked == [("eu-central-1", moto_url, "ops")] * 2  # one client per secret read, as configured


def test_aws_fetches_a_secret_once_for_several_keys(aws: AwsIntegration, moto_url: str) -> None:
    resolver = SecretResolver(aws=aws)
    resolver.resolve("aws-sm:prod/billing/db#username")
    client = boto3.client("secretsmanager", region_name="eu-central-1", endpoint_url=moto_url)
    client.put_secret_value(SecretId="prod/billing/db", SecretString=json.dumps({"username": "x", "password": "y"}))
    assert resolver.resolve("aws-sm:prod/billing/db#password") == "json-pw-0123"  # cached document


# ------------------------------------------------------------------ file and env


def test_file_contents_without_trailing_newline_and_tilde(tmp_path: Path) -> None:
    secret = Path(os.environ["HOME"]) / ".pgpass-opsctl"
    secret.write_text("file-secret-value\n")
    resolver = SecretResolver()
    assert resolver.resolve("file:~/.pgpass-opsctl") == "file-secret-value"
    assert redact.redact("file-secret-value!") == f"{redact.MASK}!"
    (tmp_path / "crlf").write_text("crlf-secret-value\r\n\n", newline="")
    assert resolver.resolve(f"file:{tmp_path / 'crlf'}") == "crlf-secret-value"


@pytest.mark.parametrize(
    "content",
    ["\npd-token-value-42\n", "pd-token-value-42\t", "  pd-token-value-42 \r\n", "\ufeffpd-token-value-42\n"],
    ids=["leading newline", "trailing tab", "spaces and crlf", "byte order mark"],
)
def test_file_value_loses_surrounding_whitespace(tmp_path: Path, content: str) -> None:
    path = tmp_path / "pd-token"
    path.write_text(content, newline="")
    value = SecretResolver().resolve(f"file:{path}")
    assert value == "pd-token-value-42"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("pd-token-value-42\n# rotated 2026-08-01\n", "has 2 lines; a secret must be a single line"),
        ("pd-token-value-42\nold-value-41\nolder-40\n", "has 3 lines; a secret must be a single line"),
        ("pd-token\x00value-42\n", "contains a control character (U+0000); a secret must be printable text"),
        ("pd-token\tvalue-42\n", "contains a control character (U+0009); a secret must be printable text"),
        ("pd-token\x1b[31mvalue\n", "contains a control character (U+001B); a secret must be printable text"),
        ("pd-token\u2028value-42", "has 2 lines; a secret must be a single line"),
        ("pd-token\u200bvalue-42", "contains a control character (U+200B); a secret must be printable text"),
    ],
    ids=["comment line", "three lines", "nul", "inner tab", "escape", "unicode line separator", "zero width space"],
)
def test_file_value_must_be_one_line_without_control_characters(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "pd-token"
    path.write_text(content, newline="")
    with pytest.raises(UsageError) as info:
        SecretResolver().resolve(f"file:{path}")
    error = info.value
    assert error.exit_code == ExitCode.USAGE
    assert error.message == f"secret file:{path} {problem}"
    shown = " ".join([*error.lines(), repr(error), str(error.__cause__), str(error.__context__)])
    assert "value-42" not in shown and "rotated" not in shown and "\\n" not in shown
    # Registered before the refusal: whatever echoes it later is masked.
    assert redact.redact(f"header {content.splitlines()[0].strip()}").endswith(redact.MASK)


def test_env_value_with_a_second_line_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_TEST_TOKEN", "env-token-value\nsecond")
    with pytest.raises(UsageError) as info:
        SecretResolver(warn=lambda message: None).resolve("env:OPSCTL_TEST_TOKEN")
    assert info.value.message == "secret env:OPSCTL_TEST_TOKEN has 2 lines; a secret must be a single line"
    assert "env-token-value" not in _message(info.value)


def test_file_that_is_too_large_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (1024 * 1024))
    with pytest.raises(UsageError, match=r"is larger than 64 KiB"):
        SecretResolver().resolve(f"file:{big}")


def test_file_missing_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        SecretResolver().resolve(f"file:{tmp_path / 'missing'}")


def test_file_empty_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UsageError, match="empty value"):
        SecretResolver().resolve(f"file:{tmp_path / 'empty'}")


def test_env_warns_once_per_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_TEST_PASSWORD", "env-secret-value")
    monkeypatch.setenv("OPSCTL_TEST_OTHER", "other-env-value")
    warnings: list[str] = []
    resolver = SecretResolver(env_policy="warn", warn=warnings.append)
    assert resolver.resolve("env:OPSCTL_TEST_PASSWORD") == "env-secret-value"
    assert resolver.resolve("env:OPSCTL_TEST_PASSWORD") == "env-secret-value"
    assert len(warnings) == 1
    [warning] = warnings
    assert "\n" not in warning
    assert "env:OPSCTL_TEST_PASSWORD" in warning and "security policy" in warning
    assert "vault:" in warning and "aws-sm:" in warning
    assert "env-secret-value" not in warning
    resolver.resolve("env:OPSCTL_TEST_OTHER")
    assert len(warnings) == 2
    assert redact.redact("env-secret-value") == redact.MASK


def test_env_refused_by_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_TEST_PASSWORD", "env-secret-value")
    warnings: list[str] = []
    with pytest.raises(RefusedError) as info:
        SecretResolver(env_policy="refuse", warn=warnings.append).resolve("env:OPSCTL_TEST_PASSWORD")
    assert info.value.exit_code == ExitCode.REFUSED
    assert int(info.value.exit_code) == 3
    text = _message(info.value)
    assert "env:OPSCTL_TEST_PASSWORD" in text and "env-secret-value" not in text
    assert warnings == []


def test_env_unset_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSCTL_TEST_UNSET", raising=False)
    with pytest.raises(UsageError, match="OPSCTL_TEST_UNSET is not set"):
        SecretResolver(warn=lambda message: None).resolve("env:OPSCTL_TEST_UNSET")
