"""The shared retry loop, driven through real ``httpx`` and ``httpx2`` clients.

The answers come from each library's own ``MockTransport`` (real Response objects through a real
client) or, for the network, from a real socket; time comes from an injected clock that moves
only when the loop sleeps or a scripted answer says it took long. Nothing of opsctl is patched.
"""

from __future__ import annotations

import email.utils
import socket
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

from opsctl import redact
from opsctl.errors import ExitCode, UpstreamError
from opsctl.integrations.http import HTTP, HttpClassifier, parse_seconds
from opsctl.integrations.retry import Budget, Failure, Retrier

URL = "https://api.example.test/things"
MODULES = pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])


class Clock:
    """``monotonic``/``sleep``: time moves only by recorded sleeps and :meth:`spend`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def spend(self, seconds: float) -> None:
        self.now += seconds


Step = Callable[[Any], Any]  # request -> response (or raises)


class Script:
    """A real client whose transport plays ``steps`` in order, recording each request's timeout."""

    def __init__(self, lib: ModuleType, clock: Clock, *steps: Step) -> None:
        self.lib = lib
        self.clock = clock
        self.steps = list(steps)
        self.timeouts: list[float] = []
        self.client = lib.Client(transport=lib.MockTransport(self._handle))

    def _handle(self, request: Any) -> Any:
        self.timeouts.append(request.extensions["timeout"]["read"])
        return self.steps.pop(0)(request)

    def send(self, timeout: float) -> Any:
        return self.client.get(URL, timeout=timeout)

    @property
    def attempts(self) -> int:
        return len(self.timeouts)


def answer(lib: ModuleType, status: int, headers: dict[str, str] | None = None) -> Step:
    def step(request: Any) -> Any:
        return lib.Response(status, headers=headers or {}, json={"status": status})

    return step


def fail(exc_type: type[Exception], message: str, clock: Clock | None = None, took: float = 0.0) -> Step:
    def step(request: Any) -> Any:
        if clock is not None:
            clock.spend(took)
        raise exc_type(message, request=request)

    return step


def retrier(clock: Clock, **overrides: Any) -> Retrier:
    kwargs: dict[str, Any] = {
        "request_timeout": 2.0,
        "classifier": HTTP,
        "sleep": clock.sleep,
        "monotonic": clock.monotonic,
        "address": "https://api.example.test",
        "hint": "check the network",
        "not_retried_hint": "look before repeating",
        "hints": {"tls": "set the CA bundle"},
    }
    kwargs.update(overrides)
    return Retrier("Example", **kwargs)


def run(r: Retrier, script: Script, *, budget: float = 10.0, idempotent: bool = True, **kw: Any) -> Any:
    return r.call(script.send, "GET /things", r.budget(budget), idempotent=idempotent, **kw)


