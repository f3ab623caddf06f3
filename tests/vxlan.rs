//! End to end: VXLAN overlays between "hosts" that are network namespaces joined by an
//! underlay (a kernel bridge in a namespace of its own, on 198.18.1.0/24 or the IPv6
//! benchmarking prefix 2001:2::/48), with containers (namespaces on 198.18.0.0/24) on
//! each host. One host may run the Linux kernel's own vxlan driver instead of uswitch,
//! to prove the two interoperate.

mod common;

use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::Value;

impl Underlay {
    /// `--vxlan NETWORK:vni=VNI,local=host i,remote=every other host`.
    fn vxlan_arg(&self, network: &str, vni: u32, i: usize) -> String {
        self.vxlan_arg_among(network, vni, i, self.addrs.len())
    }

    /// The same, with only the first `n` hosts as remotes.
    fn vxlan_arg_among(&self, network: &str, vni: u32, i: usize, n: usize) -> String {
        let mut s = format!("{network}:vni={vni},local={}", self.addrs[i]);
        for (j, a) in self.addrs[..n].iter().enumerate() {
            if j != i {
                s.push_str(&format!(",remote={a}"));
            }
        }
        s
    }

    /// uswitch on each of the first `n` hosts, network `default` on VNI 42 towards the
    /// others, and one container each behind a TAP: MAC 02:00:00:00:`mac`:0i and
    /// 198.18.0.i/24 for host i - 1. Returns the switches, the containers and the TAPs.
    fn uswitch_hosts(&self, n: usize, mac: u8) -> (Vec<Uswitch>, Vec<Netns>, Vec<String>) {
        let (mut switches, mut containers, mut taps) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let tap = unique("uvx");
            let vx = self.vxlan_arg_among("default", 42, i, n);
            switches.push(Uswitch::start_in(
                &self.hosts[i],
                &["--port", &tap, "--vxlan", &vx],
            ));
            let mac = format!("02:00:00:00:{mac:02x}:{:02x}", i + 1);
            let cidr = format!("198.18.0.{}/24", i + 1);
            containers.push(container_on(&self.hosts[i], &tap, &mac, &cidr));
            taps.push(tap);
        }
        (switches, containers, taps)
    }
}

/// A container on a uswitch host: a namespace holding the TAP `tap` the switch made.
fn container_on(host: &Netns, tap: &str, mac: &str, cidr: &str) -> Netns {
    let c = Netns::new();
    disable_ipv6(&c);
    c.adopt_from(host, tap, mac, cidr);
    c
}

/// The host runs the kernel's vxlan (`vx0`, VNI `vni`, UDP 4789, towards `remote`) and
/// a kernel bridge; returns a container on it, attached through a veth pair.
fn kernel_host(host: &Netns, local: &str, remote: &str, vni: u32, mac: &str, cidr: &str) -> Netns {
    let n = &host.name;
    let id = vni.to_string();
    sh(&[
        "ip", "-n", n, "link", "add", "name", "vx0", "type", "vxlan", "id", &id, "dstport", "4789",
        "local", local, "remote", remote, "dev", "ul",
    ]);
    sh(&[
        "ip", "-n", n, "link", "add", "name", "br0", "type", "bridge",
    ]);
    sh(&["ip", "-n", n, "link", "set", "vx0", "master", "br0"]);
    sh(&["ip", "-n", n, "link", "set", "vx0", "up"]);
    sh(&["ip", "-n", n, "link", "set", "br0", "up"]);
    let mtu = sh(&["ip", "-n", n, "-j", "link", "show", "vx0"]);
    let mtu: Value = serde_json::from_str(&mtu).expect("ip -j");
    let mtu = mtu[0]["mtu"].as_u64().expect("mtu").to_string();
    let c = Netns::new();
    disable_ipv6(&c);
    sh(&[
        "ip", "-n", n, "link", "add", "name", "cv", "type", "veth", "peer", "name", "eth0",
        "netns", &c.name,
    ]);
    sh(&["ip", "-n", n, "link", "set", "cv", "master", "br0"]);
    sh(&["ip", "-n", n, "link", "set", "cv", "mtu", &mtu, "up"]);
    sh(&["ip", "-n", &c.name, "link", "set", "eth0", "address", mac]);
    sh(&["ip", "-n", &c.name, "link", "set", "eth0", "mtu", &mtu]);
    sh(&["ip", "-n", &c.name, "addr", "add", cidr, "dev", "eth0"]);
    sh(&["ip", "-n", &c.name, "link", "set", "eth0", "up"]);
    c
}

/// The MAC that `ns`'s neighbour table holds for `addr`, if resolved.
fn neighbour(ns: &Netns, addr: &str) -> Option<String> {
    let out = sh(&["ip", "-n", &ns.name, "-j", "neigh", "show", addr]);
    let v: Value = serde_json::from_str(&out).ok()?;
    v.as_array()?
        .iter()
        .find_map(|e| e["lladdr"].as_str().map(str::to_string))
}

