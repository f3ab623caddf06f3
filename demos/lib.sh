# Shared by the demo scripts: start a switch of our own, clean up on every exit path.
# Each script sources this, then uses $US (the binary), $SW (its instance name) and
# the helpers below. Everything lives in namespaces the script creates, on 198.18.0.0/15.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${USWITCH:-}" ]; then
    cargo build -q -p uswitch
    USWITCH=target/debug/uswitch
fi
US=$USWITCH
SW="demo$$"
CONTAINERS=()
SW_PID=

cleanup() {
    for c in "${CONTAINERS[@]}"; do
        "$US" rm --name "$SW" "$c" >/dev/null 2>&1 || ip netns del "$c" 2>/dev/null || true
    done
    if [ -n "$SW_PID" ]; then
        kill "$SW_PID" 2>/dev/null || true
        wait "$SW_PID" 2>/dev/null || true
    fi
    # The record of runtime changes (`--name` puts it in /var/lib/uswitch/NAME): this
    # run's own, so nothing of the demo outlives it.
    rm -rf "/var/lib/uswitch/$SW"
}
trap cleanup EXIT

start_switch() {
    "$US" --name "$SW" --log-level warn "$@" &
    SW_PID=$!
    wait_for_switch "$SW"
}

# wait_for_switch NAME: until the switch NAME answers on its control socket.
wait_for_switch() {
    for _ in $(seq 100); do
        "$US" network ls --name "$1" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "FAIL: switch $1 did not start"
    exit 1
}

# run NAME uswitch-run-args...
run() {
    local name=$1
    shift
    CONTAINERS+=("$name")
    "$US" run --switch "$SW" --name "$name" "$@"
}

reaches() { "$US" exec --name "$SW" "$1" -- ping -c 2 -i 0.2 -W 1 -q "$2" >/dev/null 2>&1; }

check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        exit 1
    fi
}

unreachable() { ! reaches "$@"; }
