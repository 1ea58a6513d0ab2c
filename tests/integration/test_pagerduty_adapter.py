"""The PagerDuty adapter against the HTTPS fake, through the real ``pagerduty`` client and transport.

Nothing of opsctl is patched: waits go through the adapter's injectable ``sleep``/``monotonic``
(a clock that records each wait and moves time forward instead of sleeping), the HTTP is real.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsctl import redact
from opsctl.errors import ExitCode, UpstreamError, UsageError
from opsctl.integrations.pagerduty import PagerDutyAdapter, PdIncident, PlannedCall
from tests.contract.openapi import validate_request
from tests.fakes.pagerduty import DEDUP_ERROR, PagerDutyFake
from tests.fakes.tls import TLSMaterial

FROM = "oncall@example.com"
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
SERVICE = "PAUTH01"
KEY = "opsctl/auth/INC-1"


class Clock:
    """``monotonic``/``sleep`` for the adapter: real time plus every recorded (skipped) wait."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self._offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._offset += seconds


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


AdapterFactory = Callable[..., PagerDutyAdapter]


@pytest.fixture
def make_adapter(pd: PagerDutyFake, clock: Clock) -> Iterator[AdapterFactory]:
    made: list[PagerDutyAdapter] = []

    def make(**overrides: Any) -> PagerDutyAdapter:
        kwargs: dict[str, Any] = {
            "token": pd.token,
            "from_email": FROM,
            "base_url": pd.base_url,
            "ca_bundle": str(pd.ca_path),
            "budget": 5.0,
            "request_timeout": 2.0,
            "sleep": clock.sleep,
            "monotonic": clock.monotonic,
        }
        kwargs.update(overrides)
        adapter = PagerDutyAdapter(**kwargs)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def adapter(make_adapter: AdapterFactory) -> PagerDutyAdapter:
    return make_adapter()


def create(adapter: PagerDutyAdapter, **overrides: Any) -> PdIncident:
    args: dict[str, Any] = {
        "service_id": SERVICE,
        "title": "[SEV-1] auth: login failures above 5%",
        "urgency": "high",
        "incident_key": KEY,
        "details": "declared by opsctl",
        "escalation_policy_id": "PESC001",
        "priority_name": "P1",
    }
    args.update(overrides)
    return adapter.create_incident(**args)


def calls(pd: PagerDutyFake) -> list[tuple[str, str, int | None]]:
    return [(r.method, r.path, r.status) for r in pd.requests]


def wait_until_answered(pd: PagerDutyFake, timeout: float = 5.0) -> None:
    """Delayed requests are still in the fake after the client gave up on them: let them finish."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(r.answered for r in pd.requests if r.fault is None or r.fault.startswith("delay")):
            return
        time.sleep(0.02)
    raise AssertionError(f"the fake still has unanswered requests: {calls(pd)}")


def assert_clean(pd: PagerDutyFake) -> None:
    assert pd.contract_violations() == []
    for request in pd.requests:
        assert TRACEPARENT.match(request.header("traceparent") or ""), request
        assert request.header("Authorization") == f"Token token={pd.token}"
        assert request.header("Accept") == "application/vnd.pagerduty+json;version=2"
        if request.method != "GET":
            assert request.header("From") == FROM
            assert (request.header("Content-Type") or "").startswith("application/json")


def all_text(exc: BaseException) -> str:
    """Everything an error could show: message, hint, repr, and its whole chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), str(getattr(current, "hint", ""))]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------
# Lifecycle
# ------------------------------------------------------------------------------------------