/// Datagrams the switch's (first) VXLAN endpoint has received.
fn datagrams_in(sw: &Uswitch) -> u64 {
    sw.json(&["show", "vxlan"])[0]["counters"]["rx_frames"]
        .as_u64()
        .expect("an endpoint's datagram count")
}

/// The peer of `remote` in a `show vxlan --json` answer.
fn peer<'a>(vxlan: &'a Value, remote: &str) -> &'a Value {
    vxlan
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ep| ep["segments"].as_array().into_iter().flatten())
        .flat_map(|s| s["peers"].as_array().into_iter().flatten())
        .find(|p| p["remote"] == remote)
        .unwrap_or_else(|| panic!("no peer {remote} in {vxlan}"))
}

/// Runs a ping binary in `ns`: `count` echoes of `size` bytes with the do-not-fragment
/// bit; whether all came back.
fn ping_df(ns: &Netns, addr: &str, size: usize) -> bool {
    ns.exec_ok(&[
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        &size.to_string(),
        addr,
    ])
}

/// Whether the tool `bin` (from Debian's package `package`) is installed; a test without
/// it says loudly that it skipped, or fails under USWITCH_REQUIRE_PRIV=1.
fn need_tool(test: &str, bin: &str, package: &str) -> bool {
    if std::process::Command::new(bin)
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    if std::env::var("USWITCH_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("{test}: needs {bin} (apt-get install {package})");
    }
    eprintln!("!!!!! SKIPPED {test}: no {bin} (apt-get install {package})");
    false
}

/// uswitch on host A (two containers) and the kernel's vxlan on host B (one container
/// behind a kernel bridge): ARP resolves across both ways and TCP streams, verified byte
/// for byte, cross in both directions, with offloads on the TAPs.
fn interop_with_the_kernel(v6: bool) {
    let ul = Underlay::new(2, v6);
    let (ta, tb) = (unique("uvx"), unique("uvx"));
    let vx = ul.vxlan_arg("default", 42, 0);
    let sw = Uswitch::start_in(
        &ul.hosts[0],
        &["--port", &ta, "--port", &tb, "--vxlan", &vx],
    );
    let c1 = container_on(&ul.hosts[0], &ta, "02:00:00:00:0a:01", "198.18.0.1/24");
    let c2 = container_on(&ul.hosts[0], &tb, "02:00:00:00:0a:02", "198.18.0.2/24");
    let c3 = kernel_host(
        &ul.hosts[1],
        &ul.addrs[1],
        &ul.addrs[0],
        42,
        "02:00:00:00:0b:01",
        "198.18.0.3/24",
    );
    let want_mtu = if v6 { 1430 } else { 1450 };
    let ports = sw.json(&["show", "ports"]);
    assert_eq!(
        port(&ports, &ta)["mtu"],
        want_mtu,
        "TAP MTU: underlay minus overhead"
    );
    // The kernel side's capture on its underlay shows what uswitch sends.
    let cap = Capture::start(&ul.hosts[1], "ul");
    // Flooding uswitch -> kernel (ARP request from c1), then kernel -> uswitch (c3 asks).
    assert!(c1.ping("198.18.0.3"), "c1 -> c3 across the overlay");
    assert_eq!(
        neighbour(&c1, "198.18.0.3").as_deref(),
        Some("02:00:00:00:0b:01")
    );
    assert!(c3.ping("198.18.0.2"), "c3 -> c2 across the overlay");
    assert_eq!(
        neighbour(&c3, "198.18.0.2").as_deref(),
        Some("02:00:00:00:0a:02")
    );
    tcp_exchange(&c1, &c3, "198.18.0.3", 5001, 8 << 20);
    tcp_exchange(&c3, &c2, "198.18.0.2", 5002, 8 << 20);
    let seen = cap.finish();
    // What uswitch put on the wire: UDP to 4789 from ports in the ephemeral range, the
    // VXLAN header the kernel accepts.
    let (l3, ethertype) = if v6 { (40, 0x86dd) } else { (20, 0x0800) };
    let ours: Vec<&Seen> = seen
        .iter()
        .filter(|f| f.ethertype == ethertype && f.payload.len() >= l3 + 16)
        .filter(|f| f.payload[l3 + 2..l3 + 4] == 4789u16.to_be_bytes())
        .filter(|f| {
            if v6 {
                f.payload[8..24] == "2001:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
            } else {
                f.payload[12..16] == [198, 18, 1, 1]
            }
        })
        .collect();
    assert!(
        ours.len() > 100,
        "only {} datagrams from uswitch",
        ours.len()
    );
    let mut sports = std::collections::BTreeSet::new();
    for f in &ours {
        let sport = u16::from_be_bytes([f.payload[l3], f.payload[l3 + 1]]);
        assert!((32768..=60999).contains(&sport), "source port {sport}");
        sports.insert(sport);
        assert_eq!(f.payload[l3 + 8..l3 + 12], [0x08, 0, 0, 0], "VXLAN flags");
        assert_eq!(f.payload[l3 + 12..l3 + 16], [0, 0, 42, 0], "VNI 42");
        if v6 {
            assert_ne!(
                f.payload[l3 + 6..l3 + 8],
                [0, 0],
                "IPv6 needs a UDP checksum"
            );
        }
    }
    assert!(sports.len() >= 2, "flows share one source port: {sports:?}");
    // Learned behind the remote; per-peer counters moved.
    let fdb = sw.json(&["show", "fdb"]);
    let remote_name = if v6 {
        "vx42:[2001:2::2]".to_string()
    } else {
        "vx42:198.18.1.2".to_string()
    };
    assert!(
        fdb.as_array()
            .unwrap()
            .iter()
            .any(|e| e["mac"] == "02:00:00:00:0b:01" && e["port"] == remote_name.as_str()),
        "{fdb}"
    );
    let vxlan = sw.json(&["show", "vxlan"]);
    let p = peer(&vxlan, &ul.addrs[1]);
    // The kernel side's TCP crossed as GSO packets (a veth keeps them whole): count bytes.
    assert!(
        vxlan[0]["counters"]["rx_bytes"].as_u64().unwrap() > 15 << 20,
        "{vxlan}"
    );
    assert!(p["counters"]["rx_frames"].as_u64().unwrap() > 10, "{p}");
    assert!(p["counters"]["tx_frames"].as_u64().unwrap() > 1000, "{p}");
}

