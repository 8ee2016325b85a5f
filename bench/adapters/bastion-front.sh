#!/usr/bin/env bash
# Adapter for the shared index-server harness (bench.py; see bench/README.md): bastion behind
# the documented nginx front (deploy/nginx/bastion.conf), one node with 2 workers (FRONT_NODES=2:
# two nodes with 1 worker each on one data directory).
#   BENCH_ROOT=/tmp/anchors python3 .../bench.py wrk --server /work/main/bench/adapters/bastion-front.sh --workload w1
#
# install / prepare: bench/adapters/bastion.sh (same venv, same data directory layout in
#   $BENCH_STATE/data, same token). For w1/w2/w4, when bastion.sh has already prepared the
#   workload under this $BENCH_ROOT ($BENCH_ROOT/state/bastion/W/.prepared), its data directory
#   and token are copied instead of uploading everything again (the blob store hard-linked;
#   FRONT_REUSE_PREPARED=0: never).
#   w3 is always prepared fresh (empty index).
# command W: `bastion-front.sh _run W`, one foreground process tree that bench.py stops with
#   SIGTERM: this script (bash) starts the nodes, `bastion serve --no-migrate --workers N` on
#   free loopback ports (BASTION_DATA_DIR=$BENCH_STATE/data, BASTION_BASE_URL=
#   http://$BENCH_HOST:$BENCH_PORT, BASTION_PROXY_SSL_HEADER=X-Forwarded-Proto and
#   BASTION_FRONT_PAGES_DIR=$FRONT_PAGES_DIR as the file's header asks), waits for
#   each /healthz, then becomes nginx (exec), in the foreground on $BENCH_PORT with
#   deploy/nginx/bastion.conf rendered *now* (bench/render_front.py; the file is read fresh at
#   every start). The harness then measures the servers only, as for the peers (it measured
#   this script's bash too: 3 MiB). Each node is started with `setpriv --pdeathsig TERM`, so
#   it is stopped when nginx exits, however it exits (bench.py's SIGTERM included). Before the
#   exec, a SIGTERM/SIGINT or a node that exits stops the nodes started so far.
#
# Deviation from the documented front, for the benchmark only: the TLS server block is served
# as plain HTTP (`listen ... ssl;` -> `listen ...;`, ssl_* directives dropped; the port-80
# redirect block listens on a spare port nothing loads), because the reference (nginx serving
# a static copy) and every peer are measured over plain HTTP. The rendered files and the list
# of lines changed are in $BENCH_STATE/front/ (site.conf, nginx.conf, plain-http.diff).
#
# Fairness: 1 node x 2 gunicorn workers (4 threads each) = the 2 workers of "bastion alone"
# (bastion.sh, BASTION_WORKERS=2): one machine runs one node (several nodes are for several
# machines; FRONT_NODES=2 FRONT_NODE_WORKERS=1 shows two on one machine, with a second gunicorn
# master, ~27 MiB more). The process tree measured for CPU and RSS is nginx (master,
# FRONT_NGINX_WORKERS workers, cache manager/loader) and the gunicorn master(s) and workers.
#
# The pages tree: FRONT_PAGES_DIR, by default /tmp/bastion-front.<checksum of $BENCH_STATE>,
# two components deep as the sample file's header advises (nginx resolves a page's link one
# component at a time on every hit; $BENCH_STATE/front-pages, six deep, cost nginx 12-16%
# more CPU per W2 hit than nginx-static); $BENCH_STATE/front-pages is a symlink to it, for
# finding it.
#
# Knobs: FRONT_NODES (default 1), FRONT_NODE_WORKERS (default 2), FRONT_NGINX_WORKERS
#        (worker_processes, default auto as the nginx-static reference and Debian's nginx.conf),
#        NGINX_BIN (default nginx), FRONT_REUSE_PREPARED (default 1), BASTION_VENV (bastion.sh),
#        FRONT_PAGES_DIR (above).
set -euo pipefail
: "${BENCH_ROOT:=/tmp/anchors}"
: "${BENCH_HOST:=127.0.0.1}"
: "${FRONT_NODES:=1}"
: "${FRONT_NODE_WORKERS:=2}"
: "${FRONT_NGINX_WORKERS:=auto}"
: "${FRONT_REUSE_PREPARED:=1}"
: "${NGINX_BIN:=nginx}"
: "${FRONT_PAGES_DIR:=/tmp/bastion-front.$(printf '%s' "${BENCH_STATE:-}" | cksum | cut -d' ' -f1)}"
ADAPTERS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$ADAPTERS/$(basename "${BASH_SOURCE[0]}")"
BENCH_HERE="$(cd "$ADAPTERS/.." && pwd)"
REPO="$(cd "$BENCH_HERE/.." && pwd)"
SAMPLE="$REPO/deploy/nginx/bastion.conf"
ALONE="$ADAPTERS/bastion.sh"
if [ -z "${BASTION_VENV:-}" ]; then
    if [ -x "$REPO/.venv/bin/bastion" ]; then BASTION_VENV="$REPO/.venv"; else BASTION_VENV="$BENCH_ROOT/venv-bastion"; fi
fi
export BASTION_VENV
BASTION="$BASTION_VENV/bin/bastion"
PY="$BASTION_VENV/bin/python"
cmd="${1:?subcommand}"; shift || true

case "$cmd" in
install)
    bash "$ALONE" install
    command -v "$NGINX_BIN" >/dev/null || { apt-get update -q && apt-get install -y nginx; }
    ;;
