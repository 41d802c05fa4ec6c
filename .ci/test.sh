#!/usr/bin/env bash
# The README's test command: installs what the suite needs on a fresh Debian machine (system
# packages with apt-get when run as root, a virtual environment, taktline with its test extras),
# then runs ruff, mypy and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mosquitto || need+=(mosquitto)
have mosquitto_sub || need+=(mosquitto-clients)
have influxd || need+=(influxdb)
have victoria-metrics || need+=(victoria-metrics)
have chromium || need+=(chromium fonts-dejavu-core)
have npm || need+=(nodejs npm)
have systemd-analyze || need+=(systemd)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing Debian packages: ${need[*]} (run this as root, or install them); tests needing them fail" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# Node-RED, the peer of bench/peer_nodered.py (its tests need it); again when the lock changed
if have npm && ! [ bench/peers/node_modules/.package-lock.json -nt bench/peers/package-lock.json ]; then
  npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error
fi

echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest -q "$@"
