"""Redaction of output and logs, JSON log lines, trace context."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

import httpx

from opsctl import logging as oplog
from opsctl import redact, tracing
from opsctl.integrations.http import client
from opsctl.output import Output


def test_registered_values_and_url_passwords_are_masked():
    redact.register("s3cr3t-value")
    assert redact.redact("dsn=s3cr3t-value;") == "dsn=***;"
    assert redact.redact("postgresql://app:pw123@db:5432/x") == "postgresql://app:***@db:5432/x"
    data = redact.redact_data({"token": "abcd1234", "dsn": "vault:secret/x#dsn", "note": "has s3cr3t-value"})
    assert data == {"token": "***", "dsn": "vault:secret/x#dsn", "note": "has ***"}


def test_output_redacts_everything_it_writes():
    redact.register("hunter2-long")
    out, err = io.StringIO(), io.StringIO()
    output = Output("json", stdout=out, stderr=err)
    output.data({"message": "password is hunter2-long"})
    output.warn("leaked hunter2-long")
    assert "hunter2-long" not in out.getvalue() + err.getvalue()
    assert json.loads(out.getvalue()) == {"message": "password is ***"}


def test_json_log_lines_have_the_standard_fields():
    stream = io.StringIO()
    trace = tracing.start_trace()
    oplog.setup("json", 0, stream=stream)
    oplog.set_service("auth")
    redact.register("tok-abcdef")
    logging.getLogger("opsctl.test").info("calling with tok-abcdef")
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["level"] == "info" and entry["service"] == "auth"
    assert entry["trace_id"] == trace and re.fullmatch(r"[0-9a-f]{16}", entry["span_id"])
    assert entry["message"] == "calling with ***"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["timestamp"])
    oplog.set_service(None)


def test_trace_continues_an_incoming_traceparent():
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert tracing.start_trace(parent) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.start_trace("garbage") != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_outgoing_http_carries_traceparent():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(200)

    trace = tracing.start_trace()
    with client(transport=httpx.MockTransport(handler)) as http:
        http.get("http://example.invalid/x")
        with tracing.span():
            http.get("http://example.invalid/y")
    assert all(h and h.startswith(f"00-{trace}-") and h.endswith("-01") for h in seen)
    assert seen[0] != seen[1]  # a child span has its own id


def test_json_log_lines_mask_escaped_forms_of_secrets():
    """The JSON formatter redacts the serialized line: a secret with a quote or a newline is
    JSON-escaped there, and an exception text holds its repr."""
    secret = 'tok-"quoted"\nline2'
    redact.register(secret)
    try:
        raise ValueError(f"bad header {secret.encode()!r}")
    except ValueError:
        record = logging.LogRecord("opsctl.t", logging.ERROR, __file__, 1, "got %s", (secret,), sys.exc_info())
    line = oplog.JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "got ***"
    assert "ValueError: bad header b'***'" in entry["exception"]
    assert "tok-" not in line and "line2" not in line
