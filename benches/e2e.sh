#!/usr/bin/env bash
# End-to-end comparison: two network namespaces joined by the switch under test, the same
# tests for each, run in alternation (A B C D ... A B C D ...) so that the machine's noise
# hits every switch alike; then medians and uswitch's ratio to each peer.
#
#   sudo bash benches/e2e.sh                 # 3 rounds, 10 s iperf3 runs
#   sudo ROUNDS=5 DUR=5 bash benches/e2e.sh
#   sudo SWITCHES="uswitch bridge" bash benches/e2e.sh
#   sudo BUSY_POLL=200 SWITCHES="uswitch uswitch-busy" bash benches/e2e.sh   # another window
#   sudo PROFILE=1 SWITCHES="uswitch ovs-tso" bash benches/e2e.sh   # perf on each switch too
#   sudo USWITCH_BEFORE=/path/to/old/uswitch SWITCHES="uswitch uswitch-before vxlan-uswitch vxlan-before" \
#       bash benches/e2e.sh                 # this build against another, side by side
#
# Switches: uswitch (TAPs with offloads; two ports make one worker by default),
# uswitch-w2 (--workers 2: each TAP read by a worker of its own), uswitch-busy
# (--busy-poll 50000), bridge (the
# kernel bridge over veth: the limit), vde (vde_switch over TAPs), ovs and ovs-tso (Open
# vSwitch's userspace datapath over TAPs, without and with userspace-tso-enable).
# Docker rows: docker-bridge (two containers of a private Docker daemon on a network of
# Docker's bridge driver) and docker-uswitch (the same two containers on a network of
# uswitch's Docker driver); the daemon has no docker0, no iptables, no proxy, and runs an
# image imported from busybox; iperf3 and ping run in the containers' namespaces.
# VXLAN rows: vxlan-uswitch (two hosts, each a namespace running uswitch with --vxlan,
# one container each; vxlan-w2: --workers 2, the TAP and the endpoint on two workers) and vxlan-kernel (the same with the kernel's vxlan and a bridge on
# each host), over a veth underlay on 198.18.1.0/24; the containers' MTU is 1450.
# Tests: ping 200 x 2 ms (avg, p99); iperf3 TCP 1 stream and 4 streams; iperf3 UDP
# 64-byte datagrams at full speed (packets/s received, loss).
# With PROFILE=1, each switch's processes (uswitch, or ovs-vswitchd) are recorded by
# `perf record -g` for 4 s in the middle of every TCP 1-stream run and their CPU time
# counted; at the end, the share of a core each used per Gbit/s and its top symbols over
# all rounds, switch beside switch.
# Installs what is missing from Debian's packages; leaves nothing behind. Everything runs
# in namespaces it creates, on 198.18.0.0/24.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
SWITCHES=${SWITCHES:-"uswitch uswitch-busy bridge vde ovs ovs-tso vxlan-uswitch vxlan-kernel"}
ID=$$
NSA=ue2a$ID NSB=ue2b$ID NSBR=ue2r$ID HA=ue2h$ID HB=ue2i$ID
TA=ueta$ID TB=uetb$ID
WORK=$(mktemp -d /tmp/uswitch-e2e.XXXXXX)
RESULTS=$WORK/results
PIDS=()
# OVS's userspace datapath makes an "ovs-netdev" device; remove it after us unless it was
# there before (someone else's OVS).
OVS_NETDEV_WAS_THERE=$(ip link show ovs-netdev >/dev/null 2>&1 && echo yes || echo no)

