#!/usr/bin/env bash
# Records pcaps/real-namespaces.pcap: two real Linux network stacks, each in its own
# namespace, talking through uswitch; tcpdump listens on host A's interface.
# Traffic: ARP + ICMP (ping), IPv6 neighbour discovery + ICMPv6 (ping -6), a TCP
# connection with 1 MB of bulk data and a UDP flow (iperf3).
# Needs root, tcpdump, iperf3 and iputils-ping:  sudo bash pcaps/record.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p uswitch

n=$$
A=urecA$n B=urecB$n TA=urA$n TB=urB$n
OUT=${OUT:-pcaps/real-namespaces.pcap}
SW= DUMP=
cleanup() {
    [ -n "$DUMP" ] && kill -INT "$DUMP" 2>/dev/null && wait "$DUMP" 2>/dev/null
    [ -n "$SW" ] && kill "$SW" 2>/dev/null && wait "$SW" 2>/dev/null
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT

# Offloads off: the capture should hold MTU-sized frames, as on a wire.
target/release/uswitch --port "$TA,offload=off" --port "$TB,offload=off" --control "/tmp/urec$n.sock" --log-level warn &
SW=$!
for _ in $(seq 50); do ip link show "$TB" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.2

i=1
for pair in "$A $TA" "$B $TB"; do
    set -- $pair
    ip netns add "$1"
    ip link set "$2" netns "$1"
    ip -n "$1" link set lo up
    ip -n "$1" link set "$2" address "02:00:00:00:00:0$i"
    ip -n "$1" addr add "198.18.0.$i/24" dev "$2"
    ip -n "$1" addr add "2001:2::$i/64" dev "$2"
    ip -n "$1" link set "$2" up
    i=$((i + 1))
done

ip netns exec "$A" tcpdump -q -i "$TA" -s 0 -U -Z root -w "$OUT" &
DUMP=$!
sleep 1
sleep 2  # IPv6 duplicate address detection, captured too
ip netns exec "$A" ping -q -c 3 -i 0.2 198.18.0.2
ip netns exec "$A" ping -q -6 -c 3 -i 0.2 2001:2::2
ip netns exec "$B" iperf3 -s -1 -D -B 198.18.0.2
sleep 0.5
ip netns exec "$A" iperf3 -c 198.18.0.2 -n 1M >/dev/null
sleep 0.5
ip netns exec "$B" iperf3 -s -1 -D -B 198.18.0.2
sleep 0.5
ip netns exec "$A" iperf3 -c 198.18.0.2 -u -b 1M -t 1 -l 200 >/dev/null
sleep 1
kill -INT "$DUMP"; wait "$DUMP" || true; DUMP=
ls -l "$OUT"
