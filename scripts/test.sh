#!/usr/bin/env bash
# The one test command: installs what the suite needs on a fresh machine, starts the
# services it talks to when they are down, then runs pytest. Idempotent; extra arguments
# go to pytest (e.g. bash scripts/test.sh tests/cli -k services).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# --- Debian packages: PostgreSQL and Redis servers, and the tools later suites drive
need_pkgs=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v pgbackrest >/dev/null 2>&1 || need_pkgs+=(pgbackrest)
[ -x /usr/bin/prometheus ] || need_pkgs+=(prometheus)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# --- PostgreSQL at 127.0.0.1:5432 (trust auth, database "test")
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  version=$(ls /etc/postgresql | sort -n | tail -n 1)
  log "starting PostgreSQL $version"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test' >/dev/null
fi

# --- Redis at 127.0.0.1:6379
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi

# --- the package with its test extras, in ./.venv
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.opsctl-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing opsctl[test] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi

exec .venv/bin/python -m pytest "$@"