#[test]
fn vxlan_interoperates_with_the_kernel() {
    if privileged("vxlan_interoperates_with_the_kernel") {
        interop_with_the_kernel(false);
    }
}

#[test]
fn vxlan_interoperates_with_the_kernel_over_ipv6() {
    if privileged("vxlan_interoperates_with_the_kernel_over_ipv6") {
        interop_with_the_kernel(true);
    }
}

/// Three uswitch hosts: a broadcast reaches both others (head-end replication); once
/// the MACs are learned, unicast between two hosts never reaches the third.
#[test]
fn vxlan_replicates_floods_and_keeps_unicast_to_one_remote() {
    if !privileged("vxlan_replicates_floods_and_keeps_unicast_to_one_remote") {
        return;
    }
    let ul = Underlay::new(3, false);
    let (switches, containers, names) = ul.uswitch_hosts(3, 0x0c);
    let caps = [
        Capture::start(&containers[1], &names[1]),
        Capture::start(&containers[2], &names[2]),
    ];
    send_broadcast_probe(
        &containers[0],
        &names[0],
        mac("02:00:00:00:0c:01"),
        b"her-probe",
    );
    thread::sleep(Duration::from_millis(300));
    for (i, cap) in caps.into_iter().enumerate() {
        assert!(
            saw_probe(&cap.finish(), b"her-probe"),
            "host {} missed the flood",
            i + 1
        );
    }
    assert!(containers[0].ping("198.18.0.2"));
    assert!(containers[1].ping("198.18.0.1"));
    let third_rx = rx_packets(&ul.hosts[2], "ul");
    let third_vx = datagrams_in(&switches[2]);
    tcp_exchange(&containers[0], &containers[1], "198.18.0.2", 5003, 4 << 20);
    // Datagrams, as the endpoint counts them (the remote's port counts frames after TCP
    // segments are joined back together).
    let b_from_a = datagrams_in(&switches[1]);
    let third_rx_after = rx_packets(&ul.hosts[2], "ul");
    let third_vx_after = datagrams_in(&switches[2]);
    eprintln!(
        "host B got {b_from_a} frames from A; host C's underlay got {} packets, its VXLAN socket {}",
        third_rx_after - third_rx,
        third_vx_after - third_vx
    );
    assert!(b_from_a > 1000, "{b_from_a}");
    // uswitch A sent each GSO frame's segments as one UDP GSO packet, the veth underlay
    // kept it whole, B read it in one go (UDP GRO) and joined the TCP segments back into
    // GSO frames for its TAP: far fewer frames than datagrams entered B's forwarder.
    let b_frames = peer(&switches[1].json(&["show", "vxlan"]), "198.18.1.1")["counters"]
        ["rx_frames"]
        .as_u64()
        .unwrap();
    eprintln!("host B: {b_from_a} datagrams from A became {b_frames} frames");
    assert!(
        b_frames * 2 < b_from_a,
        "no coalescing: {b_frames} frames, {b_from_a} datagrams"
    );
    // A stray ARP or neighbour probe is a broadcast; the stream is not.
    assert!(
        third_rx_after - third_rx <= 4,
        "the third host saw the unicast stream"
    );
    assert!(third_vx_after - third_vx <= 2);
}

