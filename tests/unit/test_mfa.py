"""STS session tokens for MFA: a refused code, AWS errors, secrets registered for redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from opsctl import redact
from opsctl.errors import RefusedError, UpstreamError
from opsctl.mfa import session_token

SERIAL = "arn:aws:iam::123456789012:mfa/oncall"


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("sts", region_name="eu-central-1")
    with Stubber(client) as stub:
        yield client, stub


def test_a_good_code_gives_temporary_credentials_that_are_redacted(sts) -> None:
    client, stub = sts
    creds = {"AccessKeyId": "ASIATEMPORARY0001", "SecretAccessKey": "temp-secret-key-123456", "SessionToken": "tok-abcdef-123",
             "Expiration": datetime(2026, 11, 27, 4, tzinfo=UTC)}  # fmt: skip
    stub.add_response("get_session_token", {"Credentials": creds},
                      {"SerialNumber": SERIAL, "TokenCode": "123456", "DurationSeconds": 900})  # fmt: skip
    got = session_token(client, SERIAL, "123456")
    assert got["AccessKeyId"] == "ASIATEMPORARY0001"
    assert "temp-secret-key-123456" not in redact.redact("key temp-secret-key-123456 token tok-abcdef-123")
    assert "tok-abcdef-123" not in redact.redact("token tok-abcdef-123")


def test_a_wrong_code_is_refused(sts) -> None:
    client, stub = sts
    stub.add_client_error("get_session_token", service_error_code="AccessDenied",
                          service_message="MultiFactorAuthentication failed with invalid MFA one time pass code.")  # fmt: skip
    with pytest.raises(RefusedError, match="refused by AWS STS"):
        session_token(client, SERIAL, "000000")


def test_other_sts_errors_are_upstream(sts) -> None:
    client, stub = sts
    stub.add_client_error("get_session_token", service_error_code="ServiceUnavailable", http_status_code=503)
    with pytest.raises(UpstreamError, match="ServiceUnavailable"):
        session_token(client, SERIAL, "123456")