def test_create_maps_the_priority_by_name_and_sends_the_spec_shapes(
    pd: PagerDutyFake, adapter: PagerDutyAdapter
) -> None:
    created = create(adapter)
    assert created == PdIncident(
        id=created.id,
        number=1,
        status="triggered",
        urgency="high",
        html_url=f"https://opsctl-test.pagerduty.com/incidents/{created.id}",
        incident_key=KEY,
        created_at=created.created_at,
    )
    assert created.created_at and created.created_at.endswith("Z")
    state = pd.incident(created.id)
    assert state["priority"]["name"] == "P1" and state["priority"]["id"] == "PPRI001"
    assert state["escalation_policy"]["id"] == "PESC001"
    assert state["service"]["id"] == SERVICE
    assert state["title"] == "[SEV-1] auth: login failures above 5%"
    assert pd.incident_details(created.id) == "declared by opsctl"

    post = pd.requests_to("POST", "/incidents")[0]
    assert post.body == {
        "incident": {
            "type": "incident",
            "title": "[SEV-1] auth: login failures above 5%",
            "service": {"id": SERVICE, "type": "service_reference"},
            "urgency": "high",
            "incident_key": KEY,
            "body": {"type": "incident_body", "details": "declared by opsctl"},
            "escalation_policy": {"id": "PESC001", "type": "escalation_policy_reference"},
            "priority": {"id": "PPRI001", "type": "priority_reference"},
        }
    }
    # The priorities are read once per adapter.
    second = create(
        adapter,
        incident_key="opsctl/billing/INC-2",
        service_id="PBILL01",
        escalation_policy_id=None,
        priority_name="P3",
    )
    assert pd.incident(second.id)["priority"]["name"] == "P3"
    assert pd.incident(second.id)["escalation_policy"]["id"] == "PESC002"  # the service's own
    assert adapter.priority_id("P5") == "PPRI005"
    assert adapter.priority_id("P9") is None
    assert [c[:2] for c in calls(pd)] == [("GET", "/priorities"), ("POST", "/incidents"), ("POST", "/incidents")]
    assert_clean(pd)


def test_create_without_priorities_escalation_policy_or_details(pd_tls: TLSMaterial, clock: Clock) -> None:
    with PagerDutyFake(tls=pd_tls, priorities=False) as fake:
        adapter = PagerDutyAdapter(
            token=fake.token, from_email=FROM, base_url=fake.base_url, ca_bundle=str(fake.ca_path), budget=5
        )
        with adapter:
            assert adapter.priority_id("P1") is None
            created = create(adapter, details=None, escalation_policy_id=None, priority_name="P1")
        body = fake.requests_to("POST", "/incidents")[0].body["incident"]
        assert set(body) == {"type", "title", "service", "urgency", "incident_key"}
        state = fake.incident(created.id)
        assert state["priority"] is None
        assert state["escalation_policy"]["id"] == "PESC001"
        assert fake.incident_details(created.id) is None
        assert len(fake.requests_to("GET", "/priorities")) == 1  # cached, also when empty
        assert_clean(fake)


