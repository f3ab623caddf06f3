#!/usr/bin/env bash
# An overlay network across two hosts: each "host" is a network namespace running its own
# uswitch, joined to the other by an underlay link (198.18.1.0/24). Network "app" spans
# both through VXLAN (VNI 100); a container on each host reaches the other, while a
# network that exists on one host only stays out of reach.
source "$(dirname "$0")/lib.sh"

H1="h1o$$"
H2="h2o$$"
SW1="ov1$$"
SW2="ov2$$"
PIDS=()

overlay_cleanup() {
    "$US" rm --name "$SW1" "a$$" >/dev/null 2>&1 || true
    "$US" rm --name "$SW2" "b$$" >/dev/null 2>&1 || true
    "$US" rm --name "$SW1" "c$$" >/dev/null 2>&1 || true
    for c in "a$$" "b$$" "c$$"; do
        ip netns del "$c" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    ip netns del "$H1" 2>/dev/null || true
    ip netns del "$H2" 2>/dev/null || true
    rm -rf "/var/lib/uswitch/$SW1" "/var/lib/uswitch/$SW2"
}
trap overlay_cleanup EXIT

# The underlay: two hosts and a link between them.
ip netns add "$H1"
ip netns add "$H2"
ip -n "$H1" link add name ul type veth peer name ul netns "$H2"
ip -n "$H1" addr add 198.18.1.1/24 dev ul
ip -n "$H2" addr add 198.18.1.2/24 dev ul
for h in "$H1" "$H2"; do
    ip -n "$h" link set lo up
    ip -n "$h" link set ul up
done

# One switch per host, each in its host's namespace (`ip netns exec` keeps the pid).
ip netns exec "$H1" "$US" --name "$SW1" --log-level warn \
    --vxlan app:vni=100,local=198.18.1.1,remote=198.18.1.2 &
PIDS+=($!)
wait_for_switch "$SW1"
ip netns exec "$H2" "$US" --name "$SW2" --log-level warn &
PIDS+=($!)
wait_for_switch "$SW2"
# The second host joins the overlay at runtime, the way `docker network create` would.
"$US" network create --name "$SW2" app --subnet 198.18.30.0/24 \
    --vni 100 --local 198.18.1.2 --remote 198.18.1.1
"$US" network create --name "$SW1" local-only --subnet 198.18.31.0/24

# The launcher finds each switch's TAPs in its host's namespace and moves them into the
# containers.
"$US" run --switch "$SW1" --name "a$$" --network app --ip 198.18.30.1/24 \
    --network local-only --ip 198.18.31.1/24
"$US" run --switch "$SW2" --name "b$$" --network app --ip 198.18.30.2/24
"$US" run --switch "$SW1" --name "c$$" --network local-only --ip 198.18.31.2/24

in_ns() { local c=$1; shift; ip netns exec "$c" "$@"; }
ping_ok() { in_ns "$1" ping -c 2 -i 0.2 -W 1 -q "$2" >/dev/null 2>&1; }
no_ping() { ! ping_ok "$@"; }

check "a (host 1) reaches b (host 2) over the overlay" ping_ok "a$$" 198.18.30.2
check "b (host 2) reaches a (host 1) over the overlay" ping_ok "b$$" 198.18.30.1
check "a reaches c on the local-only network" ping_ok "a$$" 198.18.31.2
check "b cannot reach the local-only network" no_ping "b$$" 198.18.31.2
check "the overlay's MTU is the underlay's minus 50" \
    test "$(in_ns "b$$" cat /sys/class/net/eth0/mtu)" = 1450
"$US" show vxlan --name "$SW1"
# TOPOLOGY=FILE.svg (or .dot, .json): draw host 1's switch while a pings b, so its edges
# carry rates (docs/topology-overlay.svg is such a drawing).
if [ -n "${TOPOLOGY:-}" ]; then
    in_ns "a$$" ping -c 30 -i 0.1 -q 198.18.30.2 >/dev/null 2>&1 &
    PING=$!
    sleep 0.5
    "$US" show topology --name "$SW1" --format "${TOPOLOGY##*.}" --rates-over 2 > "$TOPOLOGY"
    wait "$PING" || true
fi
echo PASS
