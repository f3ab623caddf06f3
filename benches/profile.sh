#!/usr/bin/env bash
# Where uswitch's time goes: two namespaces joined by uswitch, an iperf3 run between
# them, `perf record -g` on uswitch for 4 s in the middle of it, then the top symbols.
#
#   sudo bash benches/profile.sh                         # TCP, 1 stream
#   sudo IPERF_ARGS="-u -l 64 -b 0" bash benches/profile.sh   # UDP, 64-byte datagrams
#
# Needs perf and iperf3 (installed from Debian's packages if missing). Everything runs in
# namespaces it creates, on 198.18.0.0/24, and is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ID=$$
A=upfa$ID B=upfb$ID TA=upfta$ID TB=upftb$ID
WORK=$(mktemp -d /tmp/uswitch-profile.XXXXXX)
SW=
cleanup() {
    [ -f "$WORK/iperf.pid" ] && kill "$(cat "$WORK/iperf.pid")" 2>/dev/null || true
    [ -n "$SW" ] && { kill "$SW" 2>/dev/null || true; wait "$SW" 2>/dev/null || true; }
    ip netns del $A 2>/dev/null || true
    ip netns del $B 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
command -v perf >/dev/null && command -v iperf3 >/dev/null || {
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf iperf3
}
cargo build --release -q -p uswitch
target/release/uswitch --port $TA --port $TB --control "$WORK/us.sock" --log-level warn &
SW=$!
for _ in $(seq 100); do ip link show $TB >/dev/null 2>&1 && break; sleep 0.05; done
for x in "$A $TA 198.18.0.1/24" "$B $TB 198.18.0.2/24"; do
    set -- $x
    ip netns add $1; ip link set $2 netns $1; ip -n $1 link set lo up
    ip -n $1 addr add $3 dev $2; ip -n $1 link set $2 up
done
ip netns exec $A ping -c 2 -q 198.18.0.2 >/dev/null
ip netns exec $B iperf3 -s -D -1 -B 198.18.0.2 --pidfile "$WORK/iperf.pid"; sleep 0.3
# shellcheck disable=SC2086
ip netns exec $A iperf3 -c 198.18.0.2 -t 8 ${IPERF_ARGS:-} > "$WORK/iperf.txt" &
IPERF=$!
sleep 2
perf record -g -p "$SW" -o "$WORK/perf.data" -- sleep 4 >/dev/null 2>&1
wait $IPERF
grep -E "sender|receiver" "$WORK/iperf.txt"
perf report -i "$WORK/perf.data" --no-children --sort symbol 2>/dev/null \
    | grep -E "^ +[0-9.]+%" | head -20
