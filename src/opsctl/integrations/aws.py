"""AWS clients for one invocation: one boto3 session per profile, one client per (service, region,
endpoint), all closed together by the context's client registry; :func:`aws_call` turns whatever
AWS or the network says went wrong into one line (:class:`~opsctl.errors.UpstreamError`, exit 4).

``verify`` is passed explicitly: a machine that sets ``AWS_CA_BUNDLE``/``REQUESTS_CA_BUNDLE``
would otherwise silently override what the config asks for.  boto3 is imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opsctl.errors import UpstreamError


class AwsClients:
    def __init__(
        self,
        *,
        verify: bool | str = True,
        connect_timeout: float = 5,
        read_timeout: float = 10,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.verify = verify
        self.credentials = credentials  # temporary STS credentials (an MFA session): never written anywhere
        self._timeouts = (connect_timeout, read_timeout)
        self._sessions: dict[str | None, Any] = {}
        self._clients: dict[tuple[str, str | None, str | None, str | None], Any] = {}

    def client(
        self, service: str, *, region: str | None, endpoint_url: str | None = None, profile: str | None = None
    ) -> Any:
        key = (service, region, endpoint_url, profile)
        if key not in self._clients:
            import boto3
            from botocore.config import Config

            if profile not in self._sessions:
                if self.credentials is not None:
                    self._sessions[profile] = boto3.Session(
                        aws_access_key_id=self.credentials["AccessKeyId"],
                        aws_secret_access_key=self.credentials["SecretAccessKey"],
                        aws_session_token=self.credentials["SessionToken"],
                    )
                else:
                    self._sessions[profile] = boto3.Session(profile_name=profile)
            connect, read = self._timeouts
            self._clients[key] = self._sessions[profile].client(
                service,
                region_name=region,
                endpoint_url=endpoint_url,
                verify=self.verify,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=connect, read_timeout=read
                ),
            )
        return self._clients[key]

    def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            closer = getattr(client, "close", None)
            if closer is not None:
                closer()


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """One line for whatever AWS or the network says went wrong."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), " ".join(str(error.get("Message", "")).split())[:300]
        raise UpstreamError(f"AWS {what}: {code}: {message}".rstrip(": ")) from None
    except BotoCoreError as exc:
        raise UpstreamError(f"AWS {what}: {' '.join(str(exc).split())[:300]}",
                            "check integrations.aws (region, endpoint_url) and the network") from None  # fmt: skip