def test_find_acknowledge_note_status_update_resolve(pd: PagerDutyFake, adapter: PagerDutyAdapter) -> None:
    assert adapter.find_open_by_key(KEY) is None
    created = create(adapter, urgency="low", priority_name=None)
    assert created.urgency == "low"

    found = adapter.find_open_by_key(KEY, SERVICE)
    assert found == created
    assert adapter.find_open_by_key(KEY) == created
    assert adapter.find_open_by_key(KEY, "PBILL01") is None
    listing = pd.requests_to("GET", "/incidents")[1]
    assert listing.query["incident_key"] == [KEY]
    assert listing.query["statuses[]"] == ["triggered", "acknowledged"]
    assert listing.query["service_ids[]"] == [SERVICE]

    acked = adapter.acknowledge(created.id)
    assert acked.status == "acknowledged" and acked.id == created.id
    assert pd.incident(created.id)["status"] == "acknowledged"
    assert [a["acknowledger"]["id"] for a in pd.incident(created.id)["acknowledgements"]] == ["PUSER01"]
    assert adapter.find_open_by_key(KEY, SERVICE) == acked  # acknowledged is still open

    adapter.add_note(created.id, "rolled back auth to v41")
    assert [n["content"] for n in pd.notes(created.id)] == ["rolled back auth to v41"]
    adapter.status_update(created.id, "Mitigated, monitoring.")
    assert [u["message"] for u in pd.status_updates(created.id)] == ["Mitigated, monitoring."]

    resolved = adapter.resolve(created.id, "bad deploy rolled back")
    assert resolved.status == "resolved"
    assert pd.incident(created.id)["status"] == "resolved"
    assert pd.log_entries(created.id)[-1]["note"] == "bad deploy rolled back"
    assert adapter.find_open_by_key(KEY, SERVICE) is None

    put = pd.requests_to("PUT", "/incidents/{id}")
    assert put[0].body == {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    assert put[1].body == {
        "incident": {"type": "incident_reference", "status": "resolved", "resolution": "bad deploy rolled back"}
    }
    assert pd.requests_to("POST", "/incidents/{id}/notes")[0].body == {"note": {"content": "rolled back auth to v41"}}
    assert pd.requests_to("POST", "/incidents/{id}/status_updates")[0].body == {"message": "Mitigated, monitoring."}
    assert_clean(pd)


def test_the_dedup_answer_returns_the_open_incident(pd: PagerDutyFake, adapter: PagerDutyAdapter) -> None:
    first = create(adapter)
    again = create(adapter)
    assert again == first
    assert len(pd.incidents()) == 1
    dedup = pd.requests_to("POST", "/incidents")[1]
    assert dedup.status == 400 and dedup.response["error"]["errors"] == [DEDUP_ERROR]
    assert calls(pd)[-1][:2] == ("GET", "/incidents")
    assert_clean(pd)


def test_a_rejected_request_reports_pagerdutys_errors(pd: PagerDutyFake, adapter: PagerDutyAdapter) -> None:
    with pytest.raises(UpstreamError) as excinfo:
        create(adapter, service_id="PNOPE01", priority_name=None)
    assert excinfo.value.exit_code == ExitCode.UPSTREAM
    assert (
        excinfo.value.message
        == "PagerDuty rejected POST /incidents (400 Bad Request): Invalid Input Provided: Service not found"
    )
    assert len(pd.requests_to("POST", "/incidents")) == 1  # a 400 is not retried
    with pytest.raises(UpstreamError, match=r"PagerDuty rejected PUT /incidents/PNOPE99 \(404 Not Found\): Not Found"):
        adapter.acknowledge("PNOPE99")


# ------------------------------------------------------------------------------------------
# Rate limits
# ------------------------------------------------------------------------------------------


def test_429_waits_retry_after(pd: PagerDutyFake, adapter: PagerDutyAdapter, clock: Clock) -> None:
    pd.inject_rate_limit(method="POST", path="/incidents", retry_after=2, ratelimit_reset=7)
    created = create(adapter)
    assert clock.sleeps == [pytest.approx(2.0)]
    assert [c[2] for c in calls(pd) if c[:2] == ("POST", "/incidents")] == [429, 201]
    assert [i["id"] for i in pd.incidents()] == [created.id]
    assert_clean(pd)


def test_429_with_only_ratelimit_reset_is_honoured_even_for_a_note(
    pd: PagerDutyFake, adapter: PagerDutyAdapter, clock: Clock
) -> None:
    created = create(adapter)
    pd.inject_rate_limit(method="POST", path="/incidents/{id}/notes", retry_after=None, ratelimit_reset=3)
    adapter.add_note(created.id, "still investigating")
    assert clock.sleeps == [pytest.approx(3.0)]
    assert [n["content"] for n in pd.notes(created.id)] == ["still investigating"]  # exactly once
    assert [r.status for r in pd.requests_to("POST", "/incidents/{id}/notes")] == [429, 200]
    assert len(pd.incidents()) == 1
    assert_clean(pd)


def test_429_beyond_the_budget_gives_up_at_once(pd: PagerDutyFake, make_adapter: AdapterFactory, clock: Clock) -> None:
    adapter = make_adapter(budget=3.0)
    created = create(adapter)
    pd.inject_rate_limit(method="PUT", retry_after=60, ratelimit_reset=60)
    with pytest.raises(UpstreamError) as excinfo:
        adapter.acknowledge(created.id)
    assert clock.sleeps == []  # gave up at once: no wait at all
    error = excinfo.value
    assert error.exit_code == ExitCode.UPSTREAM
    assert error.message.startswith("PagerDuty unreachable after 1 attempt in ")
    assert "rate limited (429), asked to wait 60s" in error.message
    assert "3s budget" in error.message
    assert error.hint and "integrations.pagerduty.timeout" in error.hint
    assert len(pd.requests_to("PUT", "/incidents/{id}")) == 1
    assert [i["status"] for i in pd.incidents()] == ["triggered"]


def test_429_without_headers_backs_off(pd: PagerDutyFake, adapter: PagerDutyAdapter, clock: Clock) -> None:
    pd.inject_rate_limit(method="GET", path="/incidents", retry_after=None, ratelimit_reset=None, times=2)
    assert adapter.find_open_by_key(KEY) is None
    assert clock.sleeps == [0.5, 1.0]


# ------------------------------------------------------------------------------------------
# Server errors and the network
# ------------------------------------------------------------------------------------------


def test_500_then_success_on_create(
    pd: PagerDutyFake, adapter: PagerDutyAdapter, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pd.inject_status(500, method="POST", path="/incidents")
    created = create(adapter)
    assert clock.sleeps == [0.5]
    # 500 → look up by key (nothing there) → create.
    assert calls(pd) == [
        ("GET", "/priorities", 200),
        ("POST", "/incidents", 500),
        ("GET", "/incidents", 200),
        ("POST", "/incidents", 201),
    ]
    assert [i["id"] for i in pd.incidents()] == [created.id]
    assert_clean(pd)
    # The pagerduty client's own error-level logging is demoted: only debug records.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    attempts = [r.getMessage() for r in caplog.records if r.name == "opsctl.pagerduty"]
    assert "PagerDuty POST /incidents attempt 1: 500 in " in "\n".join(attempts)
    assert any("waiting 0.50s before attempt 2" in m for m in attempts)


def test_500_after_processing_returns_the_incident_by_key(
    pd: PagerDutyFake, adapter: PagerDutyAdapter, clock: Clock
) -> None:
    pd.inject_status(502, method="POST", path="/incidents", process=True)
    created = create(adapter)
    assert [i["id"] for i in pd.incidents()] == [created.id]
    assert len(pd.requests_to("POST", "/incidents")) == 1
    assert clock.sleeps == [0.5]
    assert_clean(pd)


def test_5xx_on_a_status_change_is_retried(pd: PagerDutyFake, adapter: PagerDutyAdapter, clock: Clock) -> None:
    created = create(adapter)
    pd.inject_status(503, method="PUT", times=2)
    assert adapter.acknowledge(created.id).status == "acknowledged"
    assert clock.sleeps == [0.5, 1.0]
    assert [r.status for r in pd.requests_to("PUT", "/incidents/{id}")] == [503, 503, 200]
    assert pd.incident(created.id)["status"] == "acknowledged"


@pytest.mark.parametrize("processed", [False, True], ids=["lost", "processed"])
def test_503_on_a_note_is_not_retried(
    pd: PagerDutyFake, adapter: PagerDutyAdapter, clock: Clock, processed: bool
) -> None:
    created = create(adapter)
    pd.inject_status(503, method="POST", path="/incidents/{id}/notes", process=processed)
    with pytest.raises(UpstreamError) as excinfo:
        adapter.add_note(created.id, "rolled back")
    error = excinfo.value
    assert error.exit_code == ExitCode.UPSTREAM
    assert error.message == (
        f"PagerDuty answered POST /incidents/{created.id}/notes with HTTP 503 Service Unavailable; "
        "not retried, it may have been processed"
    )
    assert len(pd.requests_to("POST", "/incidents/{id}/notes")) == 1
    assert len(pd.notes(created.id)) == (1 if processed else 0)  # never twice
    assert clock.sleeps == []
    assert len(pd.incidents()) == 1


def test_a_reset_status_update_is_not_retried(pd: PagerDutyFake, adapter: PagerDutyAdapter) -> None:
    created = create(adapter)
    pd.inject_reset(method="POST", path="/incidents/{id}/status_updates", process=True)
    with pytest.raises(UpstreamError, match=r"connection dropped before an answer .*not retried"):
        adapter.status_update(created.id, "Mitigated.")
    assert len(pd.status_updates(created.id)) == 1
    assert len(pd.requests_to("POST", "/incidents/{id}/status_updates")) == 1


def test_a_timeout_on_create_leaves_one_incident(pd: PagerDutyFake, make_adapter: AdapterFactory, clock: Clock) -> None:
    adapter = make_adapter(request_timeout=0.4)
    pd.inject_delay(4.0, method="POST", path="/incidents")
    created = create(adapter, priority_name=None)
    posts = pd.requests_to("POST", "/incidents")
    assert not posts[0].answered  # it did not wait for the slow answer: the fake is still holding it
    assert clock.sleeps == [0.5]
    wait_until_answered(pd, timeout=15.0)  # the slow first POST is processed too, after the fact
    assert [i["id"] for i in pd.incidents()] == [created.id]
    posts = pd.requests_to("POST", "/incidents")
    assert len(posts) == 2
    assert posts[0].fault and posts[0].fault.startswith("delay")
    # The first POST, processed late, met the key of the one the retry created.
    assert posts[0].status == 400 and posts[0].response["error"]["errors"] == [DEDUP_ERROR]
    assert pd.requests_to("GET", "/incidents")  # looked up before retrying
    assert pd.contract_violations() == []


def test_a_reset_during_create_returns_the_incident_by_key(pd: PagerDutyFake, adapter: PagerDutyAdapter) -> None:
    pd.inject_reset_during_create()
    created = create(adapter)
    assert [i["id"] for i in pd.incidents()] == [created.id]
    assert created.incident_key == KEY and created.status == "triggered"
    posts = pd.requests_to("POST", "/incidents")
    assert len(posts) == 1 and not posts[0].answered
    assert calls(pd)[-1] == ("GET", "/incidents", 200)
    assert_clean(pd)


def test_resets_on_every_create_still_make_one_incident(pd: PagerDutyFake, adapter: PagerDutyAdapter) -> None:
    pd.inject_reset(method="POST", path="/incidents", times=2)  # lost before processing, twice
    created = create(adapter)
    assert [i["id"] for i in pd.incidents()] == [created.id]
    assert [r.status for r in pd.requests_to("POST", "/incidents")] == [None, None, 201]


def test_pagerduty_down_fails_within_the_budget(pd_tls: TLSMaterial, clock: Clock) -> None:
    fake = PagerDutyFake(tls=pd_tls).start()
    base_url = fake.base_url
    fake.stop()  # nothing listens on the port any more
    adapter = PagerDutyAdapter(
        token="pd-secret-token-123",
        from_email=FROM,
        base_url=base_url,
        ca_bundle=str(pd_tls.ca_path),
        budget=1.5,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    with adapter, pytest.raises(UpstreamError) as excinfo:
        create(adapter)
    # GET /priorities, on its 0.3s share, gives up without waiting; the create waits once.
    assert clock.sleeps == [0.5]
    error = excinfo.value
    assert error.exit_code == ExitCode.UPSTREAM
    assert int(error.exit_code) == 4
    assert re.fullmatch(r"PagerDuty unreachable after 2 attempts in \d+\.\ds: connection refused.*", error.message)
    assert error.hint and base_url in error.hint
    assert "pd-secret-token-123" not in all_text(error)


def test_an_untrusted_certificate_is_not_retried(pd: PagerDutyFake, make_adapter: AdapterFactory, clock: Clock) -> None:
    adapter = make_adapter(ca_bundle=None)
    with pytest.raises(UpstreamError) as excinfo:
        adapter.find_open_by_key(KEY)
    assert "TLS certificate verification failed" in excinfo.value.message
    assert excinfo.value.hint and "integrations.pagerduty.ca_bundle" in excinfo.value.hint
    assert clock.sleeps == []


# ------------------------------------------------------------------------------------------
# The optional priority look-up never blocks the page
# ------------------------------------------------------------------------------------------

PRIORITY_FAULTS: dict[str, Callable[[PagerDutyFake], object]] = {
    "5xx": lambda pd: pd.inject_status(503, method="GET", path="/priorities", times=50),
    "timeout": lambda pd: pd.inject_delay(3.0, method="GET", path="/priorities", times=50),
    "429 beyond its share": lambda pd: pd.inject_rate_limit(method="GET", path="/priorities", retry_after=60),
    "network error": lambda pd: pd.inject_reset(method="GET", path="/priorities", times=50),
}
PRIORITY_PROBLEMS = {
    "5xx": "HTTP 503 Service Unavailable",
    "timeout": "no answer within 0.4s",
    "429 beyond its share": "rate limited (429), asked to wait 60s (a 60s wait does not fit",
    "network error": "connection dropped before an answer",
}


@pytest.mark.parametrize("fault", list(PRIORITY_FAULTS))
def test_a_failed_priority_look_up_pages_without_a_priority_and_says_so(
    pd: PagerDutyFake, make_adapter: AdapterFactory, clock: Clock, fault: str
) -> None:
    adapter = make_adapter(budget=2.0, request_timeout=1.0)  # GET /priorities gets 0.4s of it
    PRIORITY_FAULTS[fault](pd)
    pd.inject_status(500, method="POST", path="/incidents")  # and the create still has time to retry
    created = create(adapter)
    assert [i["id"] for i in pd.incidents()] == [created.id]
    assert pd.incident(created.id)["priority"] is None
    assert "priority" not in pd.requests_to("POST", "/incidents")[-1].body["incident"]
    [warning] = created.warnings
    assert warning.startswith("created without a priority: GET /priorities failed: PagerDuty unreachable after ")
    assert PRIORITY_PROBLEMS[fault] in warning
    assert pd.token not in warning
    assert [r.status for r in pd.requests_to("POST", "/incidents")] == [500, 201]
    # The look-up stayed within its share: at most one 0.5s backoff of its own, then the create's.
    assert sum(clock.sleeps) <= 1.0 and clock.sleeps[-1] == 0.5
    if fault == "timeout":
        pd.clear_faults()
        wait_until_answered(pd, timeout=15.0)


def test_a_failed_priority_look_up_is_tried_again_on_the_next_create(
    pd: PagerDutyFake, adapter: PagerDutyAdapter
) -> None:
    pd.inject_status(503, method="GET", path="/priorities", times=2)
    first = create(adapter)
    assert first.warnings and pd.incident(first.id)["priority"] is None
    second = create(adapter, incident_key="opsctl/auth/INC-2")
    assert second.warnings == ()
    assert pd.incident(second.id)["priority"]["name"] == "P1"


def test_the_warning_survives_a_create_found_by_key(pd: PagerDutyFake, adapter: PagerDutyAdapter) -> None:
    pd.inject_status(502, method="GET", path="/priorities", times=50)
    pd.inject_reset_during_create()
    created = create(adapter)
    assert [i["id"] for i in pd.incidents()] == [created.id]
    assert created.warnings and "HTTP 502 Bad Gateway" in created.warnings[0]


def test_a_rejected_token_on_the_priority_look_up_still_fails(pd: PagerDutyFake, make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(token="not-the-token")
    with pytest.raises(UpstreamError, match=r"^PagerDuty rejected the API token \(401\)$"):
        create(adapter)
    assert calls(pd) == [("GET", "/priorities", 401)]


def test_an_interrupted_wait_propagates(pd: PagerDutyFake, make_adapter: AdapterFactory) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    adapter = make_adapter(sleep=interrupted)
    pd.inject_status(500, method="POST", path="/incidents")
    with pytest.raises(KeyboardInterrupt):
        create(adapter)
    assert [r.status for r in pd.requests_to("POST", "/incidents")] == [500]


# ------------------------------------------------------------------------------------------
# Secrets, configuration, plans
# ------------------------------------------------------------------------------------------


def test_a_rejected_token_never_shows_up(pd: PagerDutyFake, make_adapter: AdapterFactory, clock: Clock) -> None:
    secret = "u+wrong-Token-Value-42"
    adapter = make_adapter(token=secret)
    with pytest.raises(UpstreamError) as excinfo:
        create(adapter)
    error = excinfo.value
    assert error.message == "PagerDuty rejected the API token (401)"
    assert error.hint == "check integrations.pagerduty.token"
    assert error.exit_code == ExitCode.UPSTREAM
    assert clock.sleeps == []
    assert len(pd.requests) == 1  # 401 is final
    assert secret not in all_text(error)
    assert secret not in repr(adapter) and pd.token not in repr(make_adapter())
    assert redact.redact(f"token {secret}") == "token ***"  # registered for every output path


def test_the_token_is_not_in_failure_texts(pd: PagerDutyFake, adapter: PagerDutyAdapter) -> None:
    created = create(adapter)
    pd.inject_status(503, method="POST", path="/incidents/{id}/notes")
    pd.inject_reset(method="POST", path="/incidents/{id}/status_updates", process=True)
    errors = []
    for action in (
        lambda: adapter.add_note(created.id, "x"),
        lambda: adapter.status_update(created.id, "x"),
        lambda: adapter.acknowledge("PNOPE99"),
    ):
        with pytest.raises(UpstreamError) as excinfo:
            action()
        errors.append(excinfo.value)
    for error in errors:
        assert pd.token not in all_text(error)


@pytest.mark.parametrize("token", ["pd-token-value-42\n# rotated", "pd-token\tvalue-42", "pd-token\x00value-42"])
def test_a_token_that_cannot_be_a_header_is_refused_before_sending(pd: PagerDutyFake, token: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        PagerDutyAdapter(token=token, from_email=FROM, base_url=pd.base_url, ca_bundle=str(pd.ca_path))
    assert excinfo.value.message.startswith("integrations.pagerduty.token ")
    assert "value-42" not in all_text(excinfo.value)
    assert pd.requests == []


def test_base_url_must_be_https(pd: PagerDutyFake) -> None:
    for url in ("http://api.pagerduty.com", "api.pagerduty.com", "ftp://x"):
        with pytest.raises(UsageError, match=r"integrations\.pagerduty\.base_url") as excinfo:
            PagerDutyAdapter(token="t0ken-value", from_email=FROM, base_url=url)
        assert excinfo.value.exit_code == ExitCode.USAGE


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"integrations\.pagerduty\.ca_bundle: .*does not exist"):
        PagerDutyAdapter(token="t0ken-value", from_email=FROM, ca_bundle=str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(UsageError, match=r"not a usable PEM CA bundle"):
        PagerDutyAdapter(token="t0ken-value", from_email=FROM, ca_bundle=str(junk))


def test_plans_are_pure_and_match_the_spec() -> None:
    planned = PagerDutyAdapter.plan_create(
        service_id=SERVICE,
        title="[SEV-2] auth: slow logins",
        urgency="high",
        incident_key=KEY,
        details=None,
        escalation_policy_id="PESC001",
        priority_name="P2",
    )
    assert [(c.method, c.path) for c in planned] == [("POST", "/incidents")]  # writes only
    incident = planned[0].body["incident"] if planned[0].body else {}
    assert incident["priority"]["type"] == "priority_reference" and "P2" in incident["priority"]["id"]
    assert "body" not in incident
    plans: list[PlannedCall] = [
        *planned,
        *PagerDutyAdapter.plan_acknowledge("PI00001"),
        *PagerDutyAdapter.plan_resolve("PI00001", "rolled back"),
        *PagerDutyAdapter.plan_update("PI00001", "Mitigated."),
    ]
    assert plans[1] == PlannedCall(
        "PUT", "/incidents/PI00001", {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    )
    assert plans[2].body == {
        "incident": {"type": "incident_reference", "status": "resolved", "resolution": "rolled back"}
    }
    assert [(c.method, c.path) for c in plans[3:]] == [
        ("POST", "/incidents/PI00001/status_updates"),
        ("POST", "/incidents/PI00001/notes"),
    ]
    headers = {
        "Authorization": "Token token=x",
        "Accept": "application/vnd.pagerduty+json;version=2",
        "Content-Type": "application/json",
        "From": FROM,
    }
    for call in plans:
        assert validate_request(call.method, call.path, {}, headers, call.body) == [], call
    assert PagerDutyAdapter.plan_resolve("<pending>", None)[0].body == {
        "incident": {"type": "incident_reference", "status": "resolved"}
    }
