#!/usr/bin/env bash
# MAC flood against a TCP stream: one namespace floods from 100 000 source MACs as fast as
# it can while two others run iperf3 through uswitch. Reports the stream's rate without
# and with the flood, the table size against its limit, and uswitch's peak RSS.
#   sudo bash benches/macflood.sh            (MACS=100000 DUR=10 FDB_MAX=8192)
#   sudo SWITCH=bridge bash benches/macflood.sh   # the same against the kernel bridge,
#                                                 # to see what the machine allows
#   sudo FLOOD_INTO=dummy bash benches/macflood.sh  # the flooder sends into a veth pair
#       # of its own namespace instead of its port: what its CPU alone costs the stream,
#       # with no switch handling the flood
set -euo pipefail
cd "$(dirname "$0")/.."
MACS=${MACS:-100000} DUR=${DUR:-10} FDB_MAX=${FDB_MAX:-8192}
command -v iperf3 >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3; }
cargo build --release -q -p uswitch -p uswitch-benches
SWITCH=${SWITCH:-uswitch}
n=$$ A=umfa$n B=umfb$n F=umff$n R=umfr$n TA=umta$n TB=umtb$n TF=umtf$n SOCK=/tmp/umf$n.sock SW=
cleanup() {
    [ -n "$SW" ] && kill "$SW" 2>/dev/null && wait "$SW" 2>/dev/null
    for ns in $A $B $F $R; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
if [ "$SWITCH" = bridge ]; then
    ip netns add $R; ip -n $R link add name br0 type bridge; ip -n $R link set br0 up
fi
if [ "$SWITCH" = uswitch ]; then
    target/release/uswitch --port "$TA" --port "$TB" --port "$TF" --fdb-max "$FDB_MAX" ${EXTRA:-} \
        --control "$SOCK" --log-level warn &
    SW=$!
    for _ in $(seq 100); do ip link show "$TF" >/dev/null 2>&1 && break; sleep 0.05; done
fi
i=1
for pair in "$A $TA" "$B $TB" "$F $TF"; do
    set -- $pair
    ip netns add "$1"
    if [ "$SWITCH" = bridge ]; then
        ip -n $R link add name "v$i" type veth peer name "$2" netns "$1"
        ip -n $R link set "v$i" master br0; ip -n $R link set "v$i" up
    else
        ip link set "$2" netns "$1"
    fi
    ip -n "$1" link set lo up
    ip -n "$1" addr add "198.18.0.$i/24" dev "$2"; ip -n "$1" link set "$2" up
    i=$((i + 1))
done
ip netns exec $A ping -c 2 -q 198.18.0.2 >/dev/null
FLOOD_DEV=$TF
if [ "${FLOOD_INTO:-port}" = dummy ]; then
    ip -n $F link add name fd0 type veth peer name fd1
    ip -n $F link set fd0 up; ip -n $F link set fd1 up; FLOOD_DEV=fd0
fi
tcp() {
    ip netns exec $B iperf3 -s -D -1 -B 198.18.0.2 >/dev/null; sleep 0.3
    ip netns exec $A iperf3 -c 198.18.0.2 -t "$DUR" -J | python3 -c \
        "import json,sys; print(round(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9, 2))"
}
base=$(tcp)
ip netns exec $F target/release/flood "$FLOOD_DEV" "$MACS" $((DUR + 2)) > /tmp/umf$n.flood &
FL=$!
sleep 1
flooded=$(tcp)
wait $FL
if [ "$SWITCH" = bridge ]; then
    learned=$(bridge -netns $R fdb show br br0 | wc -l)
    echo "MAC flood against the kernel bridge ($MACS MACs; $(cat /tmp/umf$n.flood)): TCP ${base} Gbit/s alone, ${flooded} Gbit/s under the flood ($(python3 -c "print(round(100*$flooded/$base))") %); bridge fdb $learned entries"
    rm -f /tmp/umf$n.flood
    exit 0
fi
entries=$(target/release/uswitch show stats --control "$SOCK" --json | python3 -c \
    "import json,sys; d=json.load(sys.stdin); print(sum(n['fdb_entries'] for n in d['networks']), sum(n['fdb_evictions'] for n in d['networks']))")
rss=$(awk '/VmHWM/ {print $2}' /proc/$SW/status)
echo "MAC flood ($MACS MACs; $(cat /tmp/umf$n.flood)): TCP ${base} Gbit/s alone, ${flooded} Gbit/s under the flood ($(python3 -c "print(round(100*$flooded/$base))") %)"
echo "table: $(echo "$entries" | cut -d' ' -f1) entries (limit $FDB_MAX), $(echo "$entries" | cut -d' ' -f2) evictions; uswitch peak RSS $((rss / 1024)) MiB"
rm -f /tmp/umf$n.flood
