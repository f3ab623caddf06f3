//! Overlay networks across hosts through etcd: hosts are namespaces on one underlay
//! wire (198.18.1.0/24), a three-member etcd cluster (Debian's etcd-server) runs with its
//! members in the first three hosts, and each host runs uswitch as a node of the cluster.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::docker::{Dockerd, PluginLeftovers};
use common::*;
use serde_json::Value;

const ETCD: &str = "/usr/bin/etcd";

/// Whether etcd is here (a loud skip, or a failure under USWITCH_REQUIRE_PRIV=1).
fn have_etcd(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    if std::path::Path::new(ETCD).exists() {
        return true;
    }
    if std::env::var("USWITCH_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("{test}: needs {ETCD} (apt-get install etcd-server)");
    }
    eprintln!("!!!!! SKIPPED {test}: needs {ETCD} (etcd-server)");
    false
}

/// A three-member etcd cluster, one member in each of the underlay's first three hosts;
/// stopped (by pid) and its data removed on drop.
struct Etcd {
    members: Vec<Option<Child>>,
    dir: PathBuf,
    hosts: Vec<String>,
    addrs: Vec<String>,
    token: String,
}

impl Etcd {
    fn start(u: &Underlay) -> Etcd {
        let token = unique("etc");
        let dir = std::env::temp_dir().join(format!("{token}-etcd"));
        let mut e = Etcd {
            members: Vec::new(),
            dir,
            hosts: u.hosts[..3].iter().map(|h| h.name.clone()).collect(),
            addrs: u.addrs[..3].to_vec(),
            token,
        };
        for i in 0..3 {
            let m = e.spawn(i);
            e.members.push(Some(m));
        }
        e
    }

