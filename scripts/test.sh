#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian 12 machine, then the suite itself.
# - Debian's PostgreSQL 15 (the oldest supported server) from apt, if missing
# - Debian's Chromium (the web page's browser tests drive it with Playwright), from apt, if missing
# - Debian's Prometheus 2.42 (the kubernetes tests load their series into it with promtool), from apt without its
#   recommends (node-exporter), if missing
# - Debian's RabbitMQ 3.10 (the OpenStack event tests run a private broker), from apt, if missing
# - Go and Debian's govmomi source, from apt, if missing: the vmware tests build vcsim (tests/vmware/vcsim) from it
# - PGlite + TimescaleDB for the TimescaleDB-mode tests, from npm (tests/pglite, pinned by its lock file)
# - Gnocchi 4.7.1 (what Ceilometer writes to) and Keystone, each in a virtualenv of its own, pinned by
#   tests/gnocchi/requirements.lock and tests/keystone/requirements.lock
# - a virtualenv with cloudmeter and its test extras
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "==> $*" >&2; }

if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    step "installing Debian's PostgreSQL 15 (apt-get)"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-15 >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
    step "installing Debian's Chromium for the web page's tests (apt-get)"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x /usr/bin/promtool ]; then
    step "installing Debian's Prometheus for the kubernetes tests (apt-get)"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    step "installing Debian's RabbitMQ for the OpenStack event tests (apt-get)"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
fi
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/vmware/govmomi/simulator ]; then
    step "installing Go and Debian's govmomi source for vcsim (apt-get)"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-go golang-github-vmware-govmomi-dev >/dev/null
fi
if [ ! -d tests/pglite/node_modules ]; then
    step "installing PGlite + TimescaleDB (npm ci in tests/pglite)"
    npm ci --silent --legacy-peer-deps --prefix tests/pglite
fi
for server in gnocchi keystone; do
    if [ ! -x tests/$server/.venv/bin/$server-manage ] && [ ! -x tests/$server/.venv/bin/$server-upgrade ]; then
        step "installing $server in tests/$server/.venv (a few minutes, once)"
        python3 -m venv tests/$server/.venv
        tests/$server/.venv/bin/python -m pip install -q -r tests/$server/requirements.lock
    fi
done
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
step "installing cloudmeter with its test extras in .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
step "running the tests"
exec .venv/bin/python -m pytest "$@"
