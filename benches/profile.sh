#!/usr/bin/env bash
# Where uswitch's time goes: two namespaces joined by uswitch, an iperf3 run between
# them, `perf record -g` on uswitch for 4 s in the middle of it, then the top symbols.
#
#   sudo bash benches/profile.sh                         # TCP, 1 stream
#   sudo IPERF_ARGS="-u -l 64 -b 0" bash benches/profile.sh   # UDP, 64-byte datagrams
#   sudo VXLAN=1 bash benches/profile.sh                 # across a VXLAN overlay
#   sudo KEEP=/tmp/prof bash benches/profile.sh          # keep perf*.data for perf report
#
# With VXLAN=1 there are two "hosts" (namespaces joined by a veth underlay on
# 198.18.1.0/24), each running uswitch with --vxlan and one container namespace, as
# benches/e2e.sh's vxlan-uswitch row; both switches are profiled, the sender's first.
# Needs perf and iperf3 (installed from Debian's packages if missing). Everything runs in
# namespaces it creates, on 198.18.0.0/24, and is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ID=$$
A=upfa$ID B=upfb$ID TA=upfta$ID TB=upftb$ID HA=upfh$ID HB=upfi$ID
WORK=$(mktemp -d /tmp/uswitch-profile.XXXXXX)
SWS=()
cleanup() {
    [ -f "$WORK/iperf.pid" ] && kill "$(cat "$WORK/iperf.pid")" 2>/dev/null || true
    for p in "${SWS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    for ns in $A $B $HA $HB; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
command -v perf >/dev/null && command -v iperf3 >/dev/null || {
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf iperf3
}
cargo build --release -q -p uswitch
wait_link() { for _ in $(seq 100); do ip $1 link show "$2" >/dev/null 2>&1 && return; sleep 0.05; done; }
container() { # namespace, TAP (in namespace $4 or the root), address
    ip netns add "$1"; ip ${4:+-n "$4"} link set "$2" netns "$1"; ip -n "$1" link set lo up
    ip -n "$1" addr add "$3" dev "$2"; ip -n "$1" link set "$2" up
}
if [ -n "${VXLAN:-}" ]; then
    ip netns add $HA; ip netns add $HB
    ip -n $HA link add name ul type veth peer name ul netns $HB
    ip -n $HA addr add 198.18.1.1/24 dev ul; ip -n $HB addr add 198.18.1.2/24 dev ul
    for h in $HA $HB; do ip -n $h link set lo up; ip -n $h link set ul up; done
    for x in "$HA $TA $A 198.18.1.1 198.18.1.2 198.18.0.1/24" "$HB $TB $B 198.18.1.2 198.18.1.1 198.18.0.2/24"; do
        set -- $x
        ip netns exec "$1" target/release/uswitch --port "$2" --control "$WORK/$2.sock" \
            --log-level warn --vxlan "default:vni=42,local=$4,remote=$5" &
        SWS+=($!)
        wait_link "-n $1" "$2"
        container "$3" "$2" "$6" "$1"
    done
else
    target/release/uswitch --port $TA --port $TB --control "$WORK/us.sock" --log-level warn &
    SWS+=($!)
    wait_link "" $TB
    container $A $TA 198.18.0.1/24
    container $B $TB 198.18.0.2/24
fi
ip netns exec $A ping -c 2 -q 198.18.0.2 >/dev/null
ip netns exec $B iperf3 -s -D -1 -B 198.18.0.2 --pidfile "$WORK/iperf.pid"; sleep 0.3
# shellcheck disable=SC2086
ip netns exec $A iperf3 -c 198.18.0.2 -t 8 ${IPERF_ARGS:-} > "$WORK/iperf.txt" &
IPERF=$!
sleep 2
# CPU time of a process so far, in clock ticks (user + system).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
n=0 PERFS=() T0=()
for p in "${SWS[@]}"; do
    T0+=("$(ticks "$p")")
    perf record -g -p "$p" -o "$WORK/perf$n.data" -- sleep 4 >/dev/null 2>&1 &
    PERFS+=($!)
    n=$((n + 1))
done
wait "${PERFS[@]}"
for i in $(seq 0 $((n - 1))); do
    echo "switch $((i + 1)): $(( ($(ticks "${SWS[$i]}") - T0[i]) * 100 / $(getconf CLK_TCK) / 4 ))% of a core while recorded"
done
wait $IPERF
# Frames and bytes per port: how large the frames the switches moved were.
for s in "$WORK"/*.sock; do
    echo "--- $(basename "$s" .sock)"; target/release/uswitch show ports --control "$s" || true
done
[ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$WORK"/perf*.data "$KEEP/"
sleep 0.5
grep -E "sender|receiver" "$WORK/iperf.txt"
for i in $(seq 0 $((n - 1))); do
    [ "$n" -gt 1 ] && echo "--- switch $((i + 1)) of $n ($([ $i = 0 ] && echo sender || echo receiver))"
    perf report -i "$WORK/perf$i.data" --no-children --sort symbol 2>/dev/null \
        | grep -E "^ +[0-9.]+%" | awk -v n="${TOP:-20}" 'NR <= n'
done
