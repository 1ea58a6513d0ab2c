"""The PagerDuty fake, driven by the real ``pagerduty`` client over verified HTTPS, and the
OpenAPI contract checker that keeps both the client's requests and the fake's answers honest."""

from __future__ import annotations

import copy
import json
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pagerduty
import pytest

from tests.conftest import REPO
from tests.contract import openapi
from tests.contract.openapi import SpecNotFoundError, get_contract, validate_request, validate_response
from tests.fakes.pagerduty import DEDUP_ERROR, FROM_REQUIRED_MESSAGE, PagerDutyFake

FROM = "oncall@example.com"
GOOD_HEADERS = {
    "Authorization": "Token token=x",
    "Accept": "application/vnd.pagerduty+json;version=2",
    "Content-Type": "application/json",
    "From": FROM,
}


@pytest.fixture
def client(pd: PagerDutyFake) -> Iterator[Any]:
    # The 7.x client retries 429 forever and network errors 3 times with long sleeps by
    # default; tests want every failure surfaced at once.
    c = pd.client(default_from=FROM)
    c.max_network_attempts = 0
    c.sleep_timer = 0.01
    c.timeout = 5
    yield c
    c.close()


@pytest.fixture
def raw(pd: PagerDutyFake) -> Iterator[httpx.Client]:
    headers = {
        "Authorization": f"Token token={pd.token}",
        "Accept": "application/vnd.pagerduty+json;version=2",
        "From": FROM,
    }
    with httpx.Client(base_url=pd.base_url, verify=pd.ssl_context(), headers=headers, timeout=5) as c:
        yield c


def incident_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "incident",
        "title": "auth: login failures above 5%",
        "service": {"id": "PAUTH01", "type": "service_reference"},
        "urgency": "high",
        "incident_key": "opsctl/auth/sev1",
        "body": {"type": "incident_body", "details": "SEV-1 declared by opsctl"},
        "priority": {"id": "PPRI001", "type": "priority_reference"},
        "escalation_policy": {"id": "PESC001", "type": "escalation_policy_reference"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}  # None = leave the field out


def assert_contract_clean(pd: PagerDutyFake) -> None:
    """Every recorded request, and every answer the fake gave, matches the official spec."""
    assert pd.requests
    for req in pd.requests:
        assert validate_request(req.method, req.path, req.query, req.headers, req.body) == [], req
        if req.answered and req.fault is None:
            assert validate_response(req.method, req.path, req.status or 0, req.response) == [], req
    assert pd.contract_violations() == []


# ------------------------------------------------------------------------------------------
# Lifecycle through the real client
# ------------------------------------------------------------------------------------------


