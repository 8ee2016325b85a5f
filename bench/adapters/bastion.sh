#!/usr/bin/env bash
# Adapter for the shared index-server harness (bench.py; see bench/README.md):
#   BENCH_ROOT=/tmp/anchors python3 .../bench.py wrk --server /work/main/bench/adapters/bastion.sh --workload w1
#
# bastion runs as `bastion serve --no-migrate --workers $BASTION_WORKERS` (gunicorn gthread,
# 4 threads per worker) on the embedded backend: SQLite + local files in $BENCH_STATE/data.
# `prepare W` migrates a fresh data directory, creates the user `bench` and an upload token
# ($BENCH_STATE/token), starts a temporary server on $BENCH_PORT and uploads every file of
# $BENCH_DATA/W through POST /legacy/ (bench/simple_page.py --upload-only); for w3 the index
# stays empty and the harness uploads with twine as __token__.
#
# Knobs: BASTION_VENV   a venv with bastion installed (default: the repo's .venv if it has
#                       bin/bastion, else $BENCH_ROOT/venv-bastion, created by `install`)
#        BASTION_WORKERS  gunicorn workers (default 2)
set -euo pipefail
: "${BENCH_ROOT:=/tmp/anchors}"
: "${BENCH_HOST:=127.0.0.1}"
: "${BASTION_WORKERS:=2}"
BENCH_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$BENCH_HERE/.." && pwd)"
if [ -z "${BASTION_VENV:-}" ]; then
    if [ -x "$REPO/.venv/bin/bastion" ]; then BASTION_VENV="$REPO/.venv"; else BASTION_VENV="$BENCH_ROOT/venv-bastion"; fi
fi
BASTION="$BASTION_VENV/bin/bastion"
PY="$BASTION_VENV/bin/python"
cmd="${1:?subcommand}"; shift || true

# Only BASTION_DATA_DIR and BASTION_BASE_URL configure the server; no bastion.toml is read
# because everything runs in $BENCH_STATE.
bastion_env() {
    local v
    for v in $(compgen -e | grep '^BASTION_' || true); do
        case "$v" in BASTION_VENV|BASTION_WORKERS) ;; *) unset "$v" ;; esac
    done
    export BASTION_DATA_DIR="$BENCH_STATE/data"
    export BASTION_BASE_URL="http://$BENCH_HOST:$BENCH_PORT"
}

wait_up() {
    local pid="$1"
    for _ in $(seq 1 360); do
        kill -0 "$pid" 2>/dev/null || { echo "bastion serve exited; see $BENCH_STATE/prepare-server.log" >&2; return 1; }
        if "$PY" -c "import urllib.request,sys;urllib.request.urlopen(sys.argv[1],timeout=2)" \
            "http://$BENCH_HOST:$BENCH_PORT/healthz" 2>/dev/null; then return 0; fi
        sleep 0.25
    done
    echo "bastion did not come up" >&2; return 1
}

stop_pid() {  # SIGTERM, then SIGKILL after 20 s; only the pid we started
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

case "$cmd" in
install)
    if [ ! -x "$BASTION" ]; then
        python3 -m venv "$BASTION_VENV"
        "$BASTION_VENV/bin/pip" install -q -U pip
        "$BASTION_VENV/bin/pip" install -q "$REPO" requests
    fi
    "$PY" -c 'import requests' 2>/dev/null || "$BASTION_VENV/bin/pip" install -q requests
    ;;
version)
    "$PY" -c 'import importlib.metadata as m;print(", ".join(f"{d} {m.version(d)}" for d in ("bastion-index","Django","gunicorn")))'
    ;;
describe)
    echo "bastion serve --no-migrate --workers $BASTION_WORKERS (gunicorn gthread, 4 threads/worker, keep-alive 5 s); SQLite (WAL) + local files; uploads via POST /legacy/ with an API token"
    ;;
prepare)
    w="${1:?workload}"
    cd "$BENCH_STATE"
    bastion_env
    rm -rf "$BENCH_STATE/data" "$BENCH_STATE/token"
    "$BASTION" migrate >"$BENCH_STATE/prepare.log" 2>&1
    "$BASTION" user create bench --email bench@example.invalid --no-limits >>"$BENCH_STATE/prepare.log" 2>&1
    token="$("$BASTION" token create bench --name bench-harness)"
    (umask 077; printf '%s\n' "$token" >"$BENCH_STATE/token")
    if [ "$w" != w3 ]; then
        "$BASTION" serve --no-migrate --host "$BENCH_HOST" --port "$BENCH_PORT" \
            --workers "$BASTION_WORKERS" >"$BENCH_STATE/prepare-server.log" 2>&1 </dev/null &
        spid=$!
        trap 'stop_pid $spid' EXIT
        wait_up "$spid"
        BENCH_UPLOAD_TOKEN="$token" "$PY" "$BENCH_HERE/simple_page.py" --upload-only "$BENCH_DATA/$w" \
            --index-url "http://$BENCH_HOST:$BENCH_PORT/" >>"$BENCH_STATE/prepare.log" 2>&1 \
            || { tail -20 "$BENCH_STATE/prepare.log" >&2; exit 1; }
        stop_pid "$spid"
        trap - EXIT
    fi
    ;;
command)
    printf '%q ' env "BASTION_DATA_DIR=$BENCH_STATE/data" "BASTION_BASE_URL=http://$BENCH_HOST:$BENCH_PORT" \
        "$BASTION" serve --no-migrate --host "$BENCH_HOST" --port "$BENCH_PORT" --workers "$BASTION_WORKERS"
    echo
    ;;
urls)
    echo "SIMPLE_URL=http://$BENCH_HOST:$BENCH_PORT/simple/"
    echo "UPLOAD_URL=http://$BENCH_HOST:$BENCH_PORT/legacy/"
    echo "UPLOAD_USER=__token__"
    echo "UPLOAD_PASS=$(cat "$BENCH_STATE/token" 2>/dev/null || true)"
    ;;
*) echo "unknown subcommand $cmd" >&2; exit 2 ;;
esac
