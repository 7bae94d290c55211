#!/usr/bin/env bash
# Where a read's allocations are made: the gateway (built with
# `--features unaudited-benchmark`) under DHAT while `load` runs its
# no-audit scenario, then the allocations per read grouped by the first
# samverka function on their stack. By hand, not in CI; needs valgrind
# and a release build of `load`.
#
#   bench/scripts/allocations.sh target/unaudited/release/samverka [ROWS]
#
# DHAT writes its profile when the gateway exits: it is asked for its read
# count once `load` is done, then stopped with SIGTERM. The counts include
# start-up, spread over the reads (a few per read).
set -euo pipefail
bin=$(realpath "$1")
rows=${2:-40}
concurrency=16
duration=10
. "$(dirname "$0")/valgrind-load.sh"
start_under_valgrind "$bin" --tool=dhat "--dhat-out-file=$work/dhat.json"
wait "$load" || true
reads=$(reads)
stop_gateway
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