def test_incident_lifecycle_with_the_real_client(pd: PagerDutyFake, client: Any) -> None:
    created = client.rpost("/incidents", json=incident_body())
    assert created["id"] and created["incident_number"] == 1
    assert created["status"] == "triggered"
    assert created["urgency"] == "high"
    assert created["incident_key"] == "opsctl/auth/sev1"
    assert created["service"]["id"] == "PAUTH01"
    assert created["priority"]["name"] == "P1"
    assert created["escalation_policy"]["id"] == "PESC001"
    assert created["html_url"].endswith(f"/incidents/{created['id']}")
    assert created["created_at"].endswith("Z")
    assert pd.incident_details(created["id"]) == "SEV-1 declared by opsctl"
    incident_id = created["id"]

    # Same key on the same service while open: PagerDuty's 400.
    with pytest.raises(pagerduty.HttpError) as excinfo:
        client.rpost("/incidents", json=incident_body())
    response = excinfo.value.response
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 2001
    assert error["message"] == "Invalid Input Provided"
    assert error["errors"] == [DEDUP_ERROR]
    assert DEDUP_ERROR == "Open incident with matching dedup key already exists on this service"

    found = client.list_all(
        "/incidents", params={"incident_key": "opsctl/auth/sev1", "statuses": ["triggered", "acknowledged"]}
    )
    assert [i["id"] for i in found] == [incident_id]

    acked = client.rput(f"/incidents/{incident_id}", json={"type": "incident_reference", "status": "acknowledged"})
    assert acked["status"] == "acknowledged"
    assert [a["acknowledger"]["id"] for a in acked["acknowledgements"]] == ["PUSER01"]

    note = client.rpost(f"/incidents/{incident_id}/notes", json={"content": "rolled back auth to v41"})
    assert note["content"] == "rolled back auth to v41"
    assert note["user"]["id"] == "PUSER01"

    update = client.rpost(f"/incidents/{incident_id}/status_updates", json={"message": "Mitigated, monitoring."})
    assert update["message"] == "Mitigated, monitoring."
    assert update["sender"]["id"] == "PUSER01"

    resolved = client.rput(
        f"/incidents/{incident_id}",
        json={"type": "incident_reference", "status": "resolved", "resolution": "bad deploy rolled back"},
    )
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    assert resolved["assignments"] == [] and resolved["acknowledgements"] == []

    notes = client.rget(f"/incidents/{incident_id}/notes")
    assert [n["content"] for n in notes] == ["rolled back auth to v41"]
    assert client.rget(f"/incidents/{incident_id}")["status"] == "resolved"

    # The fake's state agrees with what the client saw.
    assert pd.incident(incident_id)["status"] == "resolved"
    assert [n["content"] for n in pd.notes(incident_id)] == ["rolled back auth to v41"]
    assert [u["message"] for u in pd.status_updates(incident_id)] == ["Mitigated, monitoring."]
    kinds = [e["type"] for e in pd.log_entries(incident_id)]
    assert kinds == [
        "trigger_log_entry",
        "acknowledge_log_entry",
        "annotate_log_entry",
        "status_update_log_entry",
        "resolve_log_entry",
    ]
    assert pd.log_entries(incident_id)[-1]["note"] == "bad deploy rolled back"

    # What went over the wire.
    create = pd.requests_to("POST", "/incidents")[0]
    assert create.header("from") == FROM
    assert create.header("Authorization") == f"Token token={pd.token}"
    assert create.header("Accept") == "application/vnd.pagerduty+json;version=2"
    assert create.body["incident"]["incident_key"] == "opsctl/auth/sev1"
    listing = pd.requests_to("GET", "/incidents")[0]
    assert listing.query["statuses[]"] == ["triggered", "acknowledged"]
    assert listing.query["incident_key"] == ["opsctl/auth/sev1"]
    assert_contract_clean(pd)


def test_tls_is_really_verified(pd: PagerDutyFake) -> None:
    # The system trust store does not know the throwaway CA...
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{pd.base_url}/priorities", timeout=5)
    # ...and a context trusting it (from the ca.pem on disk) does.
    ctx = ssl.create_default_context(cafile=str(pd.ca_path))
    r = httpx.get(f"{pd.base_url}/priorities", verify=ctx, headers={"Authorization": f"Token token={pd.token}"})
    assert r.status_code == 200
    assert pd.base_url.startswith("https://127.0.0.1:")