/// A remote that is down (its host answers "port unreachable") costs the live remotes of
/// the same flood nothing. Each such ICMP error is reported on the next send through the
/// same socket (`IP_RECVERR`), which may be a replica to a live remote: that replica
/// was once dropped as `egress_error`, every other flood. The live remote comes last of
/// 68, after the first `sendmmsg` of 64 replicas.
#[test]
fn a_dead_remote_costs_the_live_ones_no_flood() {
    if !privileged("a_dead_remote_costs_the_live_ones_no_flood") {
        return;
    }
    let ul = Underlay::new(3, false);
    // Host A floods to C and 66 more addresses of C's, where nothing listens, then to B
    // (a uswitch).
    let (ta, tb) = (unique("uvx"), unique("uvx"));
    let mut vx_a = format!(
        "default:vni=42,local={},remote={}",
        ul.addrs[0], ul.addrs[2]
    );
    for i in 0..66 {
        let dead = format!("198.18.1.{}", 100 + i);
        sh(&[
            "ip",
            "-n",
            &ul.hosts[2].name,
            "addr",
            "add",
            &format!("{dead}/24"),
            "dev",
            "ul",
        ]);
        vx_a.push_str(&format!(",remote={dead}"));
    }
    vx_a.push_str(&format!(",remote={}", ul.addrs[1]));
    let vx_b = ul.vxlan_arg_among("default", 42, 1, 2);
    let sw_a = Uswitch::start_in(&ul.hosts[0], &["--port", &ta, "--vxlan", &vx_a]);
    let _sw_b = Uswitch::start_in(&ul.hosts[1], &["--port", &tb, "--vxlan", &vx_b]);
    let ca = container_on(&ul.hosts[0], &ta, "02:00:00:00:0d:01", "198.18.0.1/24");
    let cb = container_on(&ul.hosts[1], &tb, "02:00:00:00:0d:02", "198.18.0.2/24");
    let cap = Capture::start(&cb, &tb);
    const FLOODS: usize = 20;
    for i in 0..FLOODS {
        let tag = format!("dead-remote-{i:02}");
        send_broadcast_probe(&ca, &ta, mac("02:00:00:00:0d:01"), tag.as_bytes());
        // Room for the dead remote's ICMP error to come back before the next flood.
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    let seen = cap.finish();
    let missed: Vec<usize> = (0..FLOODS)
        .filter(|i| !saw_probe(&seen, format!("dead-remote-{i:02}").as_bytes()))
        .collect();
    let vxlan = sw_a.json(&["show", "vxlan"]);
    assert!(
        missed.is_empty(),
        "host B missed floods {missed:?}; A's remote B: {}",
        peer(&vxlan, &ul.addrs[1])
    );
    let errors = &peer(&vxlan, &ul.addrs[1])["counters"]["drops"]["egress_error"];
    assert_eq!(errors, 0, "{vxlan}");
    // The dead remotes were sent every flood too: their losses are past the switch.
    for dead in [ul.addrs[2].clone(), "198.18.1.165".to_string()] {
        let sent = peer(&vxlan, &dead)["counters"]["tx_frames"]
            .as_u64()
            .unwrap_or(0);
        assert!(sent >= FLOODS as u64, "{dead}: {vxlan}");
    }
}

/// Two VNIs on the same pair of hosts, with the same addresses in both: each carries
/// its own traffic and nothing crosses.
#[test]
fn vxlan_keeps_vnis_isolated() {
    if !privileged("vxlan_keeps_vnis_isolated") {
        return;
    }
    let ul = Underlay::new(2, false);
    let mut switches = Vec::new();
    // containers[host][network]
    let mut containers: Vec<Vec<(Netns, String)>> = Vec::new();
    for i in 0..2 {
        let (red, blue) = (unique("uvx"), unique("uvx"));
        let (r, b) = (format!("{red}@red"), format!("{blue}@blue"));
        let (vr, vb) = (ul.vxlan_arg("red", 42, i), ul.vxlan_arg("blue", 43, i));
        switches.push(Uswitch::start_in(
            &ul.hosts[i],
            &["--port", &r, "--port", &b, "--vxlan", &vr, "--vxlan", &vb],
        ));
        let cidr = format!("198.18.0.{}/24", i + 1);
        let mut row = Vec::new();
        for (n, tap) in [red, blue].into_iter().enumerate() {
            let mac = format!("02:00:00:00:{:02x}:{:02x}", 0x10 + n, i + 1);
            row.push((container_on(&ul.hosts[i], &tap, &mac, &cidr), tap));
        }
        containers.push(row);
    }
    let caps: Vec<Capture> = (0..2)
        .map(|n| Capture::start(&containers[1][n].0, &containers[1][n].1))
        .collect();
    send_broadcast_probe(
        &containers[0][0].0,
        &containers[0][0].1,
        mac("02:00:00:00:10:01"),
        b"red-only",
    );
    send_broadcast_probe(
        &containers[0][1].0,
        &containers[0][1].1,
        mac("02:00:00:00:11:01"),
        b"blue-only",
    );
    // The same address in both networks answers from its own network only.
    assert!(containers[0][0].0.ping("198.18.0.2"));
    assert!(containers[0][1].0.ping("198.18.0.2"));
    assert_eq!(
        neighbour(&containers[0][0].0, "198.18.0.2").as_deref(),
        Some("02:00:00:00:10:02")
    );
    assert_eq!(
        neighbour(&containers[0][1].0, "198.18.0.2").as_deref(),
        Some("02:00:00:00:11:02")
    );
    thread::sleep(Duration::from_millis(200));
    let seen: Vec<Vec<Seen>> = caps.into_iter().map(Capture::finish).collect();
    assert!(saw_probe(&seen[0], b"red-only") && saw_probe(&seen[1], b"blue-only"));
    assert!(!saw_probe(&seen[0], b"blue-only"), "blue leaked into red");
    assert!(!saw_probe(&seen[1], b"red-only"), "red leaked into blue");
    for (n, frames) in seen.iter().enumerate() {
        let foreign = if n == 0 { 0x11 } else { 0x10 };
        assert!(
            frames.iter().all(|f| f.src[4] != foreign),
            "network {n} saw a frame from the other network"
        );
    }
}

/// A VXLAN datagram: header bytes then an inner frame.
fn datagram(flags: u8, vni: u32, reserved_tail: u8, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut d = vec![flags, 0, 0, 0, v[1], v[2], v[3], reserved_tail];
    d.extend_from_slice(inner);
    d
}

/// Malformed datagrams at the uswitch endpoint, from a remote and from a stranger: every
/// one counted under its reason, and the overlay keeps working.
#[test]
fn vxlan_counts_malformed_datagrams_and_keeps_working() {
    if !privileged("vxlan_counts_malformed_datagrams_and_keeps_working") {
        return;
    }
    // Hosts 0 and 1 run uswitch; host 2 is a stranger on the underlay.
    let ul = Underlay::new(3, false);
    let (switches, containers, _) = ul.uswitch_hosts(2, 0x0d);
    assert!(containers[0].ping("198.18.0.2"));
    let mut inner = vec![0xffu8; 6];
    inner.extend_from_slice(&[0x02, 0, 0, 0, 0x0d, 0x99, 0x88, 0xb5]);
    inner.resize(60, 0);
    let from_remote = vec![
        datagram(0x00, 42, 0, &inner),      // no I bit
        datagram(0x0c, 42, 0, &inner),      // a reserved flag
        datagram(0x08, 42, 1, &inner),      // the last reserved byte
        vec![0x08, 0, 0],                   // truncated header
        datagram(0x08, 99, 0, &inner),      // unknown VNI
        datagram(0x08, 42, 0, &inner[..5]), // inner runt
    ];
    let target = format!("{}:4789", ul.addrs[0]);
    let send = |ns: &Netns, local: String, dgrams: Vec<Vec<u8>>| {
        let target = target.clone();
        ns.spawn(move || {
            let s = UdpSocket::bind(format!("{local}:0")).expect("bind");
            for d in &dgrams {
                s.send_to(d, &target).expect("send");
            }
        })
        .join()
        .expect("sender");
    };
    send(&ul.hosts[1], ul.addrs[1].clone(), from_remote);
    send(
        &ul.hosts[2],
        ul.addrs[2].clone(),
        vec![datagram(0x08, 42, 0, &inner)],
    );
    thread::sleep(Duration::from_millis(300));
    let vxlan = switches[0].json(&["show", "vxlan"]);
    let drops = &vxlan[0]["counters"]["drops"];
    for (reason, n) in [
        ("vxlan_no_i_bit", 1),
        ("vxlan_reserved_bits", 2),
        ("vxlan_truncated", 1),
        ("vxlan_unknown_vni", 1),
        ("vxlan_unknown_remote", 1),
    ] {
        assert_eq!(drops[reason], n, "{reason}: {drops}");
    }
    let p = peer(&vxlan, &ul.addrs[1]);
    assert_eq!(p["counters"]["drops"]["runt"], 1, "{p}");
    // The endpoint's refusals are in the switch's own counters: show stats and the
    // stats lines (SIGUSR1, shutdown) show them.
    let stats = switches[0].json(&["show", "stats"]);
    let ep = &stats["endpoints"][0];
    assert_eq!(
        ep["counters"]["drops"]["vxlan_unknown_remote"], 1,
        "{stats}"
    );
    // Nothing of the stranger's was learned, and the overlay still carries traffic.
    let fdb = switches[0].json(&["show", "fdb"]);
    assert!(
        !fdb.as_array()
            .unwrap()
            .iter()
            .any(|e| e["mac"] == "02:00:00:00:0d:99"),
        "{fdb}"
    );
    assert!(containers[0].ping("198.18.0.2"));
    tcp_exchange(&containers[1], &containers[0], "198.18.0.1", 5004, 1 << 20);
    let out = switches[0].client(&["show", "vxlan"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("vxlan_unknown_remote=1"), "{table}");
}

/// The TAPs of an overlay network get the underlay MTU minus 50: a do-not-fragment ping
/// that fills it crosses; one byte more from a host that ignores the MTU is dropped and
/// counted. With the MTU overridden past what the underlay carries, the oversized
/// datagram is refused by the kernel (never fragmented) and counted on the remote.
#[test]
fn vxlan_respects_the_underlay_mtu() {
    if !privileged("vxlan_respects_the_underlay_mtu")
        || !need_tool("vxlan_respects_the_underlay_mtu", "ping", "iputils-ping")
    {
        return;
    }
    let ul = Underlay::new(2, false);
    let taps = [unique("uvx"), unique("uvx")];
    let start = |i: usize, extra: &str| {
        let vx = format!("{}{extra}", ul.vxlan_arg("default", 42, i));
        Uswitch::start_in(&ul.hosts[i], &["--port", &taps[i], "--vxlan", &vx])
    };
    let sb = start(1, "");
    let cb = container_on(&ul.hosts[1], &taps[1], "02:00:00:00:0e:02", "198.18.0.2/24");
    {
        let sa = start(0, "");
        let ca = container_on(&ul.hosts[0], &taps[0], "02:00:00:00:0e:01", "198.18.0.1/24");
        // 1450 bytes of IP: 1422 of ICMP payload + 8 + 20.
        assert!(
            ping_df(&ca, "198.18.0.2", 1422),
            "a full-MTU packet must cross"
        );
        assert!(
            !ping_df(&ca, "198.18.0.2", 1423),
            "the container's own MTU stops this one"
        );
        // A host that ignores the MTU: the frame reaches uswitch and is dropped there.
        sh(&["ip", "-n", &ca.name, "link", "set", &taps[0], "mtu", "1500"]);
        assert!(!ping_df(&ca, "198.18.0.2", 1423));
        let ports = sa.json(&["show", "ports"]);
        let drops = &port(&ports, &taps[0])["counters"]["drops"];
        assert!(drops["oversized"].as_u64().unwrap() >= 1, "{drops}");
    }
    // Override the inner MTU to 1500 on a 1500-byte underlay: the outer packet would be
    // 1550 bytes. The kernel refuses it (EMSGSIZE) and uswitch counts it.
    let sa = start(0, ",mtu=1500");
    let ca = container_on(&ul.hosts[0], &taps[0], "02:00:00:00:0e:01", "198.18.0.1/24");
    assert_eq!(port(&sa.json(&["show", "ports"]), &taps[0])["mtu"], 1500);
    assert!(ping_df(&ca, "198.18.0.2", 1422));
    assert!(!ping_df(&ca, "198.18.0.2", 1423));
    let vxlan = sa.json(&["show", "vxlan"]);
    let p = peer(&vxlan, &ul.addrs[1]);
    assert!(
        p["counters"]["drops"]["egress_too_big"].as_u64().unwrap() >= 1,
        "{p}"
    );
    drop(cb);
    drop(sb);
}

/// Overlays made at runtime through the control socket: `network create --vni`, the
/// endpoint shared by a second VNI, `show vxlan --json`, and the refusals.
#[test]
fn vxlan_overlays_are_made_and_shown_through_the_control_socket() {
    if !privileged("vxlan_overlays_are_made_and_shown_through_the_control_socket") {
        return;
    }
    let ul = Underlay::new(1, false);
    let sw = Uswitch::start_in(&ul.hosts[0], &[]);
    let out = sw.client(&[
        "network",
        "create",
        "blue",
        "--vni",
        "7",
        "--remote",
        "198.18.1.2",
    ]);
    one_line_failure(&out, "give --local ADDR");
    // A create that fails half-way (no such local address) leaves no network behind,
    // so the retry below does not find one "existing already"; a remote named twice is
    // refused in its own words.
    let out = sw.client(&[
        "network",
        "create",
        "blue",
        "--subnet",
        "198.18.0.0/24",
        "--vni",
        "7",
        "--remote",
        "198.18.1.2",
        "--local",
        "198.19.255.254",
    ]);
    one_line_failure(&out, "is not an address of any interface");
    let out = sw.client(&[
        "network",
        "create",
        "blue",
        "--vni",
        "7",
        "--remote",
        "198.18.1.2",
        "--remote",
        "198.18.1.2",
        "--local",
        "198.18.1.1",
    ]);
    one_line_failure(&out, "remote=198.18.1.2 is given twice");
    assert_eq!(sw.json(&["network", "ls"]).as_array().unwrap().len(), 0);
    assert_eq!(sw.json(&["show", "vxlan"]).as_array().unwrap().len(), 0);
    let made = sw.json(&[
        "network",
        "create",
        "blue",
        "--subnet",
        "198.18.0.0/24",
        "--vni",
        "7",
        "--remote",
        "198.18.1.2",
        "--local",
        "198.18.1.1",
    ]);
    assert_eq!(
        (made["vni"].as_u64(), made["mtu"].as_u64()),
        (Some(7), Some(1450))
    );
    // The second overlay takes the only endpoint's address and port.
    sw.json(&[
        "network",
        "create",
        "red",
        "--vni",
        "8",
        "--remote",
        "198.18.1.3",
    ]);
    let out = sw.client(&[
        "network",
        "create",
        "green",
        "--vni",
        "7",
        "--remote",
        "198.18.1.4",
    ]);
    one_line_failure(
        &out,
        "vni 7 at 198.18.1.1:4789 already carries network blue",
    );
    let out = sw.client(&["port", "del", "vx7:198.18.1.2"]);
    one_line_failure(&out, "is a VXLAN remote");
    let tap = unique("uvx");
    sw.json(&["port", "add", &format!("{tap}@blue")]);
    assert_eq!(port(&sw.json(&["show", "ports"]), &tap)["mtu"], 1450);
    let vxlan = sw.json(&["show", "vxlan"]);
    let eps = vxlan.as_array().unwrap();
    assert_eq!(eps.len(), 1, "one socket serves both VNIs: {vxlan}");
    assert_eq!(eps[0]["local"], "198.18.1.1");
    assert_eq!(eps[0]["port"], 4789);
    assert_eq!(eps[0]["underlay"], "ul");
    assert_eq!(eps[0]["underlay_mtu"], 1500);
    let sports = eps[0]["source_ports"].as_array().unwrap();
    assert_eq!(sports.len(), 16, "{vxlan}");
    assert!(sports
        .iter()
        .all(|p| (32768..=60999).contains(&p.as_u64().unwrap())));
    let segs: Vec<(u64, &str)> = eps[0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["vni"].as_u64().unwrap(), s["network"].as_str().unwrap()))
        .collect();
    assert_eq!(segs, vec![(7, "blue"), (8, "red")]);
    assert_eq!(peer(&vxlan, "198.18.1.3")["port"], "vx8:198.18.1.3");
    let table = String::from_utf8_lossy(&sw.client(&["show", "vxlan"]).stdout).into_owned();
    assert!(table.contains("198.18.1.1:4789  7    blue"), "{table}");
    // Removing an overlay network takes its remotes with it, once its TAPs are gone.
    let red = sw.json(&["network", "rm", "red"]);
    assert_eq!(red["ports"][0], "vx8:198.18.1.3");
    one_line_failure(
        &sw.client(&["network", "rm", "red"]),
        "no network named red",
    );
    one_line_failure(&sw.client(&["network", "rm", "blue"]), "still has ports");
    sw.json(&["port", "del", &tap]);
    let gone = sw.json(&["network", "rm", "blue"]);
    assert_eq!(gone["ports"][0], "vx7:198.18.1.2");
    assert!(sw
        .json(&["show", "ports"])
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["name"] != "vx7:198.18.1.2"));
}