need() { command -v "$1" >/dev/null 2>&1 || MISSING+=("$2"); }
MISSING=()
need iperf3 iperf3; need ping iputils-ping; need python3 python3
need vde_switch vde2; need ovs-vswitchd openvswitch-switch
need dockerd docker.io; need busybox busybox-static
[ -n "${PROFILE:-}" ] && need perf linux-perf
if [ ${#MISSING[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${MISSING[@]}"
fi
cargo build --release -q -p uswitch
USWITCH=target/release/uswitch

DOCKERD_DIR=$WORK/docker DOCKERD_PID=
dk() { /usr/bin/docker -H "unix://$DOCKERD_DIR/docker.sock" "$@"; }

start_dockerd() {
    [ -n "$DOCKERD_PID" ] && return 0
    mkdir -p "$DOCKERD_DIR/rootfs/bin"
    cp /bin/busybox "$DOCKERD_DIR/rootfs/bin/"; ln -sf busybox "$DOCKERD_DIR/rootfs/bin/sleep"
    dockerd --data-root "$DOCKERD_DIR/data" --exec-root "$DOCKERD_DIR/exec" \
        -H "unix://$DOCKERD_DIR/docker.sock" --pidfile "$DOCKERD_DIR/docker.pid" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --userland-proxy=false \
        --default-address-pool base=198.19.128.0/17,size=24 >"$DOCKERD_DIR/log" 2>&1 &
    DOCKERD_PID=$!
    until dk version >/dev/null 2>&1; do sleep 0.2; done
    tar -C "$DOCKERD_DIR/rootfs" -c . | dk import - ue2e-bb:1 >/dev/null
}

stop_dockerd() {
    [ -n "$DOCKERD_PID" ] || return 0
    kill "$DOCKERD_PID" 2>/dev/null; wait "$DOCKERD_PID" 2>/dev/null || true
    DOCKERD_PID=
}

# Two containers, $NSA at 198.18.0.1 and $NSB at .2, on a network of driver $1; their
# namespaces named like them, so the tests below run in them unchanged.
setup_docker() {
    start_dockerd
    local opts=()
    [ "$1" = bridge ] && opts=(-o "com.docker.network.bridge.name=ue2k$ID")
    dk network create -d "$1" --subnet 198.18.0.0/24 --gateway 198.18.0.254 "${opts[@]}" ue2e$ID >/dev/null
    local x
    for x in "$NSA 198.18.0.1" "$NSB 198.18.0.2"; do
        set -- $x
        dk run -d --name "$1" --network ue2e$ID --ip "$2" --ulimit nofile=1024:1024 \
            --ulimit nproc=4096:4096 ue2e-bb:1 sleep 1d >/dev/null
        mkdir -p /run/netns
        ln -sf "/proc/$(dk inspect -f '{{.State.Pid}}' "$1")/ns/net" "/run/netns/$1"
    done
}

setup_docker_uswitch() {
    $USWITCH --docker-plugin ue2e$ID --control "$WORK/dk.sock" --log-level warn &
    PIDS+=($!)
    $USWITCH wait --control "$WORK/dk.sock" >/dev/null
    setup_docker ue2e$ID
}

teardown() {
    [ -f "$WORK/iperf.pid" ] && kill "$(cat "$WORK/iperf.pid")" 2>/dev/null; rm -f "$WORK/iperf.pid"
    if [ -n "$DOCKERD_PID" ]; then
        dk rm -f $NSA $NSB >/dev/null 2>&1 || true
        dk network rm ue2e$ID >/dev/null 2>&1 || true
        rm -f /run/netns/$NSA /run/netns/$NSB
    fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
    PIDS=()
    for ns in $NSA $NSB $NSBR $HA $HB; do ip netns del "$ns" 2>/dev/null || true; done
    if [ -d "$WORK/ovs" ]; then
        ovs-vsctl --db="unix:$WORK/ovs/db.sock" --timeout=5 del-br ube$ID 2>/dev/null || true
        for f in "$WORK"/ovs/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
        sleep 0.3
        rm -rf "$WORK/ovs"
    fi
    # The userspace datapath's devices, should OVS have died before removing them.
    ip link del ube$ID 2>/dev/null || true
    [ "$OVS_NETDEV_WAS_THERE" = yes ] || ip link del ovs-netdev 2>/dev/null || true
    ip link del "$TA" 2>/dev/null || true
    ip link del "$TB" 2>/dev/null || true
}
# uswitch's Docker driver turns IPv4 forwarding on for its NAT (as Docker does): put
# back what was found.
IP_FORWARD_WAS=$(cat /proc/sys/net/ipv4/ip_forward)
trap 'teardown; stop_dockerd; echo "$IP_FORWARD_WAS" > /proc/sys/net/ipv4/ip_forward; rm -rf "$WORK"' EXIT

wait_link() { for _ in $(seq 100); do ip link show "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "no $1" >&2; return 1; }

# Moves interface $2 into namespace $1 with address $3.
host() {
    ip netns add "$1" 2>/dev/null || true
    ip link set "$2" netns "$1"
    ip -n "$1" link set lo up
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" link set "$2" up
}

setup_uswitch() {
    ${BIN:-$USWITCH} --port "$TA" --port "$TB" --control "$WORK/us.sock" --log-level warn "$@" &
    PIDS+=($!)
    wait_link "$TB"; sleep 0.2
    host $NSA "$TA" 198.18.0.1/24; host $NSB "$TB" 198.18.0.2/24
}

setup_bridge() {
    ip netns add $NSBR
    ip -n $NSBR link add br0 type bridge
    ip -n $NSBR link set br0 up
    ip -n $NSBR link add va type veth peer name "$TA"
    ip -n $NSBR link add vb type veth peer name "$TB"
    for v in va vb; do ip -n $NSBR link set $v master br0; ip -n $NSBR link set $v up; done
    ip netns add $NSA; ip netns add $NSB
    ip -n $NSBR link set "$TA" netns $NSA; ip -n $NSBR link set "$TB" netns $NSB
    for x in "$NSA $TA 198.18.0.1/24" "$NSB $TB 198.18.0.2/24"; do
        set -- $x
        ip -n "$1" link set lo up; ip -n "$1" addr add "$3" dev "$2"; ip -n "$1" link set "$2" up
    done
    sleep 1   # the bridge's forwarding delay is 0 for new ports, but let links settle
}

setup_vde() {
    vde_switch -s "$WORK/vde" -t "$TA" -t "$TB" -d -p "$WORK/vde.pid"
    wait_link "$TB"
    PIDS+=("$(cat "$WORK/vde.pid")")
    host $NSA "$TA" 198.18.0.1/24; host $NSB "$TB" 198.18.0.2/24
}

setup_ovs() {
    local tso=$1 d="$WORK/ovs"
    mkdir -p "$d"
    export OVS_RUNDIR=$d OVS_LOGDIR=$d OVS_DBDIR=$d
    ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" --pidfile="$d/ovsdb.pid" \
        --unixctl="$d/ovsdb.ctl" --detach --log-file="$d/ovsdb.log" 2>>"$d/stderr.log"
    local vs="ovs-vsctl --db=unix:$d/db.sock"
    $vs --no-wait init
    $vs --no-wait set Open_vSwitch . other_config:userspace-tso-enable="$tso"
    ovs-vswitchd "unix:$d/db.sock" --pidfile="$d/vswitchd.pid" --unixctl="$d/vswitchd.ctl" \
        --detach --log-file="$d/vswitchd.log" 2>>"$d/stderr.log"
    $vs add-br ube$ID -- set bridge ube$ID datapath_type=netdev
    $vs add-port ube$ID "$TA" -- set Interface "$TA" type=tap
    $vs add-port ube$ID "$TB" -- set Interface "$TB" type=tap
    wait_link "$TB"; sleep 0.5
    host $NSA "$TA" 198.18.0.1/24; host $NSB "$TB" 198.18.0.2/24
}

# Two hosts joined by a veth underlay: $HA (198.18.1.1) and $HB (198.18.1.2).
underlay() {
    ip netns add $HA; ip netns add $HB
    ip -n $HA link add name ul type veth peer name ul netns $HB
    ip -n $HA addr add 198.18.1.1/24 dev ul; ip -n $HB addr add 198.18.1.2/24 dev ul
    for h in $HA $HB; do ip -n $h link set lo up; ip -n $h link set ul up; done
}

setup_vxlan_uswitch() {
    local extra=("$@")
    underlay
    local h tap ns local remote
    for x in "$HA $TA $NSA 198.18.1.1 198.18.1.2 198.18.0.1/24" "$HB $TB $NSB 198.18.1.2 198.18.1.1 198.18.0.2/24"; do
        set -- $x
        ip netns exec "$1" ${BIN:-$USWITCH} --port "$2" --control "$WORK/$2.sock" --log-level warn \
            --vxlan "default:vni=42,local=$4,remote=$5" "${extra[@]}" &
        PIDS+=($!)
        for _ in $(seq 100); do ip -n "$1" link show "$2" >/dev/null 2>&1 && break; sleep 0.05; done
        ip netns add "$3"; ip -n "$3" link set lo up
        ip -n "$1" link set "$2" netns "$3"
        ip -n "$3" addr add "$6" dev "$2"; ip -n "$3" link set "$2" up
    done
}

setup_vxlan_kernel() {
    underlay
    for x in "$HA $NSA 198.18.1.1 198.18.1.2 198.18.0.1/24" "$HB $NSB 198.18.1.2 198.18.1.1 198.18.0.2/24"; do
        set -- $x
        ip -n "$1" link add name vx0 type vxlan id 42 dstport 4789 local "$3" remote "$4" dev ul
        ip -n "$1" link add name br0 type bridge
        ip -n "$1" link set vx0 master br0; ip -n "$1" link set vx0 up; ip -n "$1" link set br0 up
        ip netns add "$2"; ip -n "$2" link set lo up
        ip -n "$1" link add name cv type veth peer name eth0 netns "$2"
        ip -n "$1" link set cv master br0; ip -n "$1" link set cv mtu 1450 up
        ip -n "$2" addr add "$5" dev eth0; ip -n "$2" link set eth0 mtu 1450 up
    done
    sleep 1
}

setup() {
    case $1 in
        vxlan-uswitch) setup_vxlan_uswitch ;;
        vxlan-kernel) setup_vxlan_kernel ;;
        docker-bridge) setup_docker bridge ;;
        docker-uswitch) setup_docker_uswitch ;;
        uswitch) setup_uswitch ;;
        uswitch-before) BIN=${USWITCH_BEFORE:?set USWITCH_BEFORE to the other uswitch binary} setup_uswitch ;;
        vxlan-before) BIN=${USWITCH_BEFORE:?set USWITCH_BEFORE to the other uswitch binary} setup_vxlan_uswitch ;;
        uswitch-busy) setup_uswitch --busy-poll "${BUSY_POLL:-50000}" ;;
        uswitch-w2) setup_uswitch --workers 2 ;;
        vxlan-w2) setup_vxlan_uswitch --workers 2 ;;
        bridge) setup_bridge ;;
        vde) setup_vde ;;
        ovs) setup_ovs false ;;
        ovs-tso) setup_ovs true ;;
        *) echo "unknown switch $1" >&2; exit 2 ;;
    esac
    # Resolve ARP and make sure the path works before measuring.
    ip netns exec $NSA ping -c 3 -i 0.2 -W 2 -q 198.18.0.2 >/dev/null
}

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The processes of the switch under test.
switch_pids() {
    if [ -f "$WORK/ovs/vswitchd.pid" ]; then cat "$WORK/ovs/vswitchd.pid"; else echo "${PIDS[@]}"; fi
}
# Nanoseconds every thread of the processes $@ has run so far.
cpu_ns() { for p in "$@"; do cat /proc/"$p"/task/*/schedstat; done | awk '{s += $1} END {printf "%.0f", s}'; }

# Records the switch's processes for 4 s from 1 s into the TCP run (PROFILE=1).
profile_switch() {
    local sw=$1 pids t0
    pids=$(switch_pids)
    [ -n "$pids" ] || return 0
    sleep 1
    t0=$(cpu_ns $pids)
    perf record -g -p "$(echo $pids | tr ' ' ,)" -o "$WORK/perf.$sw.$round" -- sleep 4 >/dev/null 2>&1
    echo $(( $(cpu_ns $pids) - t0 )) > "$WORK/cpu.$sw.$round"
}

measure() {
    local sw=$1 out
    out=$(ip netns exec $NSA ping -c 200 -i 0.002 198.18.0.2 | sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | sort -n)
    echo "$sw ping_avg_us $(echo "$out" | awk '{s+=$1} END {printf "%.0f", s/NR*1000}')" >>"$RESULTS"
    echo "$sw ping_p99_us $(echo "$out" | awk '{a[NR]=$1} END {printf "%.0f", a[int(NR*0.99)]*1000}')" >>"$RESULTS"
    ip netns exec $NSB iperf3 -s -D -1 -B 198.18.0.2 --pidfile "$WORK/iperf.pid" >/dev/null; sleep 0.3
    [ -n "${PROFILE:-}" ] && profile_switch "$sw" &
    local prof=$! tcp1
    tcp1=$(ip netns exec $NSA iperf3 -c 198.18.0.2 -t "$DUR" -J | json "round(d['end']['sum_received']['bits_per_second']/1e9, 2)")
    echo "$sw tcp1_gbps $tcp1" >>"$RESULTS"
    if [ -n "${PROFILE:-}" ]; then
        wait $prof || true
        echo "$sw cores_per_gbps $(python3 -c "print(round($(cat "$WORK/cpu.$sw.$round") / 4e9 / $tcp1, 4))")" >>"$RESULTS"
    fi
    ip netns exec $NSB iperf3 -s -D -1 -B 198.18.0.2 --pidfile "$WORK/iperf.pid" >/dev/null; sleep 0.3
    echo "$sw tcp4_gbps $(ip netns exec $NSA iperf3 -c 198.18.0.2 -t "$DUR" -P 4 -J | json "round(d['end']['sum_received']['bits_per_second']/1e9, 2)")" >>"$RESULTS"
    ip netns exec $NSB iperf3 -s -D -1 -B 198.18.0.2 --pidfile "$WORK/iperf.pid" >/dev/null; sleep 0.3
    local udp
    udp=$(ip netns exec $NSA iperf3 -c 198.18.0.2 -u -l 64 -b 0 -t "$DUR" -J | \
        json "'%d %.1f' % ((d['end']['sum']['packets']-d['end']['sum']['lost_packets'])/d['end']['sum']['seconds'], d['end']['sum']['lost_percent'])")
    echo "$sw udp64_kpps $(echo "$udp" | awk '{printf "%.0f", $1/1000}')" >>"$RESULTS"
    echo "$sw udp64_loss_pct $(echo "$udp" | awk '{print $2}')" >>"$RESULTS"
}

for round in $(seq "$ROUNDS"); do
    for sw in $SWITCHES; do
        echo "round $round/$ROUNDS: $sw" >&2
        teardown
        if setup "$sw" && measure "$sw"; then :; else echo "  $sw failed in round $round" >&2; fi
        teardown
    done
done

if [ -n "${PROFILE:-}" ]; then
    for sw in $SWITCHES; do
        ls "$WORK"/perf.$sw.* >/dev/null 2>&1 || continue
        echo "--- $sw: top symbols over every round's TCP 1-stream run"
        for f in "$WORK"/perf.$sw.*; do perf report -i "$f" --no-children --sort symbol 2>/dev/null; done \
            | awk -v n="${TOP:-15}" '/^ +[0-9.]+%/ && c++ < n'
    done
fi

python3 - "$RESULTS" "$SWITCHES" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    sw, metric, value = line.split()
    try:
        rows[(sw, metric)].append(float(value))
    except ValueError:
        pass
switches = sys.argv[2].split()
metrics = ["ping_avg_us", "ping_p99_us", "tcp1_gbps", "tcp4_gbps", "udp64_kpps", "udp64_loss_pct"]
if any(m == "cores_per_gbps" for (_, m) in rows):
    metrics.append("cores_per_gbps")
med = {k: statistics.median(v) for k, v in rows.items()}
print("medians of %d rounds" % max((len(v) for v in rows.values()), default=0))
print("%-14s" % "switch" + "".join("%16s" % m for m in metrics))
for sw in switches:
    print("%-14s" % sw + "".join("%16s" % (("%.2f" % med[(sw, m)]) if (sw, m) in med else "-") for m in metrics))
print()
print("uswitch / peer (higher is better for gbps and kpps; lower for ping)")
for peer in switches:
    if peer == "uswitch" or peer.startswith("vxlan-") or peer.startswith("docker-"):
        continue
    cells = []
    for m in metrics[:5]:
        a, b = med.get(("uswitch", m)), med.get((peer, m))
        cells.append("%s=%.2fx" % (m, a / b) if a and b else "%s=-" % m)
    print("  vs %-12s %s" % (peer, "  ".join(cells)))
for a_sw, b_sw in [("docker-uswitch", "docker-bridge"), ("vxlan-uswitch", "vxlan-before"),
                   ("vxlan-uswitch", "vxlan-kernel")]:
    if a_sw in switches and b_sw in switches:
        cells = []
        for m in metrics[:5]:
            a, b = med.get((a_sw, m)), med.get((b_sw, m))
            cells.append("%s=%.2fx" % (m, a / b) if a and b else "%s=-" % m)
        print("%s / %s: %s" % (a_sw, b_sw, "  ".join(cells)))
PY