    fn spawn(&self, i: usize) -> Child {
        let a = &self.addrs[i];
        let cluster: Vec<String> = self
            .addrs
            .iter()
            .enumerate()
            .map(|(j, a)| format!("e{j}=http://{a}:2380"))
            .collect();
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::File::create(self.dir.join(format!("e{i}.log"))).unwrap();
        Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], ETCD])
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(self.dir.join(format!("e{i}")))
            .args(["--listen-client-urls", &format!("http://{a}:2379")])
            .args(["--advertise-client-urls", &format!("http://{a}:2379")])
            .args(["--listen-peer-urls", &format!("http://{a}:2380")])
            .args(["--initial-advertise-peer-urls", &format!("http://{a}:2380")])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting etcd")
    }

    /// `etcd=http://A:2379,...`.
    fn endpoints(&self) -> String {
        let urls: Vec<String> = self
            .addrs
            .iter()
            .map(|a| format!("http://{a}:2379"))
            .collect();
        format!("etcd={}", urls.join(","))
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut m) = self.members[i].take() {
            let _ = Command::new("kill").arg(m.id().to_string()).status();
            let _ = m.wait();
        }
    }

    fn restart(&mut self, i: usize) {
        if self.members[i].is_none() {
            self.members[i] = Some(self.spawn(i));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A host's uswitch as a cluster node, and how to run the client there.
struct Node {
    host: String,
    sw: Uswitch,
    state: PathBuf,
}

const TTL: u64 = 3;

impl Node {
    fn start(u: &Underlay, i: usize, etcd: &Etcd, prefix: &str) -> Node {
        Self::start_with(u, i, etcd, prefix, &[])
    }

    /// A node with `extra` flags besides the cluster's (`--state-dir` is the node's own).
    fn start_with(u: &Underlay, i: usize, etcd: &Etcd, prefix: &str, extra: &[&str]) -> Node {
        let state = std::env::temp_dir().join(unique("ucls"));
        let node = format!("n{i}");
        let ttl = TTL.to_string();
        let state_arg = state.display().to_string();
        let endpoints = etcd.endpoints();
        let mut args = vec![
            "--cluster",
            &endpoints,
            "--node",
            &node,
            "--vtep",
            &u.addrs[i],
            "--cluster-ttl",
            &ttl,
            "--cluster-prefix",
            prefix,
        ];
        if !extra.contains(&"--state-dir") {
            args.extend(["--state-dir", &state_arg]);
        }
        args.extend_from_slice(extra);
        let sw = Uswitch::start_in(&u.hosts[i], &args);
        let n = Node {
            host: u.hosts[i].name.clone(),
            sw,
            state,
        };
        n.wait_for(|s| s["etcd"] == "connected", "connects to etcd");
        n
    }

    /// `network create NAME --subnet SUBNET --vni VNI --cluster` from this node, which
    /// must succeed.
    fn create_network(&self, name: &str, subnet: &str, vni: u32) {
        let vni = vni.to_string();
        let out = self.client(&[
            "network",
            "create",
            name,
            "--subnet",
            subnet,
            "--vni",
            &vni,
            "--cluster",
        ]);
        assert!(out.status.success(), "network create {name} --cluster");
        // Declared here means known to `show cluster` too: a container run next takes its
        // address from etcd (in that gap it once took one of its own, the address another
        // node's container held).
        let cluster = self.cluster();
        let listed = cluster["networks"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["name"] == name));
        assert!(listed, "{name} declared but not in show cluster: {cluster}");
    }

    /// `uswitch ARGS` against this node (the client reaches etcd from the switch's
    /// namespace).
    fn client(&self, args: &[&str]) -> std::process::Output {
        self.sw.client(args)
    }

    fn cluster(&self) -> Value {
        self.sw.json(&["show", "cluster"])
    }

    fn wait_for(&self, ok: impl Fn(&Value) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.cluster();
            if ok(&s) {
                return;
            }
            assert!(Instant::now() < deadline, "{} never {what}: {s}", self.host);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A container on `network`; its address (without the prefix).
    fn run(&self, name: &str, network: &str) -> Result<String, String> {
        let out = self.client(&["run", "--name", name, "--network", network, "--json"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let c: Value = serde_json::from_slice(&out.stdout).expect("run --json");
        Ok(c["interfaces"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .unwrap_or_default()
            .to_string())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// The remote VTEPs `node` floods `network` to.
fn remotes_of(node: &Node, network: &str) -> Vec<String> {
    let vx = node.sw.json(&["show", "vxlan"]);
    let mut found: Vec<String> = vx
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ep| ep["segments"].as_array().cloned().unwrap_or_default())
        .filter(|seg| seg["network"] == network)
        .flat_map(|seg| seg["peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["remote"].as_str().map(str::to_string))
        .collect();
    found.sort();
    found
}

/// Containers by name: their namespaces deleted on drop.
struct Containers(Vec<Netns>);

impl Containers {
    fn add(&mut self, name: &str) -> Netns {
        self.0.push(Netns::guard(name));
        Netns::named(name)
    }
}

/// Three hosts with a container each on one cluster network reach each other; a fourth
/// host joins while they run (nobody else restarted or reconfigured) and is reached; a
/// second cluster network stays apart from the first; `kill -9` of a host withdraws it
/// from the others within TTL + 1 s, and the rest keep working.
#[test]
fn cluster_networks_span_hosts_that_find_each_other_through_etcd() {
    let test = "cluster_networks_span_hosts_that_find_each_other_through_etcd";
    if !have_etcd(test) {
        return;
    }
    let mut u = Underlay::new(3, false);
    let etcd = Etcd::start(&u);
    let prefix = format!("/{}", unique("ucp"));
    let mut nodes: Vec<Node> = (0..3).map(|i| Node::start(&u, i, &etcd, &prefix)).collect();
    nodes[0].create_network("blue", "198.18.60.0/24", 60);
    // A second one with the same VNI is refused, by the cluster.
    let out = nodes[1].client(&[
        "network",
        "create",
        "red",
        "--subnet",
        "198.18.61.0/24",
        "--vni",
        "60",
        "--cluster",
    ]);
    one_line_failure(&out, "VNI 60 is cluster network blue's");
    let mut ctrs = Containers(Vec::new());
    let mut addrs = Vec::new();
    let mut names = Vec::new();
    for n in &nodes {
        let name = short_unique("cc");
        ctrs.add(&name);
        addrs.push(
            n.run(&name, "blue")
                .expect("uswitch run on a cluster network"),
        );
        names.push(name);
    }
    let distinct: std::collections::BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(distinct.len(), 3, "addresses given twice: {addrs:?}");
    let reach_all = |names: &[String], addrs: &[String]| {
        for (i, from) in names.iter().enumerate() {
            for (j, to) in addrs.iter().enumerate() {
                if i != j {
                    assert!(
                        Netns::named(from).ping(to),
                        "{from} cannot reach {to} across the cluster"
                    );
                }
            }
        }
    };
    reach_all(&names, &addrs);
    // Each node installed the others' MACs as static entries on their VTEP.
    nodes[0].wait_for(
        |s| s["remote_macs"].as_u64() >= Some(2),
        "installs remote MACs",
    );

    // A fourth host joins; nobody else is touched.
    let pid0 = nodes[0].sw.pid();
    let i = u.add_host();
    nodes.push(Node::start(&u, i, &etcd, &prefix));
    let name = short_unique("cc");
    ctrs.add(&name);
    addrs.push(
        nodes[3]
            .run(&name, "blue")
            .expect("a container on the new host"),
    );
    names.push(name);
    // The others learn of it within a second or so (its membership goes out with its
    // next advertisement).
    let deadline = Instant::now() + Duration::from_secs(5);
    while remotes_of(&nodes[0], "blue").len() < 3 {
        assert!(
            Instant::now() < deadline,
            "n0 never added the new host to its flood list"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reach_all(&names, &addrs);
    assert_eq!(nodes[0].sw.pid(), pid0);

    // Another cluster network: its container does not reach blue's, and a host with no
    // port on it gets none of its floods.
    nodes[0].create_network("green", "198.18.62.0/24", 62);
    let g = short_unique("cg");
    ctrs.add(&g);
    let g_addr = nodes[1].run(&g, "green").unwrap();
    assert!(g_addr.starts_with("198.18.62."), "{g_addr}");
    assert!(!Netns::named(&g).ping(&addrs[0]), "green reached blue");
    // Only n1 has a port on green: it alone is green's flood list, everywhere.
    let green_members = |s: &Value| {
        s["networks"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["name"] == "green"))
            .map(|n| n["members"].clone())
    };
    nodes[2].wait_for(
        |s| green_members(s) == Some(serde_json::json!(["n1"])),
        "sees green's one member",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while remotes_of(&nodes[0], "green") != [u.addrs[1].clone()] {
        assert!(
            Instant::now() < deadline,
            "n0's flood list for green: {:?}",
            remotes_of(&nodes[0], "green")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And n1, green's one member, floods green to nobody: the hosts without a port on it
    // get none of its broadcasts.
    assert!(remotes_of(&nodes[1], "green").is_empty());
    // kill -9 host 2: the others drop it within TTL + 1 s (its lease expires).
    nodes[2].sw.signal(libc::SIGKILL);
    let killed = Instant::now();
    let deadline = Duration::from_secs(TTL + 1) + Duration::from_millis(900);
    loop {
        let s = nodes[0].cluster();
        let gone = s["nodes"].get("n2").is_none()
            && s["networks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| !n["members"].as_array().unwrap().iter().any(|m| m == "n2"));
        let remotes = remotes_of(&nodes[0], "blue");
        if gone && !remotes.contains(&u.addrs[2]) {
            break;
        }
        assert!(
            killed.elapsed() < deadline,
            "n2 not withdrawn within TTL + 1 s: {s} {remotes:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Netns::named(&names[0]).ping(&addrs[1]));
    assert!(Netns::named(&names[3]).ping(&addrs[0]));
}

/// Fifty containers started at once on three hosts get fifty distinct addresses (each
/// taken by a transaction); one etcd member dying changes nothing; all three stopped,
/// traffic between existing containers flows on, a new container is refused with a clear
/// error, and once etcd is back everything converges without restarting uswitch.
#[test]
fn cluster_addresses_are_unique_and_etcd_failures_leave_forwarding_alone() {
    let test = "cluster_addresses_are_unique_and_etcd_failures_leave_forwarding_alone";
    if !have_etcd(test) {
        return;
    }
    let u = Underlay::new(3, false);
    let mut etcd = Etcd::start(&u);
    let prefix = format!("/{}", unique("ucp"));
    // Node 0 serves metrics on its underlay address (in its namespace).
    let metrics = format!("{}:9469", u.addrs[0]);
    let nodes: Vec<Node> = (0..3)
        .map(|i| match i {
            0 => Node::start_with(&u, i, &etcd, &prefix, &["--metrics", &metrics]),
            _ => Node::start(&u, i, &etcd, &prefix),
        })
        .collect();
    let cluster_metrics = |ok: &dyn Fn(&HashMap<String, f64>) -> bool, what: &str| {
        wait_for_metrics(&u.hosts[0], &metrics, ok, what)
    };
    nodes[0].create_network("blue", "198.18.63.0/24", 63);
    for n in &nodes {
        n.wait_for(
            |s| s["networks"].as_array().is_some_and(|a| !a.is_empty()),
            "sees the network",
        );
    }
    // A container asked for straight over the control socket, without the address the
    // client takes from etcd, gets none of the switch's own picking: it could be one
    // another node's container holds.
    let refused = nodes[1]
        .sw
        .raw(r#"{"cmd":"container_add","name":"rawca","networks":["blue"],"ips":[null]}"#);
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("cluster network")),
        "{refused}"
    );
    let mut ctrs = Containers(Vec::new());
    let names: Vec<String> = (0..50).map(|_| short_unique("ca")).collect();
    for n in &names {
        ctrs.add(n);
    }
    let addrs: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let node = &nodes[k % 3];
                s.spawn(move || node.run(name, "blue"))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap().expect("a container of fifty"))
            .collect()
    });
    let distinct: std::collections::BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(distinct.len(), 50, "an address was given twice: {addrs:?}");
    assert!(
        addrs.iter().all(|a| a.starts_with("198.18.63.")),
        "{addrs:?}"
    );
    let (c0, c1) = (Netns::named(&names[0]), Netns::named(&names[1]));
    assert!(c0.ping(&addrs[1]), "host 0 to host 1");
    let m = cluster_metrics(
        &|m| m.get("uswitch_cluster_nodes") == Some(&3.0),
        "three nodes in the metrics",
    );
    assert_eq!(m["uswitch_cluster_etcd_up"], 1.0);
    assert_eq!(m["uswitch_cluster_networks"], 1.0);
    assert!(m["uswitch_cluster_lease_age_seconds"] <= TTL as f64);
    assert!(m["uswitch_cluster_revision"] > 0.0);
    assert!(m["uswitch_cluster_advertised_macs"] >= 1.0);

    // One member down: the cluster has its quorum; nothing changes.
    etcd.stop(2);
    let extra = short_unique("cb");
    ctrs.add(&extra);
    nodes[0]
        .run(&extra, "blue")
        .expect("a new container with two members of three");
    assert!(c0.ping(&addrs[1]));

    // All down: forwarding goes on; new containers are refused, saying why.
    etcd.stop(0);
    etcd.stop(1);
    nodes[0].wait_for(|s| s["etcd"] != "connected", "notices etcd is gone");
    cluster_metrics(
        &|m| m.get("uswitch_cluster_etcd_up") == Some(&0.0),
        "etcd down in the metrics",
    );
    assert!(c0.ping(&addrs[1]), "traffic stopped with etcd");
    assert!(c1.ping(&addrs[0]));
    let refused = short_unique("cr");
    ctrs.add(&refused);
    let err = nodes[0].run(&refused, "blue").unwrap_err();
    assert!(err.contains("etcd"), "{err}");

    // etcd back: the node lists again and new containers work and are reached.
    for i in 0..3 {
        etcd.restart(i);
    }
    nodes[0].wait_for(|s| s["etcd"] == "connected", "reconnects");
    nodes[1].wait_for(|s| s["etcd"] == "connected", "reconnects");
    cluster_metrics(
        &|m| m.get("uswitch_cluster_etcd_up") == Some(&1.0),
        "etcd back in the metrics",
    );
    let late = short_unique("cl");
    ctrs.add(&late);
    let late_addr = nodes[0]
        .run(&late, "blue")
        .expect("a container after etcd came back");
    assert!(!addrs.contains(&late_addr), "{late_addr} was given before");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c1.ping(&late_addr) {
        assert!(
            Instant::now() < deadline,
            "the new container is not reached"
        );
    }
    assert!(c0.ping(&addrs[1]));
}

/// Node metrics scraped from inside `host` (they are served on its underlay address)
/// once `ok` holds of them; panics after 15 s.
fn wait_for_metrics(
    host: &Netns,
    addr: &str,
    ok: &dyn Fn(&HashMap<String, f64>) -> bool,
    what: &str,
) -> HashMap<String, f64> {
    let addr: std::net::SocketAddr = addr.parse().expect("ADDR:PORT");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = host
            .spawn(move || http_get(addr, "/metrics"))
            .join()
            .expect("scrape thread");
        let m = samples(&body);
        if status == Some(200) && ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "never {what}: {status:?} {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The MAC of `ifname` in namespace `ns`.
fn mac_of(ns: &str, ifname: &str) -> [u8; 6] {
    let out = sh(&["ip", "-n", ns, "-j", "link", "show", ifname]);
    let v: Value = serde_json::from_str(&out).expect("ip -j link");
    mac(v[0]["address"].as_str().expect("an address"))
}

/// An inner frame's destination, source and EtherType.
type Inner = ([u8; 6], [u8; 6], u16);

/// The frame a VXLAN datagram seen on an underlay carries: (inner destination, inner
/// source, inner EtherType), if `f` is IPv4/UDP to port 4789 (a [`Seen`] keeps 64 bytes:
/// 20 of IP, 8 of UDP, 8 of VXLAN, then the inner Ethernet header).
fn inner(f: &Seen) -> Option<Inner> {
    let p = &f.payload;
    if f.ethertype != 0x0800 || p.len() < 50 || p[9] != 17 || p[22..24] != [0x12, 0xb5] {
        return None;
    }
    Some((
        p[36..42].try_into().ok()?,
        p[42..48].try_into().ok()?,
        u16::from_be_bytes([p[48], p[49]]),
    ))
}

/// Known unicast between two hosts never reaches the third (whose switch has a port on
/// the network, so it is on the flood list); ARP requests for addresses the cluster
/// advertised are answered by the asker's own switch, so no broadcast ARP crosses the
/// underlay; the answers are counted.
#[test]
fn cluster_known_unicast_is_not_flooded_and_arp_is_answered_locally() {
    let test = "cluster_known_unicast_is_not_flooded_and_arp_is_answered_locally";
    if !have_etcd(test) {
        return;
    }
    let u = Underlay::new(3, false);
    let etcd = Etcd::start(&u);
    let prefix = format!("/{}", unique("ucp"));
    let nodes: Vec<Node> = (0..3).map(|i| Node::start(&u, i, &etcd, &prefix)).collect();
    nodes[0].create_network("blue", "198.18.64.0/24", 64);
    let mut ctrs = Containers(Vec::new());
    let mut names = Vec::new();
    let mut addrs = Vec::new();
    for n in &nodes {
        let name = short_unique("cs");
        ctrs.add(&name);
        addrs.push(n.run(&name, "blue").expect("a container"));
        names.push(name);
    }
    // Everyone talks once: MACs are learned and advertised with the addresses heard.
    for (i, from) in names.iter().enumerate() {
        for (j, to) in addrs.iter().enumerate() {
            if i != j {
                assert!(Netns::named(from).ping(to), "{from} -> {to}");
            }
        }
    }
    let distinct: std::collections::BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(distinct.len(), addrs.len(), "one address twice: {addrs:?}");
    let cluster_knows = |node: &Node, addr: &str| {
        let rows = node.sw.json(&["show", "neighbors", "--network", "blue"]);
        rows.as_array().is_some_and(|r| {
            r.iter()
                .any(|n| n["ip"] == addr && n["origin"] == "cluster")
        })
    };
    // Generous: under load an etcd request may time out (5 s) and be made again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(cluster_knows(&nodes[0], &addrs[1]) && cluster_knows(&nodes[1], &addrs[0])) {
        assert!(
            Instant::now() < deadline,
            "the cluster never advertised the containers' addresses: {}",
            nodes[0].sw.json(&["show", "neighbors"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let macs: Vec<[u8; 6]> = names.iter().map(|n| mac_of(n, "eth0")).collect();
    // Both ends forget each other: the next ping starts with a broadcast ARP request.
    for n in &names[..2] {
        sh(&["ip", "-n", n, "neigh", "flush", "all"]);
    }
    let caps: Vec<Capture> = u.hosts.iter().map(|h| Capture::start(h, "ul")).collect();
    for _ in 0..3 {
        assert!(Netns::named(&names[0]).ping(&addrs[1]), "c0 -> c1");
        assert!(Netns::named(&names[1]).ping(&addrs[0]), "c1 -> c0");
    }
    let seen: Vec<Vec<Seen>> = caps.into_iter().map(Capture::finish).collect();
    let carried: Vec<Vec<Inner>> = seen
        .iter()
        .map(|s| s.iter().filter_map(inner).collect())
        .collect();
    assert!(
        carried[0]
            .iter()
            .chain(&carried[1])
            .any(|f| f.1 == macs[0] || f.1 == macs[1]),
        "the pings did not cross the underlay at all"
    );
    for (h, frames) in carried.iter().enumerate() {
        let arp: Vec<_> = frames
            .iter()
            .filter(|f| f.2 == 0x0806 && f.0 == [0xff; 6])
            .collect();
        assert!(arp.is_empty(), "broadcast ARP reached host {h}: {arp:?}");
    }
    // Unicast, that is: multicast (IPv6's MLD and router solicitations) floods, rightly.
    let to_third: Vec<_> = carried[2]
        .iter()
        .filter(|f| f.0[0] & 1 == 0)
        .filter(|f| [f.0, f.1].iter().any(|m| *m == macs[0] || *m == macs[1]))
        .collect();
    assert!(
        to_third.is_empty(),
        "traffic between hosts 0 and 1 was flooded to host 2: {to_third:?}"
    );
    // The asking ports counted their answers.
    let stats = nodes[0].sw.json(&["show", "stats"]);
    let answered: u64 = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["answered"].as_u64().unwrap_or(0))
        .sum();
    assert!(answered >= 1, "no answer counted on host 0: {stats}");
}

/// Docker on two hosts puts its containers on one cluster network: `docker network create
/// -d PLUGIN --ipam-driver PLUGIN --ipam-opt uswitch.cluster=blue -o uswitch.cluster=blue`
/// on each host; the containers get distinct addresses from the cluster (uswitch answers
/// Docker's IPAM protocol), reach each other across hosts, and give their addresses
/// back when removed. Without the IPAM driver the network is refused, saying so.
#[test]
fn docker_containers_on_two_hosts_share_a_cluster_network_and_its_addresses() {
    let test = "docker_containers_on_two_hosts_share_a_cluster_network_and_its_addresses";
    if !have_etcd(test) {
        return;
    }
    let u = Underlay::new(3, false);
    let etcd = Etcd::start(&u);
    let prefix = format!("/{}", unique("ucp"));
    let plugins: Vec<String> = (0..2).map(|_| unique("usw")).collect();
    let leftovers: Vec<PluginLeftovers> = plugins.iter().map(|p| PluginLeftovers::new(p)).collect();
    let nodes: Vec<Node> = (0..2)
        .map(|i| {
            let args = leftovers[i].args();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Node::start_with(&u, i, &etcd, &prefix, &args)
        })
        .collect();
    nodes[0].create_network("blue", "198.18.65.0/24", 65);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes[1]
        .sw
        .json(&["network", "ls"])
        .to_string()
        .contains("\"blue\"")
    {
        assert!(Instant::now() < deadline, "host 1 never declared blue");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut daemons = Vec::new();
    for h in &u.hosts[..2] {
        // Docker sets FORWARD's policy only when it turns forwarding on itself.
        assert!(h.exec_ok(&["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]));
        let Some(d) = Dockerd::start_in(test, Some(h)) else {
            return;
        };
        daemons.push(d);
    }
    let refused = daemons[0].docker(&[
        "network",
        "create",
        "-d",
        &plugins[0],
        "-o",
        "uswitch.cluster=blue",
        "plain",
    ]);
    assert!(
        !refused.status.success(),
        "a cluster network on Docker's own IPAM"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--ipam-driver"), "{err}");
    for (d, p) in daemons.iter().zip(&plugins) {
        d.network(
            p,
            "blue",
            &[
                "--ipam-driver",
                p,
                "--ipam-opt",
                "uswitch.cluster=blue",
                "-o",
                "uswitch.cluster=blue",
            ],
        );
    }
    let mut addrs = Vec::new();
    let mut ctrs = Vec::new();
    for (h, d) in daemons.iter().enumerate() {
        for _ in 0..2 {
            let c = unique("dc");
            d.run(&c, "blue");
            addrs.push(d.address(&c, "IPAddress"));
            ctrs.push((h, c));
        }
    }
    let distinct: std::collections::BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(distinct.len(), 4, "an address was given twice: {addrs:?}");
    assert!(
        addrs.iter().all(|a| a.starts_with("198.18.65.")),
        "{addrs:?}"
    );
    for (i, (h, c)) in ctrs.iter().enumerate() {
        let to = &addrs[(i + 2) % 4];
        assert!(
            daemons[*h].pings(c, to),
            "{c} on host {h} cannot reach {to}"
        );
    }
    // Four containers and each host's gateway address hold addresses in etcd.
    let held = |n: &Node| n.cluster()["addresses"].as_u64().unwrap_or(0);
    nodes[0].wait_for(
        |s| s["addresses"].as_u64() >= Some(6),
        "counts six addresses",
    );
    let before = held(&nodes[0]);
    daemons[1].ok(&["rm", "-f", &ctrs[3].1]);
    nodes[0].wait_for(
        |s| s["addresses"].as_u64() == Some(before - 1),
        "sees the removed container's address given back",
    );
    drop(daemons);
}

const CNI: &str = env!("CARGO_BIN_EXE_uswitch-cni");

/// Runs uswitch-cni `command` for container `id` in `netns` with `conf`; (success, what
/// it printed).
fn cni(command: &str, id: &str, netns: &Netns, conf: &Value) -> (bool, Value) {
    let mut child = Command::new(CNI)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/usr/lib/cni")
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", format!("/run/netns/{}", netns.name))
        .env("CNI_IFNAME", "eth0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running uswitch-cni");
    use std::io::Write;
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.to_string().as_bytes());
    let out = child.wait_with_output().expect("uswitch-cni");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "$ CNI_COMMAND={command} uswitch-cni -> {}\n{text}",
        out.status
    );
    let printed = serde_json::from_str(&text).unwrap_or(Value::Null);
    (out.status.success(), printed)
}

/// CNI attachments on a cluster network (`"cluster": true`) take their addresses from
/// the cluster: two runtimes on two hosts get distinct ones, their containers reach each
/// other, and DEL gives the address back. An `ipam` section beside it is refused.
#[test]
fn cni_attachments_on_two_hosts_take_cluster_addresses() {
    let test = "cni_attachments_on_two_hosts_take_cluster_addresses";
    if !have_etcd(test) {
        return;
    }
    let u = Underlay::new(3, false);
    let etcd = Etcd::start(&u);
    let prefix = format!("/{}", unique("ucp"));
    let nodes: Vec<Node> = (0..2).map(|i| Node::start(&u, i, &etcd, &prefix)).collect();
    nodes[0].create_network("blue", "198.18.66.0/24", 66);
    nodes[1].wait_for(
        |s| s["networks"].as_array().is_some_and(|a| !a.is_empty()),
        "sees blue",
    );
    let conf = |n: &Node| {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "cblue",
            "type": "uswitch",
            "control": n.sw.control,
            "network": "blue",
            "cluster": true,
        })
    };
    let (a, b) = (Netns::new(), Netns::new());
    let mut with_ipam = conf(&nodes[0]);
    with_ipam["ipam"] = serde_json::json!({ "type": "host-local" });
    let (ok, err) = cni("ADD", "ctr-x", &a, &with_ipam);
    assert!(!ok && err["code"] == 7, "{err}");
    let mut addrs = Vec::new();
    for (i, ns) in [&a, &b].into_iter().enumerate() {
        let (ok, result) = cni("ADD", &format!("ctr-{i}"), ns, &conf(&nodes[i]));
        assert!(ok, "{result}");
        let ip = result["ips"][0]["address"].as_str().expect("an address");
        addrs.push(ip.split('/').next().unwrap_or_default().to_string());
    }
    assert_ne!(addrs[0], addrs[1], "one address given twice");
    assert!(
        addrs.iter().all(|a| a.starts_with("198.18.66.")),
        "{addrs:?}"
    );
    assert!(
        a.ping(&addrs[1]),
        "host 0's container cannot reach host 1's"
    );
    nodes[0].wait_for(|s| s["addresses"] == 2, "counts two addresses");
    let (ok, out) = cni("DEL", "ctr-0", &a, &conf(&nodes[0]));
    assert!(ok, "{out}");
    nodes[0].wait_for(|s| s["addresses"] == 1, "sees the address given back");
    let (ok, out) = cni("DEL", "ctr-1", &b, &conf(&nodes[1]));
    assert!(ok, "{out}");
}

/// The networks `node`'s switch has.
fn local_networks(node: &Node) -> Vec<String> {
    node.sw
        .json(&["network", "ls"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["name"].as_str().map(str::to_string))
        .collect()
}

/// A clean stop withdraws the node at once (well inside the TTL); restarted under the
/// same name with its state directory it takes its lease back, with the addresses on
/// it; cut off from etcd while the cluster changes and etcd compacts its history, it
/// comes back, finds its revision compacted, lists afresh and converges.
#[test]
fn cluster_nodes_withdraw_on_stop_take_their_lease_back_and_survive_compaction() {
    let test = "cluster_nodes_withdraw_on_stop_take_their_lease_back_and_survive_compaction";
    if !have_etcd(test) {
        return;
    }
    let u = Underlay::new(4, false);
    let etcd = Etcd::start(&u);
    let prefix = format!("/{}", unique("ucp"));
    let n0 = Node::start(&u, 0, &etcd, &prefix);
    let state3 = std::env::temp_dir().join(unique("ucls"));
    let state3_arg = state3.display().to_string();
    let _state3 = DirGuard(state3.clone());
    let mut n3 = Node::start_with(&u, 3, &etcd, &prefix, &["--state-dir", &state3_arg]);
    n0.create_network("blue", "198.18.67.0/24", 67);
    n3.wait_for(
        |s| s["networks"].as_array().is_some_and(|a| !a.is_empty()),
        "sees blue",
    );
    let mut ctrs = Containers(Vec::new());
    let (c0, c3) = (short_unique("cw"), short_unique("cw"));
    ctrs.add(&c0);
    ctrs.add(&c3);
    let a0 = n0.run(&c0, "blue").expect("a container on host 0");
    let a3 = n3.run(&c3, "blue").expect("a container on host 3");
    assert!(Netns::named(&c0).ping(&a3), "host 0 -> host 3");
    n0.wait_for(
        |s| {
            s["networks"][0]["members"]
                .as_array()
                .is_some_and(|m| m.len() == 2)
        },
        "sees both members",
    );
    let lease = n3.cluster()["lease"].clone();
    let held = n0.cluster()["addresses"].clone();

    // A clean stop: withdrawn at once, not after the TTL.
    n3.sw.stop();
    let stopped = Instant::now();
    loop {
        let s = n0.cluster();
        if s["nodes"].get("n3").is_none() && !remotes_of(&n0, "blue").contains(&u.addrs[3]) {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_millis(TTL * 1000 / 2),
            "n3 not withdrawn on a clean stop: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Back under the same name, within the TTL: the same lease, the addresses kept.
    n3 = Node::start_with(&u, 3, &etcd, &prefix, &["--state-dir", &state3_arg]);
    assert_eq!(n3.cluster()["lease"], lease, "the lease was not taken back");
    std::thread::sleep(Duration::from_secs(TTL + 1));
    assert_eq!(
        n0.cluster()["addresses"],
        held,
        "addresses went with the restart"
    );
    n0.wait_for(|s| s["nodes"].get("n3").is_some(), "sees n3 back");

    // Cut off; meanwhile a network is made and etcd compacts its history.
    let host3 = &u.hosts[3].name;
    sh(&["ip", "-n", host3, "link", "set", "ul", "down"]);
    n3.wait_for(|s| s["etcd"] != "connected", "notices it is cut off");
    // Two changes: compacting at the second leaves the first only in the compacted past.
    for (name, subnet, vni) in [
        ("green", "198.18.68.0/24", 68),
        ("red", "198.18.69.0/24", 69),
    ] {
        n0.create_network(name, subnet, vni);
    }
    n0.wait_for(
        |s| s["networks"].as_array().is_some_and(|a| a.len() == 3),
        "sees green and red",
    );
    let revision = n0.cluster()["revision"]
        .as_i64()
        .expect("a revision")
        .to_string();
    let compact = Command::new("ip")
        .args(["netns", "exec", &u.hosts[0].name, "etcdctl"])
        .args(["--endpoints", &format!("http://{}:2379", u.addrs[0])])
        .args(["compact", &revision])
        .output()
        .expect("etcdctl");
    assert!(
        compact.status.success(),
        "etcdctl compact: {}",
        String::from_utf8_lossy(&compact.stderr)
    );
    sh(&["ip", "-n", host3, "link", "set", "ul", "up"]);
    n3.sw.wait_for_log("compacted", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !["green", "red"]
        .iter()
        .all(|n| local_networks(&n3).contains(&n.to_string()))
    {
        assert!(
            Instant::now() < deadline,
            "n3 never declared green and red after the relist"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = a0;
}

/// Removes a directory on drop.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