/// Small UDP datagrams queued up behind one another cross the overlay joined: the
/// sending switch hands a run to the kernel as one UDP GSO `sendmsg` (the veth underlay
/// keeps it one packet), the receiving switch reads it in one go and writes the inner
/// datagrams to its TAP as one UDP GSO frame; the receiving socket gets every datagram,
/// byte for byte and in order.
#[test]
fn vxlan_carries_queued_udp_datagrams_joined_and_intact() {
    if !privileged("vxlan_carries_queued_udp_datagrams_joined_and_intact") {
        return;
    }
    let ul = Underlay::new(2, false);
    let (switches, containers, taps) = ul.uswitch_hosts(2, 0x0d);
    // Both switches learn both MACs, so the datagrams are known unicast.
    assert!(containers[0].ping("198.18.0.2") && containers[1].ping("198.18.0.1"));

    const N: u32 = 300;
    let to: std::net::SocketAddr = "198.18.0.2:5410".parse().unwrap();
    let receiver = containers[1].spawn(move || receive_udp(to, N as usize));
    thread::sleep(Duration::from_millis(300));
    let underlay_before = rx_packets(&ul.hosts[1], "ul");
    let tap_before = rx_packets(&containers[1], &taps[1]);
    let pid = switches[0].pid() as libc::pid_t;
    // SAFETY: signalling the switch this test started; the datagrams queue in its TAP.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    containers[0]
        .spawn(move || {
            let s = UdpSocket::bind("198.18.0.1:0").unwrap();
            for seq in 0..N {
                s.send_to(&udp_datagram(7, seq), to).unwrap();
            }
        })
        .join()
        .unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let got = receiver.join().unwrap();
    let want: Vec<Vec<u8>> = (0..N).map(|seq| udp_datagram(7, seq)).collect();
    assert_eq!(got.len(), want.len(), "datagrams lost");
    for (seq, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "datagram {seq} differs");
    }
    let underlay = rx_packets(&ul.hosts[1], "ul") - underlay_before;
    let tap = rx_packets(&containers[1], &taps[1]) - tap_before;
    eprintln!("{N} datagrams: {underlay} packets on B's underlay, {tap} into B's TAP");
    assert!(
        underlay < u64::from(N) / 2,
        "not joined for sending: {underlay}"
    );
    assert!(tap < u64::from(N) / 2, "not joined for the TAP: {tap}");
}

