"""PagerDuty REST API v2: the thin typed adapter the incident engine pages through.

:class:`PagerDutyAdapter` (incidents, priorities, notes, status updates, the ``--dry-run`` plans
of its writes, and the reading of PagerDuty's answers), the :class:`PdIncident` and
:class:`PlannedCall` it hands back, and the constants callers use. The client and the retrying
loop every call runs under one time budget are its base class,
:class:`~opsctl.integrations.pagerduty_http.PagerDutyTransport`.

The create is retried like the GETs and PUTs, being idempotent through its ``incident_key``:
after an ambiguous failure the next attempt first looks the incident up by key, and PagerDuty's
"Open incident with matching dedup key already exists" answer is turned into that incident.

Paging never depends on the optional priority look-up: ``GET /priorities`` runs on a small share
of the create's budget (:data:`PRIORITY_SHARE`), and when it fails the incident is created
without a priority and :attr:`PdIncident.warnings` says so.

Every failure is an :class:`~opsctl.errors.UpstreamError` (exit 4) whose text never carries
the token. ``import pagerduty`` happens only inside methods so that ``opsctl --help`` stays fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from opsctl import redact
from opsctl.errors import UpstreamError, UsageError

# Re-exported: these constants have always been importable from this module.
from opsctl.integrations.pagerduty_http import BACKOFF_INITIAL as BACKOFF_INITIAL
from opsctl.integrations.pagerduty_http import BACKOFF_MAX as BACKOFF_MAX
from opsctl.integrations.pagerduty_http import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from opsctl.integrations.pagerduty_http import MAX_ATTEMPTS as MAX_ATTEMPTS
from opsctl.integrations.pagerduty_http import MIN_ATTEMPT_TIME as MIN_ATTEMPT_TIME
from opsctl.integrations.pagerduty_http import TOKEN_HINT, Budget, PagerDutyTransport, status_text, truncate

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger("opsctl.pagerduty")

DEDUP_MESSAGE = "open incident with matching dedup key already exists on this service"
OPEN_STATUSES = ("triggered", "acknowledged")
URGENCIES = ("high", "low")
_PRIORITY_PAGES = 20
PRIORITY_SHARE = 0.2  # of a create's budget, at most, for the optional GET /priorities


@dataclass(frozen=True)
class PdIncident:
    """A PagerDuty incident as opsctl needs it."""

    id: str
    number: int | None
    status: str
    urgency: str
    html_url: str | None
    incident_key: str | None
    created_at: str | None
    warnings: tuple[str, ...] = ()  # what went wrong without stopping the call, for the user to see


@dataclass(frozen=True)
class PlannedCall:
    """One request a ``--dry-run`` would send."""

    method: str
    path: str
    body: dict[str, Any] | None


# ----------------------------------------------------------------------------------------
# Internals: the create's early exit, ids, PagerDuty's answers
# ----------------------------------------------------------------------------------------


class _TokenRejected(UpstreamError):
    """401: nothing else can work with this token either."""


class _AlreadyThere(Exception):
    """Raised from inside the create loop when a look-up by key found the incident."""

    def __init__(self, incident: PdIncident) -> None:
        super().__init__(incident.id)
        self.incident = incident


def _quote_id(value: str, what: str = "incident") -> str:
    if not value or not value.strip():
        raise UsageError(f"no PagerDuty {what} id given", "the incident has not been delivered to PagerDuty yet")
    return quote(value.strip(), safe="")


def _error_parts(response: httpx2.Response) -> tuple[str, list[str]]:
    """PagerDuty's ``error.message`` and ``error.errors[]`` (or the start of a non-JSON body)."""
    try:
        data = response.json()
    except ValueError:
        return truncate(response.text), []
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return truncate(response.text), []
    message = str(error.get("message") or "").strip()
    errors = error.get("errors")
    items = [str(item).strip() for item in errors if str(item).strip()] if isinstance(errors, list) else []
    return message, items


def _is_dedup_answer(response: httpx2.Response) -> bool:
    if response.status_code != 400:
        return False
    message, errors = _error_parts(response)
    return any(DEDUP_MESSAGE in text.lower() for text in [message, *errors])


