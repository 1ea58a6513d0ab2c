"""The committed cut of PagerDuty's OpenAPI document: intact, complete for the adapter, and
reproducible by ``scripts/cut_pagerduty_spec.py``; and no code reaches outside the repository."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from opsctl.integrations.pagerduty import PagerDutyAdapter
from tests.conftest import REPO
from tests.contract import openapi
from tests.fakes.pagerduty import PagerDutyFake

CONTRACT_DIR = REPO / "tests" / "contract" / "pagerduty"
SCRIPT = REPO / "scripts" / "cut_pagerduty_spec.py"


def source_table() -> dict[str, str]:
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", (CONTRACT_DIR / "SOURCE.md").read_text(), re.MULTILINE)
    return dict(rows)


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cut_pagerduty_spec", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------
# The committed cut
# ------------------------------------------------------------------------------------------


def test_the_cut_matches_the_checksum_in_source_md() -> None:
    table = source_table()
    assert table["upstream repository"] == "https://github.com/PagerDuty/api-schema"
    assert table["commit"].startswith("91a06fb3c64b0ab2b2bd6c485d12b327dfb55c18")
    assert table["path"] == "reference/REST/openapiv3.json"
    assert table["upstream sha256"] == "b2e80f8b83b170f29702e96a69adf230702b4ec43dddab7e348a2985c707ef35"
    cut = CONTRACT_DIR / table["cut"]
    assert cut == openapi.CUT_PATH
    assert hashlib.sha256(cut.read_bytes()).hexdigest() == table["cut sha256"]


def test_the_cut_holds_exactly_the_scripts_operations() -> None:
    script = load_script()
    contract = openapi.get_contract(openapi.CUT_PATH)
    in_cut = {
        (method.upper(), template)
        for template, item in contract.raw["paths"].items()
        for method in item
        if method in script.HTTP_METHODS
    }
    assert in_cut == set(script.OPERATIONS)


def test_every_call_the_adapter_makes_is_in_the_cut(pd: PagerDutyFake) -> None:
    """Drive every adapter call against the fake; each request must be an operation of the cut."""
    script = load_script()
    with PagerDutyAdapter(
        token=pd.token, from_email="oncall@example.com", base_url=pd.base_url, ca_bundle=str(pd.ca_path), budget=10
    ) as adapter:
        created = adapter.create_incident(
            service_id="PAUTH01",
            title="probe",
            urgency="high",
            incident_key="opsctl/auth/probe",
            details="d",
            escalation_policy_id=None,
            priority_name="P2",
        )
        assert adapter.find_open_by_key("opsctl/auth/probe", "PAUTH01") == created
        adapter.acknowledge(created.id)
        adapter.add_note(created.id, "note")
        adapter.status_update(created.id, "update")
        adapter.resolve(created.id, "done")
    contract = openapi.get_contract(openapi.CUT_PATH)
    called = set()
    for request in pd.requests:
        found = contract.operation(request.method, request.path)
        assert found is not None, f"{request.method} {request.path} is not in the cut"
        called.add((request.method, found[0]))
    assert called == set(script.ADAPTER_OPERATIONS)
    assert pd.contract_violations() == []


# ------------------------------------------------------------------------------------------
# The script
# ------------------------------------------------------------------------------------------


def mini_spec() -> dict[str, Any]:
    """A small OpenAPI document with chains of references and things to leave out."""
    ref = "#/components/schemas/"
    return {
        "openapi": "3.0.2",
        "info": {"title": "mini", "version": "1"},
        "security": [{"api_key": []}],
        "tags": [{"name": "Incidents"}, {"name": "Users"}],
        "servers": [{"url": "https://api.example.test"}],
        "components": {
            "securitySchemes": {"api_key": {"type": "apiKey", "in": "header", "name": "Authorization"}},
            "parameters": {"id": {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}},
            "responses": {"NotFound": {"description": "nf", "content": {"application/json": {"schema": {}}}}},
            "schemas": {
                "Incident": {"allOf": [{"$ref": ref + "Reference"}, {"properties": {"svc": {"$ref": ref + "Svc"}}}]},
                "Reference": {"properties": {"id": {"type": "string"}}},
                "Svc": {"properties": {"policy": {"$ref": ref + "Policy"}}},
                "Policy": {"properties": {"self": {"$ref": ref + "Policy"}}},  # a cycle
                "User": {"properties": {"id": {"type": "string"}}},
                "Unused": {"type": "object"},
            },
        },
        "paths": {
            "/users": {"get": {"tags": ["Users"], "responses": {"200": {"$ref": ref + "User"}}}},
            "/incidents/{id}": {
                "description": "one incident",
                "parameters": [{"$ref": "#/components/parameters/id"}],
                "get": {
                    "tags": ["Incidents"],
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"$ref": ref + "Incident"}}}},
                        "404": {"$ref": "#/components/responses/NotFound/content/application~1json/schema"},
                    },
                },
                "delete": {"tags": ["Incidents"], "responses": {"204": {"$ref": ref + "Unused"}}},
            },
        },
    }


def test_the_cut_keeps_what_the_operations_reference_transitively() -> None:
    script = load_script()
    cut = script.cut(mini_spec(), [("GET", "/incidents/{id}")])
    assert list(cut) == ["openapi", "info", "security", "tags", "servers", "components", "paths"]
    assert list(cut["paths"]) == ["/incidents/{id}"]
    assert list(cut["paths"]["/incidents/{id}"]) == ["description", "parameters", "get"]
    assert cut["tags"] == [{"name": "Incidents"}]
    assert cut["components"] == {
        "securitySchemes": mini_spec()["components"]["securitySchemes"],
        "parameters": mini_spec()["components"]["parameters"],
        "responses": mini_spec()["components"]["responses"],
        "schemas": {
            name: mini_spec()["components"]["schemas"][name] for name in ("Incident", "Reference", "Svc", "Policy")
        },
    }


def run_script(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), "--source", str(source), "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_script_is_deterministic_and_reports_checksums(tmp_path: Path) -> None:
    script = load_script()
    source = tmp_path / "openapiv3.json"
    source.write_text(json.dumps(mini_spec()))
    refused = run_script(source, tmp_path / "refused.json")
    assert refused.returncode == 1  # the mini spec lacks the real operations
    assert refused.stderr == "cut_pagerduty_spec: /incidents/{id}: no PUT operation in the source\n"
    assert not (tmp_path / "refused.json").exists()

    real_like = mini_spec()
    for method, template in script.OPERATIONS:
        real_like["paths"].setdefault(template, {})[method.lower()] = {"responses": {}}
    source.write_text(json.dumps(real_like))
    runs = [run_script(source, tmp_path / "out" / name) for name in ("a.json", "b.json")]
    assert [r.returncode for r in runs] == [0, 0], runs
    first, second = (tmp_path / "out" / "a.json").read_bytes(), (tmp_path / "out" / "b.json").read_bytes()
    assert first == second and first.endswith(b"}\n")
    assert f"source sha256 {hashlib.sha256(source.read_bytes()).hexdigest()}" in runs[0].stderr
    assert f"cut    sha256 {hashlib.sha256(first).hexdigest()}" in runs[0].stderr
    assert set(json.loads(first)["paths"]) == {template for _, template in script.OPERATIONS}


def test_the_script_refuses_a_missing_method_and_a_dangling_reference() -> None:
    script = load_script()
    with pytest.raises(script.CutError, match=r"/incidents/\{id\}: no PUT operation in the source"):
        script.cut(mini_spec(), [("PUT", "/incidents/{id}")])
    broken = mini_spec()
    del broken["components"]["schemas"]["Svc"]
    with pytest.raises(script.CutError, match=r"#/components/schemas/Svc, which the source does not have"):
        script.cut(broken, [("GET", "/incidents/{id}")])


# ------------------------------------------------------------------------------------------
# Self-contained
# ------------------------------------------------------------------------------------------


def test_no_code_reaches_for_the_shared_directory() -> None:
    needle = "../" + "shared"
    offenders = []
    for top in ("src", "commands", "tests", "scripts", "config", "bench"):
        for path in sorted((REPO / top).rglob("*")):
            generated = any(part == "__pycache__" or part.endswith(".egg-info") for part in path.parts)
            if path.is_file() and not generated:
                try:
                    text = path.read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    continue
                if needle in text or ("shared" + "/specs") in text:
                    offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
