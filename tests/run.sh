#!/usr/bin/env bash
# The test command: installs the system packages the tests need when they are missing,
# then runs every test of the workspace. `.ci/run` calls it too.
#
#   sudo bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pair in ip:iproute2 tshark:tshark ping:iputils-ping ethtool:ethtool \
    dockerd:docker.io busybox:busybox-static nft:nftables iptables:iptables \
    podman:podman /usr/lib/cni/host-local:containernetworking-plugins \
    protoc:protobuf-compiler etcd:etcd-server etcdctl:etcd-client \
    promtool:prometheus dot:graphviz tmux:tmux; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
[ -e /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }
cargo test --workspace
# The data plane's end-to-end tests again with fixed worker counts (the default grows a
# worker per two ports, up to the CPUs): forwarding, isolation, the overlay, ports,
# offloads and the control socket behave the same with 1, 2 and 4 workers.
for workers in 1 2 4; do
    echo "== the data plane's tests with --workers $workers"
    USWITCH_WORKERS=$workers cargo test -p uswitch --test switch --test vxlan --test ports \
        --test offload --test control
done
