#!/usr/bin/env bash
# Quick start: install opsctl into ./.venv and run it on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
echo "+ opsctl services" >&2
.venv/bin/opsctl services
echo "+ opsctl tiers" >&2
.venv/bin/opsctl tiers
