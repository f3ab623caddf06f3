#!/usr/bin/env bash
# End-to-end cost curves: what a real uswitch costs as its ports per network and its VXLAN
# remotes grow. At each point: ping 200 x 2 ms (avg), iperf3 TCP 1 stream and UDP 64 B
# between two containers, uswitch's resident memory, and its CPU per Gbit/s of the TCP run.
#
#   sudo bash benches/cost-e2e.sh                          # ports 2..1024, remotes 1..256
#   sudo PORTS="2 64" REMOTES="1 16" DUR=3 bash benches/cost-e2e.sh
#
# Ports: uswitch runs in a namespace of its own ("the host") with N TAPs on one network;
# two are moved into container namespaces (198.18.0.1 and .2), the other N-2 stay up in the
# host namespace, idle, and get every flood (IPv6 is off there: a thousand interfaces
# coming up at once would otherwise announce themselves in a storm of multicast that
# uswitch floods to all of them, a thousand writes each).
# Remotes: two hosts joined by a veth underlay
# (198.18.1.0/24); host A's uswitch has R remotes on VNI 42, host B's address and R-1 more
# addresses that host B also holds (no uswitch listens there: what is flooded to them is
# refused by B's kernel, as a remote that is down would); one container on each host.
# Everything runs in namespaces it creates and is removed on exit. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
PORTS=${PORTS-"2 16 64 256 1024"}
REMOTES=${REMOTES-"1 16 64 256"}
DUR=${DUR:-5}
ID=$$
H=uch$ID HB=uci$ID A=uca$ID B=ucb$ID
WORK=$(mktemp -d /tmp/uswitch-cost.XXXXXX)
PIDS=()
need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ping >/dev/null || need+=(iputils-ping)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
cargo build --release -q -p uswitch
USWITCH=$PWD/target/release/uswitch

teardown() {
    [ -f "$WORK/iperf.pid" ] && kill "$(cat "$WORK/iperf.pid")" 2>/dev/null; rm -f "$WORK/iperf.pid"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
    PIDS=()
    for ns in $A $B $H $HB; do ip netns del "$ns" 2>/dev/null || true; done
}
trap 'teardown; rm -rf "$WORK"' EXIT

# Waits for interface $2 in namespace $1.
wait_link() { for _ in $(seq 400); do ip -n "$1" link show "$2" >/dev/null 2>&1 && return; sleep 0.05; done; echo "no $2 in $1" >&2; return 1; }
container() { # namespace, host namespace, TAP, address
    ip netns add "$1"; ip -n "$1" link set lo up
    ip -n "$2" link set "$3" netns "$1"
    ip -n "$1" addr add "$4" dev "$3"; ip -n "$1" link set "$3" up
}
# Nanoseconds every thread of process $1 has run so far.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Measures between the containers; $1 is the uswitch to weigh. Prints the table's columns.
measure() {
    local sw=$1 ping tcp t0 t1 udp rss
    # Cores per Gbit/s is the switch's CPU over the TCP run divided by its rate.
    ip netns exec $A ping -c 3 -i 0.2 -W 2 -q 198.18.0.2 >/dev/null
    ping=$(ip netns exec $A ping -c 200 -i 0.002 198.18.0.2 | sed -n 's/.*time=\([0-9.]*\) ms/\1/p' \
        | awk '{s+=$1} END {printf "%.0f", s/NR*1000}')
    ip netns exec $B iperf3 -s -D -1 -B 198.18.0.2 --pidfile "$WORK/iperf.pid" >/dev/null; sleep 0.3
    t0=$(cpu_ns "$sw")
    tcp=$(ip netns exec $A iperf3 -c 198.18.0.2 -t "$DUR" -J | json "d['end']['sum_received']['bits_per_second']/1e9")
    t1=$(cpu_ns "$sw")
    local cpu
    cpu=$(python3 -c "print('%.3f' % ((($t1 - $t0) / 1e9 / $DUR) / $tcp))")
    ip netns exec $B iperf3 -s -D -1 -B 198.18.0.2 --pidfile "$WORK/iperf.pid" >/dev/null; sleep 0.3
    udp=$(ip netns exec $A iperf3 -c 198.18.0.2 -u -l 64 -b 0 -t "$DUR" -J | \
        json "(d['end']['sum']['packets']-d['end']['sum']['lost_packets'])/d['end']['sum']['seconds']/1000")
    rss=$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$sw/status")
    t0=$(cpu_ns "$sw")
    ip netns exec $A ping -b -c 200 -i 0.005 -W 0.01 -q 198.18.0.255 >"$WORK/broadcast.log" 2>&1 || true
    t1=$(cpu_ns "$sw")
    local flood
    flood=$(python3 -c "print('%.0f' % (($t1 - $t0) / 200 / 1e3))")
    printf "%s | %.2f | %.0f | %s | %s | %s |\n" "$ping" "$tcp" "$udp" "$rss" "$cpu" "$flood"
}