def _json(response: httpx2.Response, method: str, path: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise UpstreamError(
            f"PagerDuty answered {method} {path} with something that is not JSON: {truncate(response.text)!r}"
        ) from None
    if not isinstance(data, dict):
        raise UpstreamError(f"PagerDuty answered {method} {path} with unexpected JSON ({type(data).__name__})")
    return data


def _incident_from(data: Any, method: str, path: str) -> PdIncident:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise UpstreamError(f"PagerDuty answered {method} {path} without an incident id")
    number = data.get("incident_number")

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    return PdIncident(
        id=data["id"],
        number=number if isinstance(number, int) and not isinstance(number, bool) else None,
        status=text("status") or "",
        urgency=text("urgency") or "",
        html_url=text("html_url"),
        incident_key=text("incident_key"),
        created_at=text("created_at"),
    )


# ----------------------------------------------------------------------------------------
# The adapter
# ----------------------------------------------------------------------------------------


class PagerDutyAdapter(PagerDutyTransport):
    """PagerDuty REST API v2 for the incident engine. Not for concurrent use from several threads."""

    _priorities: dict[str, str] | None = None  # name -> id, from GET /priorities on first use

    # -- answers ---------------------------------------------------------------------------

    def _check(self, response: httpx2.Response, method: str, path: str) -> None:
        """Raise UpstreamError for anything but a 2xx answer."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 401:
            raise _TokenRejected("PagerDuty rejected the API token (401)", TOKEN_HINT)
        if 300 <= status < 400:
            raise UpstreamError(
                f"PagerDuty answered {method} {path} with a redirect ({status_text(response)})",
                "check integrations.pagerduty.base_url",
            )
        message, errors = _error_parts(response)
        detail = ": ".join(part for part in (message, "; ".join(errors)) if part)
        text = f"PagerDuty rejected {method} {path} ({status_text(response)})"
        if detail:
            text += f": {detail}"
        hint = None
        if status == 403:
            hint = "the token's user may lack permission for this; check integrations.pagerduty.token and .from"
        elif status == 404:
            hint = "check the PagerDuty ids in the service's pagerduty block"
        elif "from" in detail.lower() and "header" in detail.lower():
            hint = "check integrations.pagerduty.from"
        raise UpstreamError(redact.redact(text), hint)

    def _ok_json(
        self,
        method: str,
        path: str,
        budget: Budget,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool,
    ) -> dict[str, Any]:
        response = self._call(method, path, budget, body=body, params=params, idempotent=idempotent)
        self._check(response, method, path)
        return _json(response, method, path)

    # -- priorities ------------------------------------------------------------------------

    def priority_id(self, name: str) -> str | None:
        """The id of the priority called ``name`` (GET /priorities once, cached); None if there is none."""
        return self._priority_id(name, self._new_budget())

    def _priority_id(self, name: str, budget: Budget) -> str | None:
        if self._priorities is None:
            self._priorities = self._load_priorities(budget)
        if name in self._priorities:
            return self._priorities[name]
        folded = {key.casefold(): value for key, value in self._priorities.items()}
        return folded.get(name.strip().casefold())

    def _load_priorities(self, budget: Budget) -> dict[str, str]:
        found: dict[str, str] = {}
        offset = 0
        for _ in range(_PRIORITY_PAGES):
            params = {"limit": 100, "offset": offset}
            response = self._call("GET", "/priorities", budget, params=params, idempotent=True)
            if response.status_code in (402, 403, 404):
                # Accounts without the priorities feature: page without one.
                log.debug("PagerDuty GET /priorities: %s, no priorities", response.status_code)
                return {}
            self._check(response, "GET", "/priorities")
            data = _json(response, "GET", "/priorities")
            items = data.get("priorities")
            if not isinstance(items, list):
                break
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("id"), str):
                    found.setdefault(item["name"], item["id"])
            if not data.get("more") or not items:
                break
            offset += len(items)
        return found

    # -- incidents -------------------------------------------------------------------------

    @staticmethod
    def _validate_create(service_id: str, title: str, urgency: str, incident_key: str) -> None:
        if not service_id or not service_id.strip():
            raise UsageError("the service has no PagerDuty service id", "set pagerduty.service_id for the service")
        if not title or not title.strip():
            raise UsageError("the incident title is empty")
        if urgency not in URGENCIES:
            raise UsageError(f"urgency {urgency!r} is not one of {', '.join(URGENCIES)}")
        if not incident_key or not incident_key.strip():
            raise UsageError("an incident key is required: it is what makes paging idempotent")

    @staticmethod
    def _create_body(
        *,
        service_id: str,
        title: str,
        urgency: str,
        incident_key: str,
        details: str | None,
        escalation_policy_id: str | None,
        priority: dict[str, str] | None,
    ) -> dict[str, Any]:
        incident: dict[str, Any] = {
            "type": "incident",
            "title": title,
            "service": {"id": service_id, "type": "service_reference"},
            "urgency": urgency,
            "incident_key": incident_key,
        }
        if details:
            incident["body"] = {"type": "incident_body", "details": details}
        if escalation_policy_id:
            incident["escalation_policy"] = {"id": escalation_policy_id, "type": "escalation_policy_reference"}
        if priority is not None:
            incident["priority"] = priority
        return {"incident": incident}

    def create_incident(
        self,
        *,
        service_id: str,
        title: str,
        urgency: str,
        incident_key: str,
        details: str | None,
        escalation_policy_id: str | None,
        priority_name: str | None,
    ) -> PdIncident:
        """Create the incident, exactly once: an incident already open under ``incident_key`` is returned."""
        self._validate_create(service_id, title, urgency, incident_key)
        budget = self._new_budget()
        priority, warnings = self._optional_priority(priority_name, budget)
        body = self._create_body(
            service_id=service_id,
            title=title,
            urgency=urgency,
            incident_key=incident_key,
            details=details,
            escalation_policy_id=escalation_policy_id,
            priority=priority,
        )

        def look_up() -> None:
            existing = self._find_open(incident_key, service_id, budget)
            if existing is not None:
                log.debug("PagerDuty: incident %s with key %r already exists", existing.id, incident_key)
                raise _AlreadyThere(existing)

        try:
            response = self._call(
                "POST", "/incidents", budget, body=body, idempotent=True, before_retry_after_ambiguity=look_up
            )
            if _is_dedup_answer(response):
                look_up()
                raise UpstreamError(
                    f"PagerDuty reports an open incident with key {incident_key!r} on service {service_id} "
                    "but it could not be found",
                    "check the service's open incidents at PagerDuty",
                )
        except _AlreadyThere as found:
            return replace(found.incident, warnings=warnings)
        self._check(response, "POST", "/incidents")
        data = _json(response, "POST", "/incidents")
        return replace(_incident_from(data.get("incident"), "POST", "/incidents"), warnings=warnings)

    def _optional_priority(self, name: str | None, budget: Budget) -> tuple[dict[str, str] | None, tuple[str, ...]]:
        """The priority reference for ``name``, looked up on a share of ``budget``; a failed
        look-up is a warning, not a failure: the page matters more than its priority."""
        if not name:
            return None, ()
        try:
            found = self._priority_id(name, budget.share(PRIORITY_SHARE))
        except _TokenRejected:
            raise
        except UpstreamError as exc:
            log.debug("PagerDuty GET /priorities failed (%s); creating without a priority", exc.message)
            return None, (f"created without a priority: GET /priorities failed: {exc.message}",)
        if found is None:
            log.debug("PagerDuty has no priority named %r; creating without one", name)
            return None, ()
        return {"id": found, "type": "priority_reference"}, ()

    def find_open_by_key(self, incident_key: str, service_id: str | None = None) -> PdIncident | None:
        """The open (triggered/acknowledged) incident with this key, on ``service_id`` if given."""
        return self._find_open(incident_key, service_id, self._new_budget())

    def _find_open(self, incident_key: str, service_id: str | None, budget: Budget) -> PdIncident | None:
        params: dict[str, Any] = {
            "incident_key": incident_key,
            "statuses[]": list(OPEN_STATUSES),
            "date_range": "all",
        }
        if service_id:
            params["service_ids[]"] = [service_id]
        data = self._ok_json("GET", "/incidents", budget, params=params, idempotent=True)
        items = data.get("incidents")
        if not isinstance(items, list):
            return None
        for item in items:
            if isinstance(item, dict) and item.get("incident_key") in (None, incident_key):
                return _incident_from(item, "GET", "/incidents")
        return None

    def _set_status(self, incident_id: str, status: str, resolution: str | None = None) -> PdIncident:
        path = f"/incidents/{_quote_id(incident_id)}"
        body = self._status_body(status, resolution)
        data = self._ok_json("PUT", path, self._new_budget(), body=body, idempotent=True)
        return _incident_from(data.get("incident"), "PUT", path)

    @staticmethod
    def _status_body(status: str, resolution: str | None = None) -> dict[str, Any]:
        incident: dict[str, Any] = {"type": "incident_reference", "status": status}
        if resolution:
            incident["resolution"] = resolution
        return {"incident": incident}

    def acknowledge(self, incident_id: str) -> PdIncident:
        return self._set_status(incident_id, "acknowledged")

    def resolve(self, incident_id: str, resolution: str | None) -> PdIncident:
        return self._set_status(incident_id, "resolved", resolution)

    def add_note(self, incident_id: str, content: str) -> None:
        if not content or not content.strip():
            raise UsageError("the note is empty")
        path = f"/incidents/{_quote_id(incident_id)}/notes"
        self._ok_json("POST", path, self._new_budget(), body={"note": {"content": content}}, idempotent=False)

    def status_update(self, incident_id: str, message: str) -> None:
        if not message or not message.strip():
            raise UsageError("the status update is empty")
        path = f"/incidents/{_quote_id(incident_id)}/status_updates"
        self._ok_json("POST", path, self._new_budget(), body={"message": message}, idempotent=False)

    # -- dry-run plans ---------------------------------------------------------------------

    @staticmethod
    def plan_create(
        *,
        service_id: str,
        title: str,
        urgency: str,
        incident_key: str,
        details: str | None,
        escalation_policy_id: str | None,
        priority_name: str | None,
    ) -> list[PlannedCall]:
        """The write :meth:`create_incident` sends. Reads are not planned: the priority id, looked up
        by name (GET /priorities) when it runs, shows as a placeholder, and is left out then if the
        account has no such priority."""
        PagerDutyAdapter._validate_create(service_id, title, urgency, incident_key)
        priority = None
        if priority_name:
            priority = {"id": f"<id of priority {priority_name}, if the account has it>", "type": "priority_reference"}
        body = PagerDutyAdapter._create_body(
            service_id=service_id,
            title=title,
            urgency=urgency,
            incident_key=incident_key,
            details=details,
            escalation_policy_id=escalation_policy_id,
            priority=priority,
        )
        return [PlannedCall("POST", "/incidents", body)]

    @staticmethod
    def plan_acknowledge(incident_id: str) -> list[PlannedCall]:
        return [PlannedCall("PUT", f"/incidents/{incident_id}", PagerDutyAdapter._status_body("acknowledged"))]

    @staticmethod
    def plan_resolve(incident_id: str, resolution: str | None) -> list[PlannedCall]:
        body = PagerDutyAdapter._status_body("resolved", resolution)
        return [PlannedCall("PUT", f"/incidents/{incident_id}", body)]

    @staticmethod
    def plan_update(incident_id: str, message: str) -> list[PlannedCall]:
        """A status update and the same text as a note (what ``incident update`` sends)."""
        return [
            PlannedCall("POST", f"/incidents/{incident_id}/status_updates", {"message": message}),
            PlannedCall("POST", f"/incidents/{incident_id}/notes", {"note": {"content": message}}),
        ]

    @staticmethod
    def plan_note(incident_id: str, content: str) -> list[PlannedCall]:
        return [PlannedCall("POST", f"/incidents/{incident_id}/notes", {"note": {"content": content}})]