def all_text(exc: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        parts += [str(current), repr(current), str(getattr(current, "hint", ""))]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------
# 429
# ------------------------------------------------------------------------------------------


@MODULES
def test_429_waits_retry_after_seconds(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(lib, clock, answer(lib, 429, {"Retry-After": "2", "ratelimit-reset": "7"}), answer(lib, 200))
    assert run(retrier(clock), script).status_code == 200
    assert clock.sleeps == [2.0]
    assert script.attempts == 2


@MODULES
def test_429_waits_a_retry_after_http_date(lib: ModuleType) -> None:
    clock = Clock()
    wall = 1_800_000_000.0
    when = email.utils.formatdate(wall + 3, usegmt=True)
    classifier = HttpClassifier(wall_clock=lambda: wall)
    script = Script(lib, clock, answer(lib, 429, {"Retry-After": when}), answer(lib, 200))
    assert run(retrier(clock, classifier=classifier), script).status_code == 200
    assert clock.sleeps == [pytest.approx(3.0)]


@MODULES
def test_429_with_only_ratelimit_reset(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(lib, clock, answer(lib, 429, {"ratelimit-reset": "4"}), answer(lib, 200))
    assert run(retrier(clock), script).status_code == 200
    assert clock.sleeps == [4.0]


@MODULES
def test_429_without_headers_backs_off(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(lib, clock, answer(lib, 429), answer(lib, 429), answer(lib, 200))
    assert run(retrier(clock), script).status_code == 200
    assert clock.sleeps == [0.5, 1.0]


@MODULES
def test_429_beyond_the_budget_gives_up_at_once(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(lib, clock, answer(lib, 429, {"Retry-After": "60"}))
    with pytest.raises(UpstreamError) as excinfo:
        run(retrier(clock), script, budget=3.0)
    error = excinfo.value
    assert error.exit_code == ExitCode.UPSTREAM
    assert error.message == (
        "Example unreachable after 1 attempt in 0.0s: rate limited (429), asked to wait 60s "
        "(a 60s wait does not fit the 3.0s left of the 3s budget)"
    )
    assert error.hint == "check the network"
    assert clock.sleeps == [] and script.attempts == 1


@MODULES
def test_a_429_is_retried_for_a_call_that_is_not_idempotent(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(lib, clock, answer(lib, 429, {"Retry-After": "1"}), answer(lib, 201))
    assert run(retrier(clock), script, idempotent=False).status_code == 201
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize(
    ("value", "allow_date", "expected"),
    [
        ("2", True, 2.0),
        (" 1.5 ", False, 1.5),
        ("-3", True, 0.0),
        ("nan", True, None),
        ("inf", True, None),
        ("soon", True, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", False, None),
        ("", True, None),
        (None, True, None),
    ],
)
def test_parse_seconds(value: str | None, allow_date: bool, expected: float | None) -> None:
    assert parse_seconds(value, allow_date=allow_date, wall_clock=lambda: 0.0) == expected


def test_an_http_date_in_the_past_means_no_wait() -> None:
    past = email.utils.formatdate(100.0, usegmt=True)
    assert parse_seconds(past, allow_date=True, wall_clock=lambda: 200.0) == 0.0


# ------------------------------------------------------------------------------------------
# 5xx and the network
# ------------------------------------------------------------------------------------------


@MODULES
def test_5xx_backs_off_exponentially_up_to_the_maximum(lib: ModuleType) -> None:
    clock = Clock()
    steps = [answer(lib, 503) for _ in range(5)] + [answer(lib, 200)]
    script = Script(lib, clock, *steps)
    assert run(retrier(clock, backoff_max=3.0), script, budget=60.0).status_code == 200
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


@MODULES
def test_5xx_of_a_call_that_is_not_idempotent_is_not_retried(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(lib, clock, answer(lib, 502), answer(lib, 200))
    with pytest.raises(UpstreamError) as excinfo:
        run(retrier(clock), script, idempotent=False)
    assert excinfo.value.message == (
        "Example answered GET /things with HTTP 502 Bad Gateway; not retried, it may have been processed"
    )
    assert excinfo.value.hint == "look before repeating"
    assert script.attempts == 1 and clock.sleeps == []


@MODULES
def test_a_connection_never_established_is_retried_even_when_not_idempotent(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(lib, clock, fail(lib.ConnectError, "[Errno 111] Connection refused"), answer(lib, 201))
    assert run(retrier(clock), script, idempotent=False).status_code == 201
    assert clock.sleeps == [0.5]


@MODULES
def test_a_dropped_connection_of_a_call_that_is_not_idempotent_is_not_retried(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(lib, clock, fail(lib.ReadError, "connection reset by peer"), answer(lib, 201))
    with pytest.raises(UpstreamError, match=r"^Example GET /things failed: connection dropped before an answer"):
        run(retrier(clock), script, idempotent=False)
    assert script.attempts == 1


@MODULES
def test_each_request_timeout_is_capped_by_what_is_left(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(
        lib,
        clock,
        fail(lib.ReadTimeout, "timed out", clock, took=2.0),
        fail(lib.ReadTimeout, "timed out", clock, took=1.5),
    )
    with pytest.raises(UpstreamError) as excinfo:
        run(retrier(clock), script, budget=4.0)
    assert script.timeouts == [2.0, 1.5]  # 4s budget: 2s, a 0.5s wait, then the 1.5s left
    assert clock.sleeps == [0.5]
    assert excinfo.value.message.startswith("Example unreachable after 2 attempts in 4.0s: no answer within 1.5s")


def test_attempts_are_bounded_whatever_the_budget() -> None:
    clock = Clock()
    script = Script(httpx, clock, *[answer(httpx, 500) for _ in range(3)])
    with pytest.raises(UpstreamError, match=r"after 3 attempts .*HTTP 500 Internal Server Error"):
        run(retrier(clock, max_attempts=3), script, budget=600.0)
    assert script.attempts == 3


def test_a_refused_connection_over_the_real_network() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        clock = Clock()
        with httpx.Client() as client:
            r = retrier(clock, max_attempts=2)
            with pytest.raises(UpstreamError) as excinfo:
                r.call(
                    lambda t: client.get(f"http://127.0.0.1:{port}/", timeout=t),
                    "GET /",
                    r.budget(5.0),
                    idempotent=False,
                )
    assert excinfo.value.message == "Example unreachable after 2 attempts in 0.5s: connection refused"
    assert clock.sleeps == [0.5]


# ------------------------------------------------------------------------------------------
# The hook, interruption, foreign exceptions, secrets
# ------------------------------------------------------------------------------------------


@MODULES
def test_the_hook_runs_before_a_retry_after_an_ambiguous_failure_only(lib: ModuleType) -> None:
    clock = Clock()
    script = Script(
        lib,
        clock,
        fail(lib.ConnectError, "Connection refused"),  # surely not processed: no look-up
        answer(lib, 500),  # maybe processed: look up first
        answer(lib, 200),
    )
    seen: list[int] = []
    assert (
        run(retrier(clock), script, before_retry_after_ambiguity=lambda: seen.append(script.attempts)).status_code
        == 200
    )
    assert seen == [2]


class Found(Exception):
    pass


def test_the_hook_ends_the_call_by_raising() -> None:
    clock = Clock()
    script = Script(httpx, clock, fail(httpx.ReadTimeout, "timed out"), answer(httpx, 201))

    def look_up() -> None:
        raise Found

    with pytest.raises(Found):
        run(retrier(clock), script, before_retry_after_ambiguity=look_up)
    assert script.attempts == 1


def test_keyboard_interrupt_from_sleep_propagates_untouched() -> None:
    clock = Clock()
    script = Script(httpx, clock, answer(httpx, 503), answer(httpx, 200))

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(retrier(clock, sleep=interrupted), script)
    assert script.attempts == 1


def test_exceptions_the_classifier_does_not_claim_propagate() -> None:
    clock = Clock()

    def send(timeout: float) -> Any:
        raise LookupError("not a transport problem")

    r = retrier(clock)
    with pytest.raises(LookupError, match="not a transport problem"):
        r.call(send, "GET /things", r.budget(5.0), idempotent=True)


@MODULES
def test_a_request_that_cannot_be_sent_never_quotes_the_header(lib: ModuleType) -> None:
    """h11's "Illegal header value b'Token token=…'" must not reach the user (nor be retried)."""
    clock = Clock()
    token = "pd-token-value-never-registered"
    script = Script(lib, clock, fail(lib.LocalProtocolError, f"Illegal header value b'Token token={token}\\n# x'"))
    with pytest.raises(UpstreamError) as excinfo:
        run(retrier(clock, hints={"request": "check the token"}), script)
    assert (
        excinfo.value.message
        == "Example at https://api.example.test: the request could not be sent (LocalProtocolError)"
    )
    assert excinfo.value.hint == "check the token"
    assert token not in all_text(excinfo.value)
    assert script.attempts == 1 and clock.sleeps == []


@MODULES
def test_registered_secrets_are_masked_in_errors(lib: ModuleType) -> None:
    clock = Clock()
    secret = "s3cr3t-in-a-proxy-message"
    redact.register(secret)
    script = Script(lib, clock, fail(lib.ConnectError, f"proxy said {secret}"))
    with pytest.raises(UpstreamError) as excinfo:
        run(retrier(clock, max_attempts=1), script)
    assert "proxy said ***" in excinfo.value.message
    assert secret not in all_text(excinfo.value)


def test_tls_verification_failure_is_final_with_its_hint() -> None:
    import ssl

    clock = Clock()
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")

    def send(timeout: float) -> Any:
        raise httpx.ConnectError("TLS failed") from cause

    r = retrier(clock)
    with pytest.raises(UpstreamError) as excinfo:
        r.call(send, "GET /things", r.budget(5.0), idempotent=True)
    assert excinfo.value.message.startswith("Example at https://api.example.test: TLS certificate verification failed")
    assert excinfo.value.hint == "set the CA bundle"
    assert clock.sleeps == []


def test_a_wrapped_transport_error_is_found_along_the_cause_chain() -> None:
    class ClientWrapper(Exception):
        pass

    def raise_wrapped() -> None:
        try:
            raise httpx2.ConnectTimeout("connect timed out")
        except httpx2.ConnectTimeout as exc:
            raise ClientWrapper("the client gave up") from exc

    with pytest.raises(ClientWrapper) as excinfo:
        raise_wrapped()
    assert HTTP.error(excinfo.value, 1.5) == Failure("connecting timed out after 1.5s", "network", sent=False)
    assert HTTP.error(ValueError("x"), 1.0) is None


def test_a_bug_while_handling_a_transport_error_is_not_retried_as_one() -> None:
    clock = Clock()

    def send(timeout: float) -> Any:
        try:
            raise httpx.ReadError("reset")
        except httpx.ReadError:
            raise KeyError("a bug in the handler")  # noqa: B904  # implicitly chained, on purpose

    r = retrier(clock)
    with pytest.raises(KeyError):
        r.call(send, "GET /things", r.budget(5.0), idempotent=True)
    assert clock.sleeps == []


# ------------------------------------------------------------------------------------------
# Budgets
# ------------------------------------------------------------------------------------------


def test_a_share_of_a_budget_is_bounded_by_the_fraction_and_by_what_is_left() -> None:
    clock = Clock()
    budget = Budget(10.0, clock.monotonic)
    assert budget.share(0.2).total == 2.0
    clock.spend(9.0)
    assert budget.share(0.2).total == pytest.approx(1.0)
    clock.spend(5.0)
    assert budget.share(0.2).total == 0.0
    share = Budget(10.0, clock.monotonic).share(0.2)
    clock.spend(1.5)
    assert share.remaining() == pytest.approx(0.5) and share.attempts == 0


def test_an_exhausted_budget_makes_no_attempt() -> None:
    clock = Clock()
    r = retrier(clock)
    script = Script(httpx, clock, answer(httpx, 200))
    with pytest.raises(
        UpstreamError, match=r"^Example unreachable after 0 attempts in 0\.0s: no attempt could be made$"
    ):
        r.call(script.send, "GET /things", r.budget(0.05), idempotent=True)
    assert script.attempts == 0