version)
    echo "$(bash "$ALONE" version), $("$NGINX_BIN" -v 2>&1 | sed 's#nginx version: ##')"
    ;;
describe)
    echo "nginx ($FRONT_NGINX_WORKERS workers) with deploy/nginx/bastion.conf rendered as is except TLS -> plain HTTP, in front of $FRONT_NODES x bastion serve --no-migrate --workers $FRONT_NODE_WORKERS (gunicorn gthread, 4 threads/worker) on one data directory; SQLite (WAL) + local files"
    ;;
prepare)
    w="${1:?workload}"
    src="$BENCH_ROOT/state/bastion/$w"
    rm -rf "$BENCH_STATE/front-pages" "$FRONT_PAGES_DIR"   # pages of the data about to be replaced
    if [ "$w" != w3 ] && [ "$FRONT_REUSE_PREPARED" = 1 ] && [ -f "$src/.prepared" ] \
        && [ -d "$src/data" ] && [ -s "$src/token" ] && [ "$src" != "$BENCH_STATE" ]; then
        # bastion.sh's own result for this workload (its server is stopped: nothing writes).
        # The blob store (files/: content-addressed, written once) is hard-linked, the rest
        # (database, keys) copied.
        rm -rf "$BENCH_STATE/data" "$BENCH_STATE/token"
        mkdir -p "$BENCH_STATE/data"
        for item in "$src/data"/* "$src/data"/.[!.]*; do
            [ -e "$item" ] || continue
            if [ "$(basename "$item")" = files ]; then
                cp -al "$item" "$BENCH_STATE/data/" 2>/dev/null || cp -a "$item" "$BENCH_STATE/data/"
            else
                cp -a "$item" "$BENCH_STATE/data/"
            fi
        done
        cp -a "$src/token" "$BENCH_STATE/token"
        echo "copied the prepared data of $src" >"$BENCH_STATE/prepare.log"
    else
        bash "$ALONE" prepare "$w"
    fi
    ;;
command)
    w="${1:?workload}"
    printf '%q ' "$SELF" _run "$w"; echo
    ;;
urls)
    # Same URLs (and token) as bastion alone, on the front's port.
    bash "$ALONE" urls "$@"
    ;;
_run)
    w="${1:?workload}"
    front="$BENCH_STATE/front"
    rm -rf "$front"; mkdir -p "$front"
    # The pages tree outlives a restart, as a deployment's does (and as bastion alone's, in its
    # data directory): only the nodes write it, and prepare, which replaces the data, empties it.
    pages="$FRONT_PAGES_DIR"
    mkdir -p "$pages"
    ln -sfn "$pages" "$BENCH_STATE/front-pages"
    # free loopback ports for the nodes and the (unused) redirect block
    read -r -a ports <<<"$("$PY" - "$BENCH_HOST" "$((FRONT_NODES + 1))" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[2]))]
for s in socks:
    s.bind((sys.argv[1], 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"
    http_port="${ports[0]}"; nodes=("${ports[@]:1}")
    "$PY" "$BENCH_HERE/render_front.py" --sample "$SAMPLE" --out "$front" --host "$BENCH_HOST" \
        --port "$BENCH_PORT" --http-port "$http_port" --nodes "$(IFS=,; echo "${nodes[*]}")" \
        --pages-dir "$pages" --workers "$FRONT_NGINX_WORKERS" >/dev/null

    for v in $(compgen -e | grep '^BASTION_' || true); do
        case "$v" in BASTION_VENV) ;; *) unset "$v" ;; esac
    done
    export BASTION_DATA_DIR="$BENCH_STATE/data"
    export BASTION_BASE_URL="http://$BENCH_HOST:$BENCH_PORT"
    export BASTION_PROXY_SSL_HEADER=X-Forwarded-Proto
    export BASTION_FRONT_PAGES_DIR="$pages"

    pids=()
    stopping=0
    stop_all() {
        local p
        for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
        for _ in $(seq 1 60); do
            local alive=0
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
            [ "$alive" = 0 ] && break
            sleep 0.25
        done
        for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
    }
    trap 'stopping=1' TERM INT
    i=0
    for port in "${nodes[@]}"; do
        setpriv --pdeathsig TERM "$BASTION" serve --no-migrate --host "$BENCH_HOST" \
            --port "$port" --workers "$FRONT_NODE_WORKERS" >"$front/node$i.log" 2>&1 </dev/null &
        pids+=($!)
        i=$((i + 1))
    done
    # nginx only once every node answers: a node refused at start would be marked failed
    # (max_fails) and the other would take all the load for fail_timeout.
    for port in "${nodes[@]}"; do
        up=0
        for _ in $(seq 1 480); do
            [ "$stopping" = 1 ] && break
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a node exited; see $front/node*.log" >&2; stop_all; exit 1; }; done
            if "$PY" -c "import urllib.request,sys;urllib.request.urlopen(sys.argv[1],timeout=2)" \
                "http://$BENCH_HOST:$port/healthz" 2>/dev/null; then up=1; break; fi
            sleep 0.25
        done
        if [ "$up" != 1 ]; then
            [ "$stopping" = 1 ] || echo "node on port $port did not come up" >&2
            stop_all; exit 1
        fi
    done
    if [ "$stopping" = 1 ]; then stop_all; exit 0; fi
    trap - TERM INT
    exec "$NGINX_BIN" -p "$front" -c "$front/nginx.conf" >"$front/nginx.log" 2>&1 </dev/null
    ;;
*) echo "unknown subcommand $cmd" >&2; exit 2 ;;
esac
