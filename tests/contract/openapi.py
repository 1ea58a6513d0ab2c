"""Contract checks against the official PagerDuty REST API v2 OpenAPI document.

The spec is loaded once per process: by default the cut of PagerDuty/api-schema's
``reference/REST/openapiv3.json`` committed next to this file
(``pagerduty/rest-openapiv3.cut.json``: the operations opsctl uses and every component they
reference; source, commit and checksums in ``pagerduty/SOURCE.md``, made by
``scripts/cut_pagerduty_spec.py``), or the document ``$OPSCTL_PD_SPEC`` names (e.g. the full one).

Two entry points:

* :func:`validate_request` checks what a client sent: the operation exists for
  (method, concrete path), authentication header, required header parameters (``Accept``,
  ``From``, ``Content-Type`` when a body is sent), their enums/formats, the query parameters
  (required, known, typed, enums), and the JSON body against the operation's requestBody schema.
* :func:`validate_response` checks what a server (our fake) answered: the status is documented
  for the operation and the JSON body matches that response's schema.

Both return a list of human-readable violations; an empty list means valid.

Schemas are checked with ``jsonschema`` (Draft 4 semantics, which is what OpenAPI 3.0 schema
objects are based on), with ``#/components/...`` references resolved through a ``referencing``
Registry holding the whole spec. OpenAPI 3.0's ``nullable: true`` is not JSON Schema, so the
loaded document is rewritten once to express it (``type: [T, "null"]`` / ``anyOf`` with null).

Known quirks of the spec, and how they are treated here (each one is visible in the spec's own
examples or in the API's documented behaviour, so enforcing the letter would only create noise):

1. ``Content-Type`` is declared as a *required* header parameter on every operation, including
   GETs that carry no body. HTTP clients (``pagerduty``/httpx among them) do not send a
   Content-Type without a body, and GETs without one work against the real API. It is required
   only when the request has a body; when present, its media type must be in the enum.
2. ``IncidentBody.details`` is typed ``object``, yet the spec's own createIncident example (and
   PagerDuty's documentation and real behaviour) sends a string. A string is accepted too.
3. Some ``Incident`` fields are declared non-nullable although the spec's own examples (or its
   descriptions) return ``null``, as the real API does: ``resolved_at`` (unresolved incidents),
   ``resolve_reason``, ``alert_grouping`` ("will be null if the incident has no alerts") and
   ``alert_grouping.ended_at``. They are treated as nullable.
4. ``Incident.priority`` is not nullable in the spec, but the real API returns ``"priority":
   null`` for incidents without a priority (and always on accounts without priorities). It is
   treated as nullable.

Unknown query parameters are reported: an API that ignores them is exactly how a ``statuses=``
instead of ``statuses[]=`` filter bug goes unnoticed. ``readOnly``
properties sent in a request are not reported (references legitimately carry ``id``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPEC_ENV = "OPSCTL_PD_SPEC"
SPEC_URI = "urn:pagerduty:rest-api-v2"
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class SpecNotFoundError(FileNotFoundError):
    """The PagerDuty OpenAPI document could not be found."""


CUT_PATH = Path(__file__).resolve().parent / "pagerduty" / "rest-openapiv3.cut.json"


def default_spec_path() -> Path:
    """``$OPSCTL_PD_SPEC`` if set, else the committed cut (:data:`CUT_PATH`)."""
    env = os.environ.get(SPEC_ENV)
    if env:
        return Path(env)
    return CUT_PATH


# --------------------------------------------------------------------------------------------
# Loading and preprocessing
# --------------------------------------------------------------------------------------------


def _apply_nullable(node: Any) -> None:
    """Rewrite OpenAPI 3.0 ``nullable: true`` into plain JSON Schema, in place."""
    if isinstance(node, list):
        for item in node:
            _apply_nullable(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if key in ("example", "examples", "x-examples"):
            continue
        _apply_nullable(value)
    if node.get("nullable") is True:
        del node["nullable"]
        typ = node.get("type")
        if isinstance(typ, str):
            node["type"] = [typ, "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
        elif typ is None:
            rest = dict(node)
            node.clear()
            node["anyOf"] = [{"type": "null"}, rest]


def _make_nullable(schema: dict[str, Any]) -> None:
    rest = dict(schema)
    schema.clear()
    schema["anyOf"] = [{"type": "null"}, rest]


def _apply_quirks(spec: dict[str, Any]) -> None:
    """Relax the schema where the spec contradicts its own examples (see module docstring)."""
    schemas = spec["components"]["schemas"]
    # Quirk 2: body.details is a string in practice.
    details = schemas["IncidentBody"]["properties"]["details"]
    details["type"] = ["object", "string"]
    # Quirks 3 and 4: the Incident schema is allOf[Tag/allOf/0, {properties...}].
    incident_props = schemas["Incident"]["allOf"][1]["properties"]
    _make_nullable(incident_props["alert_grouping"]["properties"]["ended_at"])
    for name in ("resolved_at", "resolve_reason", "alert_grouping", "priority"):
        _make_nullable(incident_props[name])


@dataclass(frozen=True)
class _Route:
    template: str
    regex: re.Pattern[str]
    literal_segments: int


class Contract:
    """The loaded spec with its operation index and validators. Use :func:`get_contract`."""

    def __init__(self, spec: dict[str, Any], source: Path | None = None) -> None:
        self.source = source
        self.raw = spec
        self.spec = copy.deepcopy(spec)
        _apply_nullable(self.spec)
        _apply_quirks(self.spec)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT4.create_resource(self.spec))
        self._routes = self._index_paths()
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._lock = threading.Lock()

    # -- paths and operations --------------------------------------------------------------

    def _index_paths(self) -> list[_Route]:
        routes = []
        for template in self.spec["paths"]:
            parts = template.strip("/").split("/")
            pattern = []
            literal = 0
            for part in parts:
                if part.startswith("{") and part.endswith("}"):
                    pattern.append("[^/]+")
                else:
                    pattern.append(re.escape(part))
                    literal += 1
            regex = re.compile("^/" + "/".join(pattern) + "$")
            routes.append(_Route(template, regex, literal))
        # Prefer literal matches (/incidents/count) over templated ones (/incidents/{id}).
        routes.sort(key=lambda r: -r.literal_segments)
        return routes

    def match_path(self, path: str) -> str | None:
        """The path template that a concrete path belongs to, or None."""
        path = _plain_path(path)
        for route in self._routes:
            if route.regex.match(path):
                return route.template
        return None

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """(template, operation object) for a method and concrete path, or None."""
        template = self.match_path(path)
        if template is None:
            return None
        op = self.spec["paths"][template].get(method.lower())
        if op is None:
            return None
        return template, op

    def resolve(self, pointer: str) -> tuple[str, Any]:
        """Follow ``$ref`` chains from a JSON pointer; returns (final pointer, object)."""
        seen = set()
        obj = _pointer_get(self.spec, pointer)
        while isinstance(obj, dict) and isinstance(obj.get("$ref"), str) and obj["$ref"].startswith("#/"):
            if pointer in seen:
                raise ValueError(f"$ref cycle at {pointer}")
            seen.add(pointer)
            pointer = obj["$ref"][1:]
            obj = _pointer_get(self.spec, pointer)
        return pointer, obj

    def parameters(self, template: str, method: str) -> list[dict[str, Any]]:
        """The effective parameters of an operation (path-level merged, refs resolved)."""
        base = "/paths/" + _escape(template)
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for where in (base, f"{base}/{method.lower()}"):
            container = _pointer_get(self.spec, where)
            for i, _ in enumerate(container.get("parameters", [])):
                _, param = self.resolve(f"{where}/parameters/{i}")
                merged[(param["name"], param["in"])] = param
        return list(merged.values())

    # -- schema validation -----------------------------------------------------------------

    def validator(self, pointer: str) -> jsonschema.protocols.Validator:
        with self._lock:
            validator = self._validators.get(pointer)
            if validator is None:
                schema = {"$ref": f"{SPEC_URI}#{pointer}"}
                validator = jsonschema.Draft4Validator(schema, registry=self.registry, format_checker=FORMAT_CHECKER)
                self._validators[pointer] = validator
            return validator

    def schema_errors(self, pointer: str, instance: Any, where: str) -> list[str]:
        errors = sorted(self.validator(pointer).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
        # allOf branches repeat the same complaint (e.g. "not of type 'object'"): say it once.
        return list(dict.fromkeys(_describe(error, where) for error in errors))


def _describe(error: jsonschema.ValidationError, where: str) -> str:
    location = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = error.message
    if error.context:
        # oneOf/anyOf: say which alternative came closest and why it failed.
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            inner = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in best.absolute_path)
            message = f"{error.validator} failed; closest: {inner}: {best.message}"
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{location}: {message}"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pointer_get(doc: Any, pointer: str) -> Any:
    node = doc
    if pointer in ("", "/"):
        return node
    for raw in pointer.lstrip("/").split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _plain_path(path: str) -> str:
    if "://" in path or "?" in path:
        path = urlsplit(path).path
    if len(path) > 1:
        path = path.rstrip("/")
    return path or "/"


# --------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------

FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@FORMAT_CHECKER.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


@FORMAT_CHECKER.checks("url")
@FORMAT_CHECKER.checks("uri")
def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

_contract_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: str) -> Contract:
    file = Path(path)
    if not file.is_file():
        raise SpecNotFoundError(
            f"PagerDuty OpenAPI spec not found at {file}. Set ${SPEC_ENV} to the path of a PagerDuty "
            "REST OpenAPI document, or unset it to use the committed cut (see tests/contract/pagerduty/SOURCE.md)."
        )
    with file.open(encoding="utf-8") as fh:
        spec = json.load(fh)
    return Contract(spec, source=file)


def get_contract(path: str | os.PathLike[str] | None = None) -> Contract:
    """The process-wide, lazily loaded contract (the spec is parsed once per path)."""
    with _contract_lock:
        return _load(str(Path(path) if path is not None else default_spec_path()))


def _query_values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [_query_scalar(v) for v in value]
    return [_query_scalar(value)]


def _query_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _coerce(raw: str, schema: Mapping[str, Any]) -> tuple[Any, str | None]:
    typ = schema.get("type")
    types = typ if isinstance(typ, list) else [typ]
    if "integer" in types:
        try:
            return int(raw), None
        except ValueError:
            return raw, "is not an integer"
    if "number" in types:
        try:
            return float(raw), None
        except ValueError:
            return raw, "is not a number"
    if "boolean" in types:
        if raw in ("true", "false"):
            return raw == "true", None
        return raw, "is not a boolean (true/false)"
    return raw, None


def _check_query(params: list[dict[str, Any]], query: Mapping[str, Any]) -> list[str]:
    violations = []
    declared = {p["name"]: p for p in params if p["in"] == "query"}
    given = {str(k): _query_values(v) for k, v in (query or {}).items()}
    for name, param in declared.items():
        values = given.get(name, [])
        if not values:
            if param.get("required"):
                violations.append(f"query: required parameter {name!r} is missing")
            continue
        schema = param.get("schema", {})
        item_schema = schema.get("items", {}) if schema.get("type") == "array" else schema
        if schema.get("type") == "array" and param.get("explode") is False:
            values = [part for value in values for part in value.split(",")]
        if len(values) > 1 and schema.get("type") != "array" and not name.endswith("[]"):
            violations.append(f"query.{name}: given {len(values)} times but takes a single value")
        if schema.get("uniqueItems") and len(set(values)) != len(values):
            violations.append(f"query.{name}: values must be unique, got {values}")
        if schema.get("type") == "array":
            for key in ("maxItems", "minItems"):
                limit = schema.get(key)
                if limit is not None and (len(values) > limit if key == "maxItems" else len(values) < limit):
                    violations.append(f"query.{name}: {len(values)} values violates {key}={limit}")
        for raw in values:
            value, problem = _coerce(raw, item_schema)
            if problem:
                violations.append(f"query.{name}: {raw!r} {problem}")
                continue
            subschema = {k: v for k, v in item_schema.items() if k not in ("default", "example", "uniqueItems")}
            validator = jsonschema.Draft4Validator(subschema, format_checker=FORMAT_CHECKER)
            violations.extend(f"query.{name}: {error.message}" for error in validator.iter_errors(value))
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            violations.append(f"query: unknown parameter {name!r} (the operation takes: {known})")
    return violations


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _check_headers(params: list[dict[str, Any]], headers: Mapping[str, str], has_body: bool) -> list[str]:
    violations = []
    lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    for param in params:
        if param["in"] != "header":
            continue
        name = param["name"]
        value = lowered.get(name.lower())
        if value is None or value == "":
            required = bool(param.get("required"))
            if name.lower() == "content-type" and not has_body:
                # Quirk 1: the spec marks Content-Type required even on body-less requests.
                required = False
            if required:
                violations.append(f"header: required header {name!r} is missing")
            continue
        schema = {k: v for k, v in param.get("schema", {}).items() if k not in ("default", "example")}
        checked = _media_type(value) if name.lower() == "content-type" else value
        validator = jsonschema.Draft4Validator(schema, format_checker=FORMAT_CHECKER)
        violations.extend(f"header.{name}: {error.message}" for error in validator.iter_errors(checked))
    declares_content_type = any(p["in"] == "header" and p["name"].lower() == "content-type" for p in params)
    if has_body and "content-type" not in lowered and not declares_content_type:
        violations.append("header: a JSON body is sent without a 'Content-Type' header")
    return violations


def _check_auth(contract: Contract, op: dict[str, Any], headers: Mapping[str, str]) -> list[str]:
    security = op.get("security", contract.spec.get("security", []))
    if not security:
        return []
    schemes = contract.spec["components"].get("securitySchemes", {})
    lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    for requirement in security:
        satisfied = True
        for name in requirement:
            scheme = schemes.get(name, {})
            if scheme.get("type") == "apiKey" and scheme.get("in") == "header":
                value = lowered.get(scheme["name"].lower(), "")
                if not re.match(r"^(Token token=\S+|Bearer \S+)$", value):
                    satisfied = False
        if satisfied:
            return []
    return ["header: 'Authorization' must be 'Token token=<API_KEY>' (or 'Bearer <oauth token>')"]


def validate_request(
    method: str,
    path: str,
    query: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    body: Any | None,
) -> list[str]:
    """Check a request against the spec; returns a list of violations (empty = valid).

    ``query`` maps names to a value or a list of values (as ``urllib.parse.parse_qs`` gives);
    ``headers`` are matched case-insensitively; ``body`` is the decoded JSON body or None.
    """
    contract = get_contract()
    found = contract.operation(method, path)
    if found is None:
        template = contract.match_path(path)
        if template is None:
            return [f"{method.upper()} {path}: no such path in the PagerDuty REST API spec"]
        allowed = sorted(m.upper() for m in contract.spec["paths"][template] if m in _HTTP_METHODS)
        return [f"{method.upper()} {template}: method not in the spec (allowed: {', '.join(allowed)})"]
    template, op = found
    params = contract.parameters(template, method)
    has_body = body is not None
    violations = []
    violations += _check_auth(contract, op, headers or {})
    violations += _check_headers(params, headers or {}, has_body)
    violations += _check_query(params, query or {})

    base = "/paths/" + _escape(template) + "/" + method.lower()
    if "requestBody" not in op:
        if has_body:
            violations.append(f"body: {method.upper()} {template} takes no request body")
        return violations
    body_pointer, request_body = contract.resolve(base + "/requestBody")
    content = request_body.get("content", {})
    if "application/json" not in content:
        return violations
    schema_pointer = body_pointer + "/content/application~1json/schema"
    if not has_body:
        _, schema = contract.resolve(schema_pointer)
        if request_body.get("required") or schema.get("required"):
            violations.append(f"body: {method.upper()} {template} requires a JSON body")
        return violations
    violations += contract.schema_errors(schema_pointer, body, "body")
    return violations


def validate_response(method: str, path: str, status: int, body: Any | None) -> list[str]:
    """Check a response (status and decoded JSON body) against the spec; [] = valid."""
    contract = get_contract()
    found = contract.operation(method, path)
    if found is None:
        return [f"{method.upper()} {path}: no such operation in the PagerDuty REST API spec"]
    template, op = found
    responses = op.get("responses", {})
    key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
    if key is None:
        documented = ", ".join(sorted(responses))
        return [f"{method.upper()} {template}: status {status} is not documented (documented: {documented})"]
    base = "/paths/" + _escape(template) + "/" + method.lower() + "/responses/" + _escape(key)
    response_pointer, response = contract.resolve(base)
    content = response.get("content", {})
    if "application/json" not in content:
        if body not in (None, b"", ""):
            return [f"response {status}: body given but the spec documents none"]
        return []
    if body is None:
        return [f"response {status}: the spec documents a JSON body but none was returned"]
    return contract.schema_errors(response_pointer + "/content/application~1json/schema", body, "response")


def operations(paths: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(METHOD, template) pairs in the spec, optionally limited to some templates."""
    spec = get_contract().spec
    chosen = list(paths) if paths is not None else list(spec["paths"])
    return [(m.upper(), t) for t in chosen for m in spec["paths"][t] if m in _HTTP_METHODS]
