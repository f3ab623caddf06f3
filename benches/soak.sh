#!/usr/bin/env bash
# Soak: DURATION seconds (default 600) of mixed traffic through one uswitch: a TCP stream,
# a UDP stream, pings, a MAC flood burst every 30 s, and a port added and removed every
# 5 s. Prints uswitch's RSS and open fds at the start and the end. Not part of CI.
#   sudo bash benches/soak.sh             sudo DURATION=60 bash benches/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
command -v iperf3 >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3; }
cargo build --release -q -p uswitch -p uswitch-benches
n=$$ A=usoa$n B=usob$n F=usof$n TA=usta$n TB=ustb$n TF=ustf$n SOCK=/tmp/usoak$n.sock SW=
BG=()
cleanup() {
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
    for f in /tmp/usoak$n.s1.pid /tmp/usoak$n.s2.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"
    done
    [ -n "$SW" ] && kill "$SW" 2>/dev/null && wait "$SW" 2>/dev/null
    for ns in $A $B $F; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
target/release/uswitch --port "$TA" --port "$TB" --port "$TF" --control "$SOCK" --log-level warn &
SW=$!
for _ in $(seq 100); do ip link show "$TF" >/dev/null 2>&1 && break; sleep 0.05; done
i=1
for pair in "$A $TA" "$B $TB" "$F $TF"; do
    set -- $pair
    ip netns add "$1"; ip link set "$2" netns "$1"; ip -n "$1" link set lo up
    ip -n "$1" addr add "198.18.0.$i/24" dev "$2"; ip -n "$1" link set "$2" up
    i=$((i + 1))
done
sample() { echo "$1: RSS $(awk '/VmRSS/ {print $2}' /proc/$SW/status) KiB, peak $(awk '/VmHWM/ {print $2}' /proc/$SW/status) KiB, $(ls /proc/$SW/fd | wc -l) fds"; }
ip netns exec $A ping -c 2 -q 198.18.0.2 >/dev/null
sample start
ip netns exec $B iperf3 -s -D -B 198.18.0.2 -p 5201 --pidfile /tmp/usoak$n.s1.pid >/dev/null
ip netns exec $B iperf3 -s -D -B 198.18.0.2 -p 5202 --pidfile /tmp/usoak$n.s2.pid >/dev/null
sleep 0.3
ip netns exec $A iperf3 -c 198.18.0.2 -p 5201 -t "$DURATION" >/dev/null 2>&1 & BG+=($!)
ip netns exec $A iperf3 -c 198.18.0.2 -p 5202 -u -b 50M -t "$DURATION" >/dev/null 2>&1 & BG+=($!)
ip netns exec $B ping -q -i 0.1 -w "$DURATION" 198.18.0.1 > /tmp/usoak$n.ping & BG+=($!)
end=$((SECONDS + DURATION))
t=0
while [ $SECONDS -lt $end ]; do
    if [ $((t % 30)) -eq 0 ]; then
        ip netns exec $F target/release/flood "$TF" 10000 5 >/dev/null &
    fi
    target/release/uswitch port add "usc$n" --control "$SOCK" >/dev/null
    sleep 2.5
    target/release/uswitch port del "usc$n" --control "$SOCK" >/dev/null
    sleep 2.5
    t=$((t + 5))
done
sleep 1
sample end
tail -2 /tmp/usoak$n.ping
target/release/uswitch show stats --control "$SOCK"
rm -f /tmp/usoak$n.ping