def test_authentication_is_required(pd: PagerDutyFake, raw: httpx.Client) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Token token=wrong"}):
        r = raw.get("/incidents", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == 2006
        assert validate_response("GET", "/incidents", 401, r.json()) == []
    wrong = pagerduty.RestApiV2Client("wrong", default_from=FROM, base_url=pd.base_url, verify=pd.ssl_context())
    with wrong, pytest.raises(pagerduty.HttpError) as excinfo:
        wrong.rget("/priorities")
    assert excinfo.value.response.status_code == 401
    assert validate_request("GET", "/priorities", {}, {"Accept": "application/json"}, None) == [
        "header: 'Authorization' must be 'Token token=<API_KEY>' (or 'Bearer <oauth token>')"
    ]


def test_writes_need_the_from_header(pd: PagerDutyFake, raw: httpx.Client) -> None:
    r = raw.post("/incidents", json={"incident": incident_body()}, headers={"From": ""})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": FROM_REQUIRED_MESSAGE, "code": 2016}
    assert pd.incidents() == []
    req = pd.requests[-1]
    assert any("'From'" in v for v in validate_request(req.method, req.path, req.query, req.headers, req.body))


def test_dedup_applies_to_open_incidents_on_the_same_service_only(client: Any, pd: PagerDutyFake) -> None:
    first = client.rpost("/incidents", json=incident_body())
    other_service = client.rpost(
        "/incidents", json=incident_body(service={"id": "PBILL01", "type": "service_reference"}, escalation_policy=None)
    )
    assert other_service["escalation_policy"]["id"] == "PESC002"  # the service's own policy
    client.rput(f"/incidents/{first['id']}", json={"type": "incident_reference", "status": "resolved"})
    again = client.rpost("/incidents", json=incident_body())
    assert again["id"] != first["id"]
    assert len(pd.incidents(incident_key="opsctl/auth/sev1")) == 3
    assert len(pd.incidents(incident_key="opsctl/auth/sev1", statuses=("triggered",))) == 2
    # Without a key PagerDuty assigns one.
    keyless = client.rpost("/incidents", json=incident_body(incident_key=None))
    assert len(keyless["incident_key"]) == 32


def test_list_filters_and_pagination(client: Any, pd: PagerDutyFake, raw: httpx.Client) -> None:
    services = ["PAUTH01", "PAUTH01", "PBILL01", "PAPI001", "PAPI001"]
    ids = []
    for n, service in enumerate(services):
        body = incident_body(
            incident_key=f"k{n}", service={"id": service, "type": "service_reference"}, escalation_policy=None
        )
        ids.append(client.rpost("/incidents", json=body)["id"])
    client.rput(f"/incidents/{ids[1]}", json={"type": "incident_reference", "status": "resolved"})

    assert [i["id"] for i in client.list_all("/incidents", page_size=2)] == ids
    assert [r.query["offset"] for r in pd.requests_to("GET", "/incidents")] == [["0"], ["2"], ["4"]]

    page = raw.get("/incidents", params={"limit": 2, "offset": 4, "total": "true"}).json()
    assert page["more"] is False and page["total"] == 5 and len(page["incidents"]) == 1
    page = raw.get("/incidents", params={"limit": 2}).json()
    assert page["more"] is True and page["total"] is None

    auth_open = client.list_all("/incidents", params={"service_ids": ["PAUTH01"], "statuses": ["triggered"]})
    assert [i["id"] for i in auth_open] == [ids[0]]
    newest = raw.get("/incidents", params={"sort_by": "incident_number:desc", "limit": 1}).json()["incidents"]
    assert newest[0]["id"] == ids[-1]

    bad = raw.get("/incidents", params={"statuses[]": "open"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == 2001
    # Everything the client sent and the fake answered is in the contract, except the bad filter.
    assert pd.contract_violations() == [
        "GET /incidents: query.statuses[]: 'open' is not one of ['triggered', 'acknowledged', 'resolved']"
    ]


def test_priorities_and_accounts_without_them(pd: PagerDutyFake, client: Any, raw: httpx.Client) -> None:
    assert [p["name"] for p in client.list_all("/priorities")] == ["P1", "P2", "P3", "P4", "P5"]
    p3 = client.rpost("/incidents", json=incident_body(priority={"id": "PPRI003", "type": "priority_reference"}))
    assert p3["priority"]["name"] == "P3"
    # A priority *name* is accepted by PUT /incidents/{id} only; createIncident takes a reference.
    by_name = raw.post("/incidents", json={"incident": incident_body(priority="P3", incident_key="by-name")})
    assert by_name.status_code == 400
    assert validate_request("POST", "/incidents", {}, GOOD_HEADERS, json.loads(by_name.request.content)) == [
        "body.incident.priority: 'P3' is not of type 'object'"
    ]
    pd.clear_requests()

    pd.priorities_enabled = False
    assert client.list_all("/priorities") == []
    r = raw.post("/incidents", json={"incident": incident_body()})
    assert r.status_code == 400
    plain = client.rpost("/incidents", json=incident_body(priority=None, incident_key="no-priority"))
    assert plain["priority"] is None
    assert_contract_clean(pd)


def test_not_found_and_unknown_routes(raw: httpx.Client) -> None:
    r = raw.get("/incidents/PNOPE00")
    assert r.status_code == 404
    assert r.json() == {"error": {"message": "Not Found", "code": 2100}}
    assert validate_response("GET", "/incidents/PNOPE00", 404, r.json()) == []
    assert raw.get("/nothing/here").status_code == 404


def test_reopen_and_field_updates(client: Any) -> None:
    created = client.rpost("/incidents", json=incident_body())
    path = f"/incidents/{created['id']}"
    updated = client.rput(
        path, json={"type": "incident_reference", "urgency": "low", "title": "renamed", "priority": "P2"}
    )
    assert (updated["urgency"], updated["title"], updated["priority"]["name"]) == ("low", "renamed", "P2")
    client.rput(path, json={"type": "incident_reference", "status": "resolved"})
    reopened = client.rput(path, json={"type": "incident_reference", "status": "triggered"})
    assert reopened["status"] == "triggered" and reopened["resolved_at"] is None
    assert reopened["assignments"][0]["assignee"]["id"] == "PUSER02"


# ------------------------------------------------------------------------------------------
# Fault injection
# ------------------------------------------------------------------------------------------


def test_rate_limit_fault_sends_retry_after_and_ratelimit_headers(pd: PagerDutyFake, raw: httpx.Client) -> None:
    pd.inject_rate_limit(method="GET", path="/incidents", retry_after=2, ratelimit_reset=3)
    assert raw.get("/priorities").status_code == 200  # does not match the filter
    r = raw.get("/incidents")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "2"
    assert r.headers["ratelimit-reset"] == "3"
    assert r.headers["ratelimit-remaining"] == "0"
    assert r.json()["error"]["code"] == 2020
    assert validate_response("GET", "/incidents", 429, r.json()) == []
    assert raw.get("/incidents").status_code == 200  # consumed
    assert pd.pending_faults == []
    assert [req.fault for req in pd.requests] == [None, "status 429 on GET /incidents", None]


def test_fault_times_and_order(pd: PagerDutyFake, raw: httpx.Client) -> None:
    pd.inject_status(503, path="/incidents/{id}", times=2)
    pd.inject_status(500)
    created = raw.post("/incidents", json={"incident": incident_body()})
    assert created.status_code == 500  # the first fault does not match POST /incidents
    assert pd.incidents() == []
    assert raw.get("/incidents/PI00001").status_code == 503
    assert raw.get("/incidents/PI00001").status_code == 503
    assert raw.get("/incidents/PI00001").status_code == 404
    pd.inject_status(500, times=5)
    pd.clear_faults()
    assert raw.get("/priorities").status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_reach_the_client_unretried(pd: PagerDutyFake, client: Any, status: int) -> None:
    pd.inject_status(status, method="POST", path="/incidents")
    with pytest.raises(pagerduty.ServerHttpError) as excinfo:
        client.rpost("/incidents", json=incident_body())
    response = excinfo.value.response
    assert response.status_code == status
    if status == 500:
        assert response.json()["error"]["code"] == 2000
    else:
        assert response.headers["content-type"].startswith("text/html")
    assert pd.incidents() == []
    assert len(pd.requests_to("POST", "/incidents")) == 1  # the 7.x client never retries 5xx


def test_gateway_error_after_the_incident_was_created(pd: PagerDutyFake, raw: httpx.Client) -> None:
    pd.inject_status(502, method="POST", path="/incidents", process=True)
    assert raw.post("/incidents", json={"incident": incident_body()}).status_code == 502
    assert len(pd.incidents(incident_key="opsctl/auth/sev1")) == 1


def test_delay_longer_than_the_client_timeout(pd: PagerDutyFake, raw: httpx.Client) -> None:
    pd.inject_delay(3.0, method="POST", path="/incidents")
    with pytest.raises(httpx.ReadTimeout):
        raw.post("/incidents", json={"incident": incident_body()}, timeout=0.2)
    # The client gave up before the answer: the fake is still holding the request.
    assert not pd.requests_to("POST", "/incidents")[0].answered
    # The slow server still processes the request after the client gave up.
    deadline = time.monotonic() + 15  # a hang guard only
    while not pd.incidents() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(pd.incidents(incident_key="opsctl/auth/sev1")) == 1
    assert raw.get("/priorities").status_code == 200


def test_reset_during_create_leaves_exactly_one_incident(pd: PagerDutyFake, raw: httpx.Client) -> None:
    pd.inject_reset_during_create()
    with pytest.raises(httpx.TransportError):
        raw.post("/incidents", json={"incident": incident_body()})
    created = pd.requests_to("POST", "/incidents")
    assert len(created) == 1 and created[0].status is None and not created[0].answered
    # The client must discover it by incident_key.
    found = raw.get("/incidents", params={"incident_key": "opsctl/auth/sev1"}).json()["incidents"]
    assert len(found) == 1
    assert [i["id"] for i in pd.incidents()] == [found[0]["id"]]


def test_reset_during_create_then_a_blind_retry_hits_the_dedup_error(pd: PagerDutyFake, client: Any) -> None:
    client.max_network_attempts = 1  # the client retries the POST once after the reset
    pd.inject_reset_during_create()
    with pytest.raises(pagerduty.HttpError) as excinfo:
        client.rpost("/incidents", json=incident_body())
    assert excinfo.value.response.json()["error"]["errors"] == [DEDUP_ERROR]
    assert len(pd.requests_to("POST", "/incidents")) == 2
    assert len(pd.incidents()) == 1


def test_reset_before_processing_changes_nothing(pd: PagerDutyFake, client: Any) -> None:
    pd.inject_reset(method="POST", path="/incidents")
    with pytest.raises(pagerduty.Error):
        client.rpost("/incidents", json=incident_body())
    assert pd.incidents() == []
    assert client.rpost("/incidents", json=incident_body())["status"] == "triggered"


def test_concurrent_creates_with_one_key_make_one_incident(pd: PagerDutyFake) -> None:
    results: list[int] = []

    def create() -> None:
        with httpx.Client(verify=pd.ssl_context(), timeout=5) as c:
            r = c.post(
                f"{pd.base_url}/incidents",
                json={"incident": incident_body()},
                headers={"Authorization": f"Token token={pd.token}", "From": FROM},
            )
            results.append(r.status_code)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [400] * 5
    assert len(pd.incidents()) == 1


def test_reset_clears_state(pd: PagerDutyFake, client: Any) -> None:
    client.rpost("/incidents", json=incident_body())
    pd.inject_status(500)
    pd.reset()
    assert pd.incidents() == [] and pd.requests == [] and pd.pending_faults == []
    assert client.rpost("/incidents", json=incident_body())["incident_number"] == 1


# ------------------------------------------------------------------------------------------
# The contract checker can fail
# ------------------------------------------------------------------------------------------


def create_violations(body: Any, headers: dict[str, str] | None = None) -> list[str]:
    return validate_request("POST", "/incidents", {}, GOOD_HEADERS if headers is None else headers, body)


def test_checker_accepts_a_good_create() -> None:
    assert create_violations({"incident": incident_body()}) == []
    assert create_violations({"incident": incident_body(body={"type": "incident_body", "details": {"a": 1}})}) == []


def test_checker_catches_a_missing_from_header() -> None:
    headers = {k: v for k, v in GOOD_HEADERS.items() if k != "From"}
    assert create_violations({"incident": incident_body()}, headers) == ["header: required header 'From' is missing"]
    bad_email = create_violations({"incident": incident_body()}, {**GOOD_HEADERS, "From": "oncall"})
    assert bad_email == ["header.From: 'oncall' is not a 'email'"]


def test_checker_catches_a_bad_urgency() -> None:
    assert create_violations({"incident": incident_body(urgency="urgent")}) == [
        "body.incident.urgency: 'urgent' is not one of ['high', 'low']"
    ]


def test_checker_catches_missing_required_body_fields() -> None:
    body = incident_body()
    del body["title"]
    assert create_violations({"incident": body}) == ["body.incident: 'title' is a required property"]
    no_service_id = create_violations({"incident": incident_body(service={"type": "service_reference"})})
    assert no_service_id == ["body.incident.service: 'id' is a required property"]
    assert create_violations(incident_body()) == ["body: 'incident' is a required property"]
    assert create_violations(None) == ["body: POST /incidents requires a JSON body"]
    assert create_violations({"incident": incident_body(body={"type": "incident_body", "details": 5})}) == [
        "body.incident.body.details: 5 is not of type 'object', 'string'"
    ]


def test_checker_catches_bad_types_and_wrong_references() -> None:
    wrong_ref = create_violations({"incident": incident_body(priority={"id": "PPRI001", "type": "priority"})})
    assert wrong_ref == ["body.incident.priority.type: 'priority' is not one of ['priority_reference']"]
    note = validate_request("POST", "/incidents/PI00001/notes", {}, GOOD_HEADERS, {"note": {"content": 42}})
    assert note == ["body.note.content: 42 is not of type 'string'"]
    update = validate_request("PUT", "/incidents/PI00001", {}, GOOD_HEADERS, {"incident": {"status": "closed"}})
    assert update == [
        "body.incident: 'type' is a required property",
        "body.incident.status: 'closed' is not one of ['resolved', 'acknowledged', 'triggered']",
    ]
    status_update = validate_request("POST", "/incidents/PI00001/status_updates", {}, GOOD_HEADERS, {"msg": "x"})
    assert status_update == ["body: 'message' is a required property"]


def test_checker_checks_query_parameters() -> None:
    get_headers = {k: v for k, v in GOOD_HEADERS.items() if k not in ("Content-Type", "From")}

    def check(query: dict[str, Any]) -> list[str]:
        return validate_request("GET", "/incidents", query, get_headers, None)

    assert check({"statuses[]": ["triggered", "acknowledged"], "service_ids[]": ["PAUTH01"], "limit": "25"}) == []
    assert check({"total": True, "offset": 0, "incident_key": "k", "sort_by": "created_at:desc"}) == []
    assert check({"statuses[]": ["open"]}) == [
        "query.statuses[]: 'open' is not one of ['triggered', 'acknowledged', 'resolved']"
    ]
    assert check({"statuses": "triggered"})[0].startswith("query: unknown parameter 'statuses'")
    assert check({"limit": "ten"}) == ["query.limit: 'ten' is not an integer"]
    assert check({"total": "yes"}) == ["query.total: 'yes' is not a boolean (true/false)"]
    assert check({"statuses[]": ["triggered", "triggered"]}) == [
        "query.statuses[]: values must be unique, got ['triggered', 'triggered']"
    ]
    assert check({"sort_by": "a,b,c"}) == ["query.sort_by: 3 values violates maxItems=2"]


def test_checker_headers_and_the_content_type_quirk() -> None:
    get_headers = {"Authorization": "Token token=x", "Accept": "application/json"}
    # The spec says Content-Type is required even on GET; without a body it is not asked for.
    assert validate_request("GET", "/priorities", {}, get_headers, None) == []
    assert validate_request("GET", "/priorities", {}, {"Authorization": "Token token=x"}, None) == [
        "header: required header 'Accept' is missing"
    ]
    no_ct = {k: v for k, v in GOOD_HEADERS.items() if k != "Content-Type"}
    assert create_violations({"incident": incident_body()}, no_ct) == [
        "header: required header 'Content-Type' is missing"
    ]
    text = create_violations({"incident": incident_body()}, {**GOOD_HEADERS, "Content-Type": "text/plain"})
    assert text == ["header.Content-Type: 'text/plain' is not one of ['application/json']"]
    utf8 = {**GOOD_HEADERS, "content-type": "application/json; charset=utf-8"}
    del utf8["Content-Type"]
    assert create_violations({"incident": incident_body()}, utf8) == []
    assert validate_request("GET", "/priorities", {}, get_headers, {"x": 1}) == [
        "header: required header 'Content-Type' is missing",
        "body: GET /priorities takes no request body",
    ]


def test_checker_rejects_unknown_operations() -> None:
    assert validate_request("GET", "/incidentz", {}, GOOD_HEADERS, None) == [
        "GET /incidentz: no such path in the PagerDuty REST API spec"
    ]
    assert validate_request("DELETE", "/incidents/PI00001", {}, GOOD_HEADERS, None) == [
        "DELETE /incidents/{id}: method not in the spec (allowed: GET, PUT)"
    ]
    # Full URLs are accepted, and literal paths win over templates (in a spec that has one).
    assert get_contract().match_path("https://api.pagerduty.com/incidents/PX/notes?x=1") == "/incidents/{id}/notes"
    spec = copy.deepcopy(get_contract().raw)
    spec["paths"]["/incidents/count"] = {"get": {"responses": {"200": {"description": "count"}}}}
    with_count = openapi.Contract(spec)
    assert with_count.match_path("/incidents/count") == "/incidents/count"
    assert with_count.match_path("/incidents/PX") == "/incidents/{id}"


def test_checker_catches_bad_responses() -> None:
    good = {"incident": {"id": "PI00001", "type": "incident", "status": "triggered", "resolved_at": None}}
    assert validate_response("GET", "/incidents/PI00001", 200, good) == []
    bad_status = {"incident": {**good["incident"], "status": "open"}}
    assert validate_response("GET", "/incidents/PI00001", 200, bad_status) == [
        "response.incident.status: 'open' is not one of ['triggered', 'acknowledged', 'resolved']"
    ]
    assert validate_response("GET", "/incidents/PI00001", 200, good["incident"]) == [
        "response: 'incident' is a required property"
    ]
    assert validate_response("POST", "/incidents/PI00001/notes", 201, {"note": {"content": "x"}}) == [
        "POST /incidents/{id}/notes: status 201 is not documented (documented: 200, 400, 401, 403, 404, 429)"
    ]
    listing = {"incidents": [], "more": "no", "limit": 25, "offset": 0, "total": None}
    assert validate_response("GET", "/incidents", 200, listing) == ["response.more: 'no' is not of type 'boolean'"]
    created_at = {"incident": {**good["incident"], "created_at": "yesterday"}}
    assert validate_response("GET", "/incidents/PI00001", 200, created_at) == [
        "response.incident.created_at: 'yesterday' is not a 'date-time'"
    ]


def test_the_specs_own_examples_pass_the_checker() -> None:
    """The quirk handling is consistent with the spec authors' own examples."""
    contract = get_contract()
    checked = 0
    for method, template in openapi.operations(
        ["/incidents", "/incidents/{id}", "/incidents/{id}/notes", "/incidents/{id}/status_updates", "/priorities"]
    ):
        concrete = template.replace("{id}", "PT4KHLK")
        base = "/paths/" + template.replace("/", "~1") + "/" + method.lower()
        op = contract.spec["paths"][template][method.lower()]
        if "requestBody" in op:
            _, request_body = contract.resolve(base + "/requestBody")
            for example in request_body["content"]["application/json"].get("examples", {}).values():
                assert validate_request(method, concrete, {}, GOOD_HEADERS, example["value"]) == []
                checked += 1
        for status in op["responses"]:
            if not status.startswith("2"):
                continue
            _, response = contract.resolve(f"{base}/responses/{status}")
            for example in response.get("content", {}).get("application/json", {}).get("examples", {}).values():
                assert validate_response(method, concrete, int(status), example["value"]) == []
                checked += 1
    assert checked >= 12


def test_spec_location_and_a_clear_error_when_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv(openapi.SPEC_ENV, raising=False)
    default = openapi.default_spec_path()
    assert default == REPO / "tests" / "contract" / "pagerduty" / "rest-openapiv3.cut.json"  # in the repository
    assert default.is_file()
    missing = tmp_path / "nope.json"
    monkeypatch.setenv(openapi.SPEC_ENV, str(missing))
    assert openapi.default_spec_path() == missing
    with pytest.raises(SpecNotFoundError, match=r"OPSCTL_PD_SPEC"):
        get_contract(missing)
    # A spec given through the variable is used.
    copy = tmp_path / "spec.json"
    copy.write_bytes(default.read_bytes())
    monkeypatch.setenv(openapi.SPEC_ENV, str(copy))
    assert get_contract().source == copy
