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
