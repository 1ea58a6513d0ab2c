"""config/schema.json and completions/ must match what the code generates."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import yaml

from tests.conftest import EXAMPLE, REPO


def test_generated_files_are_current():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_example_config_satisfies_the_schema():
    schema = json.loads((REPO / "config" / "schema.json").read_text())
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text()), schema)


def test_schema_rejects_unknown_keys():
    schema = json.loads((REPO / "config" / "schema.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors({"servicez": []}))
    assert errors


def _defaults(node, where="#"):
    """Every (location, subschema) in ``node`` that has a ``default``, walking subschemas only."""
    if not isinstance(node, dict):
        return
    if "default" in node:
        yield where, node
    for keyword in ("properties", "patternProperties", "$defs"):
        for name, sub in node.get(keyword, {}).items():
            yield from _defaults(sub, f"{where}/{keyword}/{name}")
    for keyword in ("items", "additionalProperties", "propertyNames", "not"):
        yield from _defaults(node.get(keyword), f"{where}/{keyword}")
    for keyword in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for index, sub in enumerate(node.get(keyword, [])):
            yield from _defaults(sub, f"{where}/{keyword}/{index}")


def test_every_default_in_the_schema_satisfies_its_own_subschema():
    schema = json.loads((REPO / "config" / "schema.json").read_text())
    found = list(_defaults(schema))
    assert len(found) > 50  # the walk reaches the nested definitions
    for where, sub in found:
        own = {k: v for k, v in sub.items() if k != "default"} | {"$defs": schema["$defs"]}
        errors = [e.message for e in jsonschema.Draft202012Validator(own).iter_errors(sub["default"])]
        assert not errors, (where, sub["default"], errors)


def test_schema_takes_both_forms_of_environments():
    schema = json.loads((REPO / "config" / "schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    mapping = {
        "production": {},
        "staging": {"integrations": {"prometheus": {"url": "http://p:9090"}, "kubernetes": {"context": "stg"}}},
    }
    for environments in (["production", "staging"], mapping):
        assert not list(validator.iter_errors({"environments": environments}))
    typo = {"staging": {"integrations": {"prometheus": {"urll": "x"}}}}
    assert list(validator.iter_errors({"environments": typo}))
