#!/usr/bin/env bash
# Instructions, allocations and memcpy per GetRecords of a gateway built
# without audit writes, counted by callgrind: steadier than CPU time on a
# shared machine, for changes worth a few percent. By hand, not in CI;
# needs valgrind and a release build of `load`.
#
#   bench/scripts/instructions.sh target/unaudited/release/samverka [CONCURRENCY]
#
# `load` starts the gateway under callgrind (through a wrapper it is given
# as `--unaudited-samverka`); the counters are zeroed after the warm-up and
# dumped 10 s later, and the reads answered in between are the difference
# of the gateway's own samverka_requests_total. Under valgrind threads
# take turns, so the count leaves out the kernel and waiting.
set -euo pipefail
bin=$(realpath "$1")
concurrency=${2:-16}
duration=20
. "$(dirname "$0")/valgrind-load.sh"
start_under_valgrind "$bin" --tool=callgrind "--callgrind-out-file=$work/out"
sleep 8
before=$(reads)
callgrind_control -z "$pid" > /dev/null 2>&1
sleep 10
callgrind_control -d "$pid" > /dev/null 2>&1
after=$(reads)
wait "$load" || true
stop_gateway
dump=$(ls "$work"/out.* | head -1)
python3 - "$dump" $((after - before)) <<'PY'
import collections, re, sys
names, calls, own = {}, collections.Counter(), collections.Counter()
fn = cfn = None
def name(v):
    m = re.match(r"\((\d+)\)(?: (.*))?", v)
    if not m:
        return v
    if m.group(2):
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), v)
after_calls = False
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("fn="):
        fn = name(line[3:])
    elif line.startswith("cfn="):
        cfn = name(line[4:])
    elif line.startswith(("fl=", "fi=", "fe=", "ob=", "cob=", "cfi=", "cfl=")):
        name(line.split("=", 1)[1])
    elif line.startswith("calls="):
        calls[cfn] += int(line[6:].split()[0])
        after_calls = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        parts = line.split()
        if len(parts) > 1 and not after_calls:
            own[fn] += int(parts[1])
        after_calls = False
n = int(sys.argv[2])
if n <= 0:
    sys.exit("no reads were answered while counting")
print(f"reads counted:                {n}")
print(f"instructions per read:        {sum(own.values()) / n:,.0f}")
print(f"allocations per read:         {calls['__rustc::__rust_alloc'] / n:.1f}")
memcpy = sum(v for f, v in own.items() if f.startswith("__memcpy"))
print(f"memcpy instructions per read: {memcpy / n:,.0f}")
PY
