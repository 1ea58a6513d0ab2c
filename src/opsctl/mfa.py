"""MFA for sensitive operations (``policy.mfa``): a 6-digit code, from ``--mfa-code`` or asked on
the terminal, exchanged with STS ``get_session_token`` for temporary credentials that every AWS
call of this run then uses.  The credentials live in memory only (and are registered with the
redaction filter); the audit records how MFA was satisfied, never a code or a key."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from opsctl.errors import RefusedError, UpstreamError, UsageError

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.settings import Service

VERIFIED, UNVERIFIED = "sts-verified", "code-given-unverified"


def session_token(sts: Any, serial: str, code: str, seconds: int = 900) -> dict[str, str]:
    """STS ``get_session_token``; a refused code is exit 3, AWS out of reach exit 4."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = sts.get_session_token(SerialNumber=serial, TokenCode=code, DurationSeconds=seconds)
    except ClientError as exc:
        code_name = exc.response.get("Error", {}).get("Code", "Error")
        if code_name in ("AccessDenied", "InvalidClientTokenId", "ValidationError", "ExpiredToken"):
            raise RefusedError(f"the MFA code was refused by AWS STS ({code_name})", "use a fresh code") from None
        raise UpstreamError(f"AWS STS get_session_token: {code_name}") from None
    except BotoCoreError as exc:
        raise UpstreamError(f"AWS STS get_session_token: {' '.join(str(exc).split())[:200]}") from None
    creds = {k: str(answer["Credentials"][k]) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
    from opsctl import redact

    redact.register(creds["SecretAccessKey"])
    redact.register(creds["SessionToken"])
    return creds


def _code(ctx: Context, given: str | None, command: str) -> str:
    if given is None:
        if not ctx.is_tty():
            raise RefusedError(f"'{command}' needs MFA here (policy.mfa) and there is no terminal to ask for a code",
                               "pass --mfa-code with the 6-digit code from your device")  # fmt: skip
        import typer

        given = str(typer.prompt("MFA code", hide_input=True, err=True))
    code = given.strip()
    if not re.fullmatch(r"\d{6}", code):
        raise UsageError("--mfa-code must be the 6 digits your MFA device shows")
    return code


def require(ctx: Context, command: str, service: Service, given: str | None, *, aws_needed: bool) -> str | None:
    """When policy wants MFA for this command: get and check the code, install the MFA session's
    AWS clients for this run; the mode for the audit (None when no MFA was needed)."""
    if ctx.dry_run or not ctx.settings.policy.needs_mfa(command, service.tier, ctx.env):
        return None
    code = _code(ctx, given, command)
    aws = ctx.integrations_for(ctx.env).aws
    if not aws.mfa_serial:
        if aws_needed:
            raise RefusedError(f"'{command}' needs MFA but integrations.aws.mfa_serial is not set",
                               "configure the MFA device's serial (ARN) for this environment")  # fmt: skip
        return UNVERIFIED
    from pathlib import Path

    from opsctl.integrations.aws import AwsClients

    verify: bool | str = str(Path(aws.ca_bundle).expanduser()) if aws.ca_bundle else True
    plain = AwsClients(verify=verify)
    try:
        sts = plain.client("sts", region=aws.region, endpoint_url=aws.endpoint_url, profile=aws.profile)
        creds = session_token(sts, aws.mfa_serial, code)
    finally:
        plain.close()
    ctx.clients.put("aws", AwsClients(verify=verify, credentials=creds), env=ctx.env)
    return VERIFIED
