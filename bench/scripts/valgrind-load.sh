# Sourced by instructions.sh and allocations.sh: `load`'s no-audit
# scenario (one round, no fan-out, adapters that answer at once) with the
# gateway under a valgrind tool, for $duration s at $concurrency in
# flight. Sets $root (the repository) and $work (a scratch directory,
# removed on exit, when a gateway still running is stopped too).
#
#   start_under_valgrind BIN TOOL_ARGS...  starts it; sets $load and $pid
#   reads                                  GetRecords answered so far, by
#                                          the gateway's own counter
#   stop_gateway                           SIGTERM, and waits for the exit
#                                          (when a tool writes its profile)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
pid=
trap 'stop_gateway; rm -rf "$work"' EXIT

start_under_valgrind() {
    local bin=$1
    shift
    # valgrind in the background of the wrapper `load` starts and kills,
    # so that the gateway outlives it and is stopped with SIGTERM instead.
    cat > "$work/gateway.sh" <<WRAP
#!/usr/bin/env bash
valgrind --log-file=$work/valgrind.log $* "$bin" "\$@" &
wait
WRAP
    chmod +x "$work/gateway.sh"
    "$root/target/release/load" --unaudited-samverka "$work/gateway.sh" --only no-audit \
        --concurrency "$concurrency" --rounds 1 --duration "$duration" --warmup 2 \
        --no-fan-out --register-latency-ms 0 > "$work/load.log" 2>&1 &
    load=$!
    pid=
    for _ in $(seq 60); do
        pid=$(pgrep -f -- "--log-file=$work/valgrind.log" | head -1 || true)
        [ -n "$pid" ] && break
        sleep 0.5
    done
    [ -n "$pid" ] || { echo "the gateway did not start under valgrind" >&2; exit 1; }
}

reads() {
    for port in $(ss -ltnp | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://'); do
        curl -s -m 5 "http://127.0.0.1:$port/metrics" || true
    done | awk '/^samverka_requests_total\{method="RecordExchange\/GetRecords"/ {s += $NF} END {print s + 0}'
}

stop_gateway() {
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 120); do
        kill -0 "$pid" 2> /dev/null || return 0
        sleep 0.5
    done
}
