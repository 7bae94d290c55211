#!/usr/bin/env bash
# Where a read's allocations are made: the gateway (built with
# `--features unaudited-benchmark`) under DHAT while `load` runs its
# no-audit scenario, then the allocations per read grouped by the first
# samverka function on their stack. By hand, not in CI; needs valgrind
# and a release build of `load`.
#
#   bench/scripts/allocations.sh target/unaudited/release/samverka [ROWS]
#
# DHAT writes its profile when the gateway exits, so the gateway runs
# in the background of a wrapper that `load` may kill, is asked for its
# read count once `load` is done, and is then stopped with SIGTERM. The
# counts include start-up, spread over the reads (a few per read).
set -euo pipefail
bin=$(realpath "$1")
rows=${2:-40}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/gateway.sh" <<WRAP
#!/usr/bin/env bash
valgrind --tool=dhat --log-file=$work/valgrind.log --dhat-out-file=$work/dhat.json "$bin" "\$@" &
wait
WRAP
chmod +x "$work/gateway.sh"
"$root/target/release/load" --unaudited-samverka "$work/gateway.sh" --only no-audit \
    --concurrency 16 --rounds 1 --duration 10 --warmup 2 --no-fan-out \
    --register-latency-ms 0 > "$work/load.log" 2>&1 &
load=$!
pid=
for _ in $(seq 60); do
    pid=$(pgrep -f "dhat-out-file=$work/dhat.json" | head -1 || true)
    [ -n "$pid" ] && break
    sleep 0.5
done
[ -n "$pid" ] || { echo "the gateway did not start under DHAT" >&2; exit 1; }
wait "$load" || true
reads=$(for port in $(ss -ltnp | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://'); do
    curl -s -m 5 "http://127.0.0.1:$port/metrics" || true
done | awk '/^samverka_requests_total\{method="RecordExchange\/GetRecords"/ {s += $NF} END {print s + 0}')
kill -TERM "$pid"
for _ in $(seq 120); do kill -0 "$pid" 2> /dev/null || break; sleep 0.5; done
python3 - "$work/dhat.json" "$reads" "$rows" <<'PY'
import collections, json, re, sys
profile, reads, rows = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
if reads <= 0:
    sys.exit("no reads were answered")
names = [re.sub(r"^0x[0-9A-F]+: (.*?) \(.*$", r"\1", f) for f in profile["ftbl"]]
ours = re.compile(r"^<?samverka")
by = collections.Counter()
for pp in profile["pps"]:
    stack = [names[i] for i in pp["fs"][1:]]
    by[next((f for f in stack if ours.match(f)), "(outside samverka's code)")] += pp["tbk"]
print(f"reads counted:               {reads}")
print(f"allocations per read:        {sum(by.values()) / reads:.1f} (reallocations and SQLite's included)")
for name, n in by.most_common(rows):
    print(f"{n / reads:8.2f}  {name[:150]}")
PY
