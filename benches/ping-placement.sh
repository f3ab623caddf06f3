#!/usr/bin/env bash
# Where ping time goes through a userspace switch: two namespaces joined by uswitch or
# vde_switch, the switch pinned to CPU 0 and the pinger pinned to CPU 0 (same CPU) or
# CPU 1 (across CPUs); ping 500 x 2 ms, average RTT in microseconds. On a mostly idle
# machine each ping wakes the switch and then the pinger; across CPUs each wake-up is an
# interrupt to an idle CPU.
#   sudo bash benches/ping-placement.sh            (ROUNDS=2 COUNT=500)
# Needs 2 CPUs, ping and vde_switch (installed from Debian's packages if missing).
# Everything runs in namespaces it creates, on 198.18.0.0/24; it leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2} COUNT=${COUNT:-500}
MISSING=()
command -v ping >/dev/null || MISSING+=(iputils-ping)
command -v vde_switch >/dev/null || MISSING+=(vde2)
if [ ${#MISSING[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${MISSING[@]}"
fi
cargo build --release -q -p uswitch
n=$$ NSA=uppa$$ NSB=uppb$$ TA=uppta$$ TB=upptb$$
WORK=$(mktemp -d /tmp/uswitch-pp.XXXXXX)
SW=
stop_switch() {
    if [ -n "$SW" ]; then kill "$SW" 2>/dev/null || true; while kill -0 "$SW" 2>/dev/null; do sleep 0.05; done; fi
    SW=
    for ns in $NSA $NSB; do ip netns del "$ns" 2>/dev/null || true; done
}
trap 'stop_switch; rm -rf "$WORK"' EXIT

# One measurement: switch $1 pinned to CPU $2, pinger to CPU $3.
measure() {
    local sw=$1 swcpu=$2 pingcpu=$3
    case $sw in
        uswitch)
            taskset -c "$swcpu" target/release/uswitch --port "$TA" --port "$TB" \
                --control "$WORK/us.sock" --log-level warn &
            SW=$! ;;
        vde)
            taskset -c "$swcpu" vde_switch -s "$WORK/vde" -t "$TA" -t "$TB" -d -p "$WORK/vde.pid"
            SW=$(cat "$WORK/vde.pid") ;;
    esac
    for _ in $(seq 100); do ip link show "$TB" >/dev/null 2>&1 && break; sleep 0.05; done
    sleep 0.2
    for x in "$NSA $TA 198.18.0.1/24" "$NSB $TB 198.18.0.2/24"; do
        set -- $x
        ip netns add "$1"; ip link set "$2" netns "$1"; ip -n "$1" link set lo up
        ip -n "$1" addr add "$3" dev "$2"; ip -n "$1" link set "$2" up
    done
    ip netns exec $NSA ping -q -c 3 -i 0.1 198.18.0.2 >/dev/null
    ip netns exec $NSA taskset -c "$pingcpu" ping -q -c "$COUNT" -i 0.002 198.18.0.2 | tail -1 |
        awk '{split($4, a, "/"); printf "%d", a[2] * 1000}'
    stop_switch
}

echo "ping avg (us), $COUNT pings 2 ms apart; the switch on CPU 0"
printf '%-8s %-6s %10s %10s\n' switch round same_cpu cross_cpu
for r in $(seq "$ROUNDS"); do
    for sw in uswitch vde; do
        same=$(measure $sw 0 0)
        cross=$(measure $sw 0 1)
        printf '%-8s %-6s %10s %10s\n' "$sw" "$r" "$same" "$cross"
    done
done
