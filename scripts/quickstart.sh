#!/usr/bin/env bash
# Quick start: install opsctl into ./.venv and run it on the embedded defaults
# (the example topology; incidents on the local backend, nobody is paged).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
run() { echo "+ opsctl $*" >&2; .venv/bin/opsctl "$@"; }
run services
run tiers
id=$(.venv/bin/opsctl -o json incident declare api --sev 2 --title "quick start: checkout latency above SLO" \
      | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["id"])')
echo "+ opsctl incident declare api --sev 2 --title ... -> $id" >&2
run incident list
run incident resolve "$id" --resolution "quick start done"
run audit --since 1h
