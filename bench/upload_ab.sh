#!/usr/bin/env bash
# Two versions of bastion side by side on W3's 100 small files, the way the harness measures
# them: a fresh data directory and server for every upload run, versions alternating (ABBA...),
# each run timed as one `twine upload` of the 100 files. Prints the median of the per-pair
# ratios NEW/BASE: this VM's speed drifts by tens of percent within minutes, so only runs made
# seconds apart compare (20 pairs resolve about 4%).
#
#   git worktree add /tmp/bastion-base <commit>      # the version to compare against
#   bench/upload_ab.sh /tmp/bastion-base/src src 20  # BASE_SRC NEW_SRC [PAIRS]
#
# Each SRC is the `src` directory of a checkout, put first on PYTHONPATH for the repo's venv.
# Needs the harness's twine ($BENCH_ROOT/venv-tools) and W3 data ($BENCH_ROOT/data/w3/small),
# which a run of bench/peers.py (any subset with w3) creates. TUF signing rounds run as in
# the harness (1 s after the last upload: after the timed run).
set -euo pipefail
BASE_SRC="$(cd "${1:?BASE_SRC}" && pwd)"
NEW_SRC="$(cd "${2:?NEW_SRC}" && pwd)"
PAIRS="${3:-20}"
: "${BENCH_ROOT:=/tmp/anchors}"
: "${PORT:=29090}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASTION="$REPO/.venv/bin/bastion"
TWINE="$BENCH_ROOT/venv-tools/bin/twine"
FILES=("$BENCH_ROOT"/data/w3/small/*)
[ -x "$TWINE" ] && [ -e "${FILES[0]}" ] || { echo "run bench/peers.py --only w3 first" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

run() {  # SRC -> seconds for one twine upload of the 100 files into a fresh server
    local src="$1" state pid token t0 t1
    state="$(mktemp -d "$work/run.XXXX")"
    export BASTION_DATA_DIR="$state/data" BASTION_BASE_URL="http://127.0.0.1:$PORT"
    PYTHONPATH="$src" "$BASTION" migrate >/dev/null 2>&1
    PYTHONPATH="$src" "$BASTION" user create bench --email bench@example.invalid --no-limits >/dev/null 2>&1
    token="$(PYTHONPATH="$src" "$BASTION" token create bench --name ab)"
    PYTHONPATH="$src" "$BASTION" serve --no-migrate --host 127.0.0.1 --port "$PORT" --workers 2 \
        >"$state/serve.log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    t0="$(date +%s.%N)"
    TWINE_NON_INTERACTIVE=1 "$TWINE" upload --disable-progress-bar -u __token__ -p "$token" \
        --repository-url "http://127.0.0.1:$PORT/legacy/" "${FILES[@]}" >"$state/twine.log" 2>&1 \
        || { echo "upload failed: $(tail -3 "$state/twine.log")" >&2; kill "$pid"; exit 1; }
    t1="$(date +%s.%N)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$state"
    python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$t0" "$t1"
}

results="$work/pairs"
for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) = 1 ]; then b="$(run "$BASE_SRC")"; n="$(run "$NEW_SRC")"
    else n="$(run "$NEW_SRC")"; b="$(run "$BASE_SRC")"; fi
    echo "pair $i: base $b s, new $n s"
    echo "$b $n" >>"$results"
done
python3 - "$results" <<'EOF'
import statistics, sys
pairs = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
ratios = [new / base for base, new in pairs]
below = sum(r < 1 for r in ratios)
print(f"base median {statistics.median(b for b, _ in pairs):.3f} s, "
      f"new median {statistics.median(n for _, n in pairs):.3f} s")
print(f"new/base: median of per-pair ratios {statistics.median(ratios):.3f} "
      f"({below} of {len(ratios)} pairs below 1)")
EOF
