"""Start-up stays light: the common paths import no heavy client library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["boto3", "botocore", "kubernetes", "psycopg", "redis", "pagerduty", "httpx", "moto"]

PROBE = """
import contextlib, io, json, sys
from opsctl.cli import run
with contextlib.redirect_stdout(io.StringIO()):
    code = run(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(m.split(".")[0] for m in sys.modules)}))
"""


def imported(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, proc.stderr
    return set(result["modules"])


def test_help_imports_no_heavy_client():
    assert not imported("--help") & set(HEAVY)


def test_services_imports_no_client_and_no_yaml_on_a_cached_config(example_config):
    first = imported("-c", str(example_config), "services")
    assert not first & set(HEAVY)
    second = imported("-c", str(example_config), "services")
    assert "yaml" not in second  # the validated snapshot is reused


def test_local_incident_declare_imports_no_pagerduty_client():
    modules = imported("-o", "json", "incident", "declare", "api", "--sev", "3", "--title", "probe")
    assert not modules & {"pagerduty", "boto3", "psycopg", "redis"}
