"""Twenty responders declare the same incident at the same moment: one incident, everyone exit 0.

Incident commands are short operations: they wait (a bounded time, saying for whom) for the
service's incident lock instead of refusing.  On SQLite and PostgreSQL state, and with the
locks in Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from tests.cli.conftest import OPSCTL

RESPONDERS = 20
REDIS_URL = os.environ.get("OPSCTL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["store locks", "redis locks"])
def config(request, state_config, tmp_path):
    if request.param == "store locks":
        return state_config
    path = tmp_path / "redis-locks.yaml"
    path.write_text(state_config.read_text().replace("locks: state", f"locks: redis\n  redis_url: {REDIS_URL}"))
    return path


def test_simultaneous_declares_all_get_the_one_incident(opsctl, config):
    title = f"login fails for everyone {uuid.uuid4().hex[:6]}"
    argv = [str(OPSCTL), "-c", str(config), "-o", "json", "incident", "declare", "auth", "--sev", "1", "--title", title]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        for _ in range(RESPONDERS)
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * RESPONDERS, [err for _, _, err in results]
    assert not any("Traceback" in err for _, _, err in results)
    ids = {json.loads(out)["id"] for _, out, _ in results}
    assert len(ids) == 1
    listed = opsctl("-c", str(config), "-o", "json", "incident", "list").json()
    assert [i["id"] for i in listed] == list(ids)
    outcomes = [a["outcome"] for a in opsctl("-c", str(config), "-o", "json", "audit").json()]
    assert outcomes.count("ok") == RESPONDERS and outcomes.count("started") == 1  # one change, one answer each
    assert sum("already open" in err for _, _, err in results) == RESPONDERS - 1
    assert opsctl("-c", str(config), "-o", "json", "locks").json() == []
