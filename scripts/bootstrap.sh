#!/usr/bin/env bash
# Set up a Debian 12 machine for baove, idempotently: system packages, RabbitMQ running,
# the virtual environment with the pinned packages. Sourced by scripts/run and scripts/test.
# Usage: bootstrap.sh [--with-postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WITH_PG=0
[ "${1:-}" = "--with-postgres" ] && WITH_PG=1

say() { printf '\033[1m[baove]\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else say "need root for: $*"; exit 1; fi; }

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $APT_UPDATED = 0 ]; then say "apt-get update"; as_root apt-get update -qq; APT_UPDATED=1; fi
  say "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

has_systemd() { [ "$(ps -o comm= -p 1 2>/dev/null)" = systemd ]; }

# -- Python 3.11+ with venv ----------------------------------------------------------------
PY=${BAOVE_PYTHON:-python3}
if ! command -v "$PY" >/dev/null || ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  apt_install python3
fi
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi

# -- RabbitMQ: installed and running --------------------------------------------------------
if ! command -v rabbitmq-server >/dev/null && [ ! -x /usr/sbin/rabbitmq-server ]; then
  apt_install rabbitmq-server
fi
export PATH="$PATH:/usr/sbin"
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  say "starting RabbitMQ"
  if has_systemd; then as_root systemctl start rabbitmq-server; else as_root rabbitmq-server -detached; fi
  if ! as_root timeout 120 rabbitmqctl -q await_startup >/dev/null 2>&1; then
    say "RabbitMQ did not start within 120 s; see /var/log/rabbitmq/"; exit 1
  fi
fi

# -- PostgreSQL (for the tests) -------------------------------------------------------------
if [ $WITH_PG = 1 ]; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql; fi
  PGVER=$(ls /etc/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $4}' | grep -q online; then
    say "starting PostgreSQL $PGVER"
    if has_systemd; then as_root systemctl start "postgresql@$PGVER-main"; else as_root pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start; fi
  fi
  # A password role, so the tests connect over TCP whatever the local auth method is.
  as_root su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='baove'\"" | grep -q 1 \
    || as_root su postgres -c "psql -qc \"CREATE ROLE baove LOGIN CREATEDB PASSWORD 'baove'\""
fi

# -- the report documents: WeasyPrint's Pango and fonts for the PDF; poppler's pdftotext/pdftoppm for the tests ----
apt_install libpango-1.0-0 libpangoft2-1.0-0 fonts-liberation fonts-dejavu-core
if [ "${BAOVE_RUNTIME_ONLY:-0}" != 1 ]; then apt_install poppler-utils; fi

# -- Chromium (for the console's browser tests; Playwright drives the system browser) -------
if [ "${BAOVE_RUNTIME_ONLY:-0}" != 1 ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
# The tests' reference AsyncAPI parser is a JavaScript package (scripts/test installs it with npm).
if [ "${BAOVE_RUNTIME_ONLY:-0}" != 1 ] && ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi

# -- the virtual environment with the pins ----------------------------------------------------
REQ=requirements-test.txt
[ "${BAOVE_RUNTIME_ONLY:-0}" = 1 ] && REQ=requirements.txt
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
STAMP=.venv/.baove-installed
WANT=$(cat requirements.txt "$REQ" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  say "installing pinned packages ($REQ)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$REQ" 2> >(grep -v 'is ignored' >&2)
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e . 2> >(grep -v -e 'is ignored' -e '!!' -e 'WheelFile' >&2 || true)
  echo "$WANT" > "$STAMP"
fi
