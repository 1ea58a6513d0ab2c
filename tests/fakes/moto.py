"""moto's real server for AWS (RDS, Route53, S3, Secrets Manager, STS): one per test session on a
free port; ``aws_env`` resets it and gives the test dummy credentials."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def reset(url: str) -> None:
    httpx.post(f"{url}/moto-api/reset").raise_for_status()


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto reset to empty, with dummy credentials in the environment (inherited by the CLI)."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset(moto_url)
    return moto_url
