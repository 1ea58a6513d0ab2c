"""Six responders declare the same incident at the same moment: one incident, everyone exit 0.

Incident commands are short operations: they wait (a bounded time, saying for whom) for the
service's incident lock instead of refusing.  On SQLite and PostgreSQL state alike.
"""

from __future__ import annotations

import json
import os
import subprocess

from tests.cli.conftest import OPSCTL

RESPONDERS = 6


def test_six_simultaneous_declares_all_get_the_one_incident(opsctl, state_config):
    argv = [str(OPSCTL), "-c", str(state_config), "-o", "json", "incident", "declare", "auth", "--sev", "1",
            "--title", "login fails for everyone"]  # fmt: skip
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        for _ in range(RESPONDERS)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * RESPONDERS, [err for _, _, err in results]
    ids = {json.loads(out)["id"] for _, out, _ in results}
    assert len(ids) == 1
    listed = opsctl("-c", str(state_config), "-o", "json", "incident", "list").json()
    assert [i["id"] for i in listed] == list(ids)
    outcomes = [a["outcome"] for a in opsctl("-c", str(state_config), "-o", "json", "audit").json()]
    assert outcomes.count("ok") == RESPONDERS and outcomes.count("started") == 1  # one change, six answers
    assert sum("already open" in err for _, _, err in results) == RESPONDERS - 1
    assert opsctl("-c", str(state_config), "-o", "json", "locks").json() == []
