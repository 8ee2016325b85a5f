#!/usr/bin/env bash
# Make sure the services the test suite needs are reachable. PostgreSQL: use the one at
# 127.0.0.1:5432 (user postgres, trust auth); if none answers and we are root on Debian, install
# and start one. Otherwise the PostgreSQL tests skip with a visible message (never under CI=true).
set -uo pipefail

pg_up() { python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 5432))
except OSError:
    sys.exit(1)
PY
}

# nginx (Debian's package) for tests/e2e/test_nginx_front.py, which runs its own instance on
# free ports with the documented configuration (deploy/nginx/bastion.conf).
if ! [ -x /usr/sbin/nginx ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "ensure-services: installing nginx"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq nginx-light >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq nginx-light >/dev/null; } \
        || echo "ensure-services: WARNING: installing nginx failed" >&2
fi

if pg_up; then
    echo "ensure-services: PostgreSQL answers on 127.0.0.1:5432"
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "ensure-services: no PostgreSQL on 127.0.0.1:5432; installing and starting one"
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    fi
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    conf="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q "bastion-test" "$conf"; then
        sed -i '1i host all all 127.0.0.1/32 trust # bastion-test\nlocal all all trust # bastion-test' "$conf"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if pg_up; then
    echo "ensure-services: PostgreSQL started"
else
    echo "ensure-services: WARNING: no PostgreSQL reachable; the PostgreSQL tests will be skipped" >&2
    if [ "${CI:-}" = "true" ]; then
        echo "ensure-services: CI=true requires PostgreSQL" >&2
        exit 1
    fi
fi