/// `ENOBUFS` on VXLAN sends: a token bucket on the underlay drops most of a burst of
/// 2000 frames. Every frame uswitch read is either sent (and the kernel's vxlan on the
/// other host received exactly those) or counted as `egress_full` on the remote's port:
/// nothing is lost silently. Once the bucket goes, the overlay works as before.
#[test]
fn enobufs_on_vxlan_sends_is_counted_and_the_overlay_recovers() {
    if !privileged("enobufs_on_vxlan_sends_is_counted_and_the_overlay_recovers") {
        return;
    }
    let ul = Underlay::new(2, false);
    let ta = unique("uvx");
    let vx = ul.vxlan_arg("default", 42, 0);
    let sw = Uswitch::start_in(&ul.hosts[0], &["--port", &ta, "--vxlan", &vx]);
    let c1 = container_on(&ul.hosts[0], &ta, "02:00:00:00:0c:01", "198.18.0.1/24");
    let _c2 = kernel_host(
        &ul.hosts[1],
        &ul.addrs[1],
        &ul.addrs[0],
        42,
        "02:00:00:00:0c:02",
        "198.18.0.2/24",
    );
    assert!(c1.ping("198.18.0.2"), "before the bucket");
    let counters = || {
        let ports = sw.json(&["show", "ports"]);
        let remote = ports
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str().is_some_and(|n| n.starts_with("vx42:")))
            .cloned()
            .unwrap_or_else(|| panic!("no remote port in {ports}"));
        let drops: u64 = remote["counters"]["drops"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum();
        let rx_tap = port(&ports, &ta)["counters"]["rx_frames"].as_u64().unwrap();
        let tx = remote["counters"]["tx_frames"].as_u64().unwrap();
        let full = remote["counters"]["drops"]["egress_full"].as_u64().unwrap();
        let link = sh(&[
            "ip",
            "-n",
            &ul.hosts[1].name,
            "-s",
            "-j",
            "link",
            "show",
            "vx0",
        ]);
        let link: Value = serde_json::from_str(&link).expect("ip -j");
        let kernel_rx = link[0]["stats64"]["rx"]["packets"].as_u64().unwrap();
        (rx_tap, tx, drops, full, kernel_rx)
    };
    let host0 = ul.hosts[0].name.clone();
    sh(&[
        "ip", "netns", "exec", &host0, "tc", "qdisc", "add", "dev", "ul", "root", "tbf", "rate",
        "1mbit", "burst", "4kb", "latency", "1ms",
    ]);
    let before = counters();
    let mut frame = vec![0u8; 1000];
    frame[..6].copy_from_slice(&[2, 0, 0, 0, 0x0c, 2]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0x0c, 1]);
    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
    let sent = send_raw(&c1, &ta, vec![frame; 2000]);
    std::thread::sleep(Duration::from_millis(500));
    let after = counters();
    let (rx_tap, tx, drops, full, kernel_rx) = (
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
        after.3 - before.3,
        after.4 - before.4,
    );
    eprintln!(
        "{sent} frames into the TAP: uswitch read {rx_tap}, sent {tx}, counted {full} as \
         egress_full ({drops} drops in all); the kernel's vxlan received {kernel_rx}"
    );
    assert!(full > 0, "the bucket dropped nothing: no ENOBUFS seen");
    assert_eq!(
        rx_tap,
        tx + drops,
        "frames read and frames accounted for differ"
    );
    assert_eq!(
        kernel_rx, tx,
        "the receiver got other than what was counted as sent"
    );
    sh(&[
        "ip", "netns", "exec", &host0, "tc", "qdisc", "del", "dev", "ul", "root",
    ]);
    assert!(c1.ping("198.18.0.2"), "after the bucket");
    let (h1, h2) = (c1.handle(), _c2.handle());
    tcp_exchange(&h1, &h2, "198.18.0.2", 5601, 4 << 20);
}