ports_point() {
    local n=$1 args=() i
    ip netns add $H; ip -n $H link set lo up
    ip netns exec $H sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    for i in $(seq 0 $((n - 1))); do args+=(--port "t$i"); done
    ip netns exec $H "$USWITCH" "${args[@]}" --control "$WORK/h.sock" --log-level warn &
    PIDS+=($!)
    wait_link $H "t$((n - 1))"
    container $A $H t0 198.18.0.1/24
    container $B $H t1 198.18.0.2/24
    for i in $(seq 2 $((n - 1))); do echo "link set t$i up"; done > "$WORK/up.batch"
    [ "$n" -gt 2 ] && ip -n $H -batch "$WORK/up.batch"
    sleep 0.3
    echo "| ports | $n | $(measure "${PIDS[0]}")"
}

remotes_point() {
    local r=$1 remotes i
    ip netns add $H; ip netns add $HB
    ip -n $H link add name ul type veth peer name ul netns $HB
    ip -n $H addr add 198.18.1.1/24 dev ul
    # Remote 0 is host B's uswitch; the others are addresses B holds on 198.18.2.0/23.
    remotes=",remote=198.18.1.2"
    for i in $(seq 1 $((r - 1))); do
        echo "addr add 198.18.2.$i/23 dev ul"
        remotes+=",remote=198.18.2.$i"
    done > "$WORK/addr.batch"
    echo "addr add 198.18.1.2/24 dev ul" >> "$WORK/addr.batch"
    ip -n $HB -batch "$WORK/addr.batch"
    for h in $H $HB; do ip -n $h link set lo up; ip -n $h link set ul up; done
    ip -n $H route add 198.18.2.0/23 dev ul
    ip netns exec $H "$USWITCH" --port ta --control "$WORK/a.sock" --log-level warn \
        --vxlan "default:vni=42,local=198.18.1.1$remotes" &
    PIDS+=($!)
    ip netns exec $HB "$USWITCH" --port tb --control "$WORK/b.sock" --log-level warn \
        --vxlan "default:vni=42,local=198.18.1.2,remote=198.18.1.1" &
    PIDS+=($!)
    wait_link $H ta; wait_link $HB tb
    container $A $H ta 198.18.0.1/24
    container $B $HB tb 198.18.0.2/24
    sleep 0.3
    echo "| remotes | $r | $(measure "${PIDS[0]}")"
}

echo "| grows | at | ping avg (us) | TCP 1 stream (Gbit/s) | UDP 64 B (kpps) | uswitch RSS (MiB) | uswitch cores per Gbit/s | uswitch CPU per broadcast (us) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for n in $PORTS; do
    teardown
    ports_point "$n" || echo "| ports | $n | failed | | | | | |"
    teardown
done
for r in $REMOTES; do
    teardown
    remotes_point "$r" || echo "| remotes | $r | failed | | | | | |"
    teardown
done
