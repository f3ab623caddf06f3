//! uswitch as Docker's network driver, with real Docker: a private daemon of the test's
//! own (its own data and exec roots, socket and pidfile; no bridge, no iptables, no
//! registry: the image is imported from a root filesystem holding busybox).

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::docker::*;
use common::*;

/// uswitch serving the Docker driver under a name unique to this run (Docker looks
/// plugins up in /run/docker/plugins), and what to clean if it is killed.
fn driver() -> (String, PluginLeftovers, Uswitch) {
    let (plugin, leftovers, args) = plugin_args();
    let sw = Uswitch::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (plugin, leftovers, sw)
}

/// A plugin name unique to this run, what to clean after it, and the flags that serve
/// it (for a test that starts uswitch more than once with them).
fn plugin_args() -> (String, PluginLeftovers, Vec<String>) {
    let plugin = unique("usw");
    let leftovers = PluginLeftovers::new(&plugin);
    let args = leftovers.args();
    (plugin, leftovers, args)
}

/// Sends `body` to the plugin at `path` as one HTTP POST; the reply's body.
fn post(path: &str, url: &str, body: &[u8]) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("the plugin socket");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A body the plugin refuses partway is never read to its end: the write gives up.
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let head = format!(
        "POST {url} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

/// The issue's seed scenario: two networks isolated (by IP, and by name), `network
/// connect` puts container2 on both, and it then reaches container1 by name; `network
/// disconnect` takes that away. Bad input is refused with a message Docker shows, and
/// `docker network rm` leaves nothing behind in uswitch.
#[test]
fn docker_networks_are_isolated_and_connect_joins_them() {
    if !privileged("docker_networks_are_isolated_and_connect_joins_them") {
        return;
    }
    let Some(d) = Dockerd::start("docker_networks_are_isolated_and_connect_joins_them") else {
        return;
    };
    // Docker looks plugins up in /run/docker/plugins: the socket goes there, under a
    // name unique to this run.
    let (plugin, _leftovers, mut sw) = driver();
    let sock = format!("/run/docker/plugins/{plugin}.sock");
    let (n1, n2) = (unique("dn"), unique("dn"));
    d.network(&plugin, &n1, &["--subnet", "198.18.40.0/24"]);
    d.network(&plugin, &n2, &["--subnet", "198.18.41.0/24"]);
    let (c1, c2) = (unique("dc"), unique("dc"));
    d.run(&c1, &n1);
    d.run(&c2, &n2);
    let addr1 = d.address(&c1, "IPAddress");
    assert!(addr1.starts_with("198.18.40."), "{addr1}");
    // Each container's eth0 is a TAP uswitch holds, with Docker's MAC.
    let ports = sw.json(&["show", "ports"]);
    let endpoints = ports
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("ue"))
        .count();
    assert_eq!(endpoints, 2, "{ports}");
    assert!(
        !d.pings(&c2, &addr1),
        "separate networks reached each other"
    );
    assert!(
        !d.pings(&c2, &c1),
        "a name of another network resolved and answered"
    );
    d.ok(&["network", "connect", &n1, &c2]);
    assert!(
        d.pings(&c2, &addr1),
        "container2 on both networks cannot reach container1"
    );
    assert!(
        d.pings(&c2, &c1),
        "Docker's DNS did not resolve container1 on a uswitch network"
    );
    d.ok(&["network", "disconnect", &n1, &c2]);
    assert!(!d.pings(&c2, &addr1));

    // Bad input: each a message naming what is wrong.
    let out = d.docker(&[
        "network",
        "create",
        "-d",
        &plugin,
        "-o",
        "uswitch.bogus=1",
        "bad1",
    ]);
    one_line_failure(&out, "unknown option uswitch.bogus");
    let out = d.docker(&[
        "network",
        "create",
        "-d",
        &plugin,
        "-o",
        "uswitch.vni=99999999",
        "bad2",
    ]);
    one_line_failure(&out, "does not fit 24 bits");
    let reply = post(&sock, "/NetworkDriver.CreateNetwork", b"{not json");
    assert!(reply.contains("\"Err\""), "{reply}");
    assert!(post(&sock, "/Plugin.Activate", b"").contains("NetworkDriver"));
    let second = std::process::Command::new(USWITCH)
        .args(["--docker-plugin", &plugin, "--control", &control_path()])
        .output()
        .unwrap();
    one_line_failure(&second, "serves the Docker plugin");

    // docker network rm takes the gateway and the network out of uswitch.
    d.ok(&["rm", "-f", &c1, &c2]);
    d.ok(&["network", "rm", &n1, &n2]);
    let left = sw.json(&["show", "ports"]);
    assert_eq!(left.as_array().unwrap().len(), 0, "{left}");
    assert_eq!(sw.json(&["network", "ls"]).as_array().unwrap().len(), 0);
    // Stopped, uswitch takes its isolation table and its plugin socket with it.
    assert!(sw.stop().success());
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains(&format!("uswitch_{plugin}")),
        "the isolation table outlived uswitch"
    );
    assert!(
        !std::path::Path::new(&sock).exists(),
        "the plugin socket outlived uswitch"
    );
}

/// Outbound NAT and the gateway: the host reaches a container through its network's
/// gateway; a container reaches a "WAN" host (a namespace behind a veth, in
/// 198.19.0.0/16) through NAT, and the WAN host sees the host's address as the source; a
/// container of an `--internal` network has no way out. `show nat` lists the rule.
#[test]
fn docker_containers_reach_out_through_nat_and_internal_networks_do_not() {
    let test = "docker_containers_reach_out_through_nat_and_internal_networks_do_not";
    if !privileged(test) {
        return;
    }
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let (plugin, _leftovers, sw) = driver();
    let wan = Wan::new(None);
    let (n1, n3) = (unique("dn"), unique("dn"));
    d.network(&plugin, &n1, &["--subnet", "198.18.42.0/24"]);
    d.network(&plugin, &n3, &["--internal", "--subnet", "198.18.43.0/24"]);
    let (out, inside) = (unique("dc"), unique("dc"));
    d.run(&out, &n1);
    d.run(&inside, &n3);
    let addr = d.address(&out, "IPAddress");
    assert!(
        sh_ok(&["ping", "-c", "1", "-W", "2", &addr]),
        "the host cannot reach {addr}"
    );
    let nat = sw.json(&["show", "nat"]);
    let rules = nat.as_array().unwrap();
    assert_eq!(rules.len(), 1, "{nat}");
    assert_eq!(rules[0]["subnet"], "198.18.42.0/24");
    assert_eq!(
        source_of_a_connection_from(&wan, &d, &out).as_deref(),
        Some("198.19.0.1"),
        "the WAN host must see the host's address"
    );
    assert!(
        !d.pings(&inside, "198.19.0.2"),
        "a container of an --internal network reached the WAN"
    );
    // -p: the WAN host connects to this host's WAN address and port and reaches the
    // container's server; once the container is gone, it does not.
    let server = unique("dc");
    d.serve_hello(&server, &n1, "18080:80");
    assert_eq!(
        wan.fetch(18080).as_deref().map(str::trim),
        Some("hello"),
        "-p 18080:80 did not reach the container"
    );
    d.ok(&["rm", "-f", &server]);
    assert_eq!(
        wan.fetch(18080),
        None,
        "the published port outlived its container"
    );
    d.ok(&["rm", "-f", &out, &inside]);
    d.ok(&["network", "rm", &n1, &n3]);
    assert_eq!(sw.json(&["show", "nat"]).as_array().unwrap().len(), 0);
}

/// The WAN host accepts one connection, which `container` makes; where it came from.
fn source_of_a_connection_from(wan: &Wan, d: &Dockerd, container: &str) -> Option<String> {
    let listener = wan.ns.spawn(|| {
        let l = std::net::TcpListener::bind("198.19.0.2:5000").expect("listen");
        l.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match l.accept() {
                Ok((_, peer)) => return Some(peer.ip().to_string()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => return None,
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    d.docker(&[
        "exec",
        container,
        "sh",
        "-c",
        "echo hi | nc -w 2 198.19.0.2 5000",
    ]);
    listener.join().expect("the WAN host")
}

/// `iptables -S` (filter table) in `ns`: Docker's rules and anyone else's.
fn iptables_rules(ns: &Netns) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "iptables", "-w", "-S"])
        .output()
        .expect("iptables");
    assert!(out.status.success(), "iptables -S");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// On a host where Docker runs with its defaults (its own iptables rules, `FORWARD`
/// policy `DROP`, a `docker0`), all in a namespace standing for that host: a uswitch
/// network still reaches the WAN through NAT and publishes a port, its containers and
/// those of Docker's bridge do not reach each other, Docker's own bridge still works, and
/// uswitch adds only its tagged rules to `DOCKER-USER` and takes them away when it stops.
#[test]
fn docker_networks_live_beside_dockers_own_iptables_rules() {
    let test = "docker_networks_live_beside_dockers_own_iptables_rules";
    if !privileged(test) {
        return;
    }
    let host = Netns::new();
    // Docker sets the DROP policy when it turns forwarding on itself; a new namespace
    // may inherit it on from the root namespace.
    assert!(host.exec_ok(&["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]));
    let Some(d) = Dockerd::start_in(test, Some(&host)) else {
        return;
    };
    let wan = Wan::new(Some(&host));
    let docker_rules = iptables_rules(&host);
    assert!(
        docker_rules.iter().any(|r| r == "-P FORWARD DROP")
            && docker_rules.iter().any(|r| r == "-N DOCKER-USER"),
        "Docker did not set up its rules: {docker_rules:?}"
    );
    let plugin = unique("usw");
    let leftovers = PluginLeftovers::new(&plugin);
    let args = leftovers.args();
    let mut sw = Uswitch::start_in(&host, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let n1 = unique("dn");
    d.network(&plugin, &n1, &["--subnet", "198.18.44.0/24"]);
    let (out, bridged) = (unique("dc"), unique("dc"));
    d.run(&out, &n1);
    d.run(&bridged, "bridge");
    let (addr, bridged_addr) = (
        d.address(&out, "IPAddress"),
        d.address(&bridged, "IPAddress"),
    );
    assert!(bridged_addr.starts_with("198.19.200."), "{bridged_addr}");

    assert_eq!(
        source_of_a_connection_from(&wan, &d, &out).as_deref(),
        Some("198.19.0.1"),
        "past Docker's FORWARD policy, the WAN host must see the host's address"
    );
    let server = unique("dc");
    d.serve_hello(&server, &n1, "18081:80");
    assert_eq!(
        wan.fetch(18081).as_deref().map(str::trim),
        Some("hello"),
        "-p 18081:80 did not pass Docker's FORWARD policy"
    );
    assert!(
        !d.pings(&bridged, &addr) && !d.pings(&out, &bridged_addr),
        "a container of Docker's bridge and one of a uswitch network reached each other"
    );
    // Docker's own bridge is as it was.
    assert_eq!(
        source_of_a_connection_from(&wan, &d, &bridged).as_deref(),
        Some("198.19.0.1"),
        "Docker's bridge no longer reaches out"
    );
    // uswitch added its three tagged rules at the top of DOCKER-USER and nothing else.
    let with_uswitch = iptables_rules(&host);
    let tag = format!("uswitch_{plugin}");
    let added: Vec<&String> = with_uswitch
        .iter()
        .filter(|r| !docker_rules.contains(r))
        .collect();
    assert_eq!(added.len(), 3, "{added:?}");
    assert!(
        added
            .iter()
            .all(|r| r.starts_with("-A DOCKER-USER") && r.contains(&tag)),
        "{added:?}"
    );
    assert!(docker_rules.iter().all(|r| with_uswitch.contains(r)));
    // Taken away by someone, they come back within the driver's next look.
    sh(&[
        "ip",
        "netns",
        "exec",
        &host.name,
        "iptables",
        "-w",
        "-F",
        "DOCKER-USER",
    ]);
    sh(&[
        "ip",
        "netns",
        "exec",
        &host.name,
        "iptables",
        "-w",
        "-A",
        "DOCKER-USER",
        "-j",
        "RETURN",
    ]);
    let deadline = Instant::now() + Duration::from_secs(12);
    while iptables_rules(&host) != with_uswitch {
        assert!(
            Instant::now() < deadline,
            "the DOCKER-USER rules did not come back"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    d.ok(&["rm", "-f", &server, &out]);
    d.ok(&["network", "rm", &n1]);
    assert!(sw.stop().success());
    assert_eq!(
        iptables_rules(&host),
        docker_rules,
        "uswitch left rules of its own, or took Docker's"
    );
}

/// A dual-stack network: 50 MB of TCP between two containers, content verified, over
/// IPv4 and over IPv6 (the containers' TAPs carry offloads: the data crosses as GSO
/// frames), and the IPv6 gateway answers.
#[test]
fn docker_dual_stack_networks_carry_bulk_tcp_intact() {
    let test = "docker_dual_stack_networks_carry_bulk_tcp_intact";
    if !privileged(test) {
        return;
    }
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let (plugin, _leftovers, _sw) = driver();
    let net = unique("dn");
    d.network(
        &plugin,
        &net,
        &[
            "--ipv6",
            "--subnet",
            "198.18.44.0/24",
            "--subnet",
            "2001:2:0:44::/64",
        ],
    );
    let (a, b) = (unique("dc"), unique("dc"));
    d.run(&a, &net);
    d.run(&b, &net);
    let (b4, b6) = (
        d.address(&b, "IPAddress"),
        d.address(&b, "GlobalIPv6Address"),
    );
    assert!(b6.starts_with("2001:2:0:44:"), "{b6}");
    assert!(d.pings(&a, &b4));
    assert!(d
        .docker(&["exec", &a, "ping6", "-c", "1", "-W", "3", &b6])
        .status
        .success());
    assert!(
        d.docker(&["exec", &a, "ping6", "-c", "1", "-W", "3", "2001:2:0:44::1"])
            .status
            .success(),
        "the IPv6 gateway on the host port does not answer"
    );
    d.ok(&[
        "exec",
        &a,
        "sh",
        "-c",
        "dd if=/dev/urandom of=/data bs=1M count=50 2>/dev/null",
    ]);
    let sent = d.ok(&["exec", &a, "md5sum", "/data"]);
    for (port, peer) in [("5001", b4.clone()), ("5002", b6.clone())] {
        // The receiver writes what arrives (busybox's nc ends at its stdin's end: keep it
        // open); the sender ends after the file.
        d.ok(&[
            "exec",
            "-d",
            &b,
            "sh",
            "-c",
            &format!("sleep 60 | nc -l -p {port} > /got{port}"),
        ]);
        std::thread::sleep(Duration::from_millis(300));
        d.ok(&["exec", &a, "sh", "-c", &format!("nc {peer} {port} < /data")]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let got = loop {
            let sum = d.ok(&[
                "exec",
                &b,
                "sh",
                "-c",
                &format!("md5sum /got{port} 2>/dev/null || true"),
            ]);
            let size = d.ok(&[
                "exec",
                &b,
                "sh",
                "-c",
                &format!("wc -c < /got{port} 2>/dev/null || echo 0"),
            ]);
            if size.trim() == "52428800" || Instant::now() > deadline {
                break sum;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(
            got.split_whitespace().next(),
            sent.split_whitespace().next(),
            "50 MB to {peer} arrived changed or short"
        );
    }
    d.ok(&["rm", "-f", &a, &b]);
    d.ok(&["network", "rm", &net]);
}

/// Restarts keep containers connected: uswitch is killed with SIGKILL while two
/// containers talk; the containers keep their eth0 (a persistent TAP) with its MAC and
/// address; a new uswitch with the same flags reopens each TAP where it lives now, from
/// its state file, and the ping resumes within two seconds; a new `docker run` on the
/// network works.
#[test]
fn docker_containers_keep_their_network_across_a_kill_9() {
    let test = "docker_containers_keep_their_network_across_a_kill_9";
    if !privileged(test) {
        return;
    }
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let (plugin, _leftovers, args) = plugin_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sw = Uswitch::start(&args);
    let net = unique("dn");
    d.network(&plugin, &net, &["--subnet", "198.18.45.0/24"]);
    let (c1, c2) = (unique("dc"), unique("dc"));
    d.run(&c1, &net);
    d.run(&c2, &net);
    let addr2 = d.address(&c2, "IPAddress");
    assert!(d.pings(&c1, &addr2));
    let mac1 = d.ok(&["exec", &c1, "cat", "/sys/class/net/eth0/address"]);
    sw.signal(libc::SIGKILL);
    let _ = sw.stop();
    // The interface outlives the switch: it is the container's.
    let still = d.ok(&["exec", &c1, "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(still, mac1, "eth0 vanished or changed with uswitch");
    let sw2 = Uswitch::start(&args);
    let started = Instant::now();
    let mut resumed = None;
    while started.elapsed() < Duration::from_secs(5) {
        let ok = d
            .docker(&["exec", &c1, "ping", "-c", "1", "-W", "1", &addr2])
            .status
            .success();
        if ok {
            resumed = Some(started.elapsed());
            break;
        }
    }
    let resumed = resumed.expect("traffic did not resume after the restart");
    assert!(
        resumed < Duration::from_secs(2),
        "traffic resumed after {resumed:?}"
    );
    let ports = sw2.json(&["show", "ports"]);
    assert_eq!(
        ports
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"].as_str().unwrap().starts_with("ue"))
            .count(),
        2,
        "{ports}"
    );
    let c3 = unique("dc");
    d.run(&c3, &net);
    assert!(
        d.pings(&c3, &addr2),
        "a new container on the restored network"
    );
    d.ok(&["rm", "-f", &c1, &c2, &c3]);
    d.ok(&["network", "rm", &net]);
    assert_eq!(sw2.json(&["show", "ports"]).as_array().unwrap().len(), 0);
}

/// `uswitch --take-over` under Docker: the plugin's nftables table keeps its published
/// port and its outbound NAT at every moment of the hand-over (the new switch once
/// emptied the table and filled it again after restoring its networks), and the
/// published port answers afterwards.
#[test]
fn a_take_over_keeps_published_ports_and_nat_in_place() {
    let test = "a_take_over_keeps_published_ports_and_nat_in_place";
    if !privileged(test) {
        return;
    }
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let (plugin, _leftovers, args) = plugin_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let control = control_path();
    let mut old = Uswitch::start_at(&control, &args);
    let wan = Wan::new(None);
    let net = unique("dn");
    d.network(&plugin, &net, &["--subnet", "198.18.46.0/24"]);
    let server = unique("dc");
    d.serve_hello(&server, &net, "18083:80");
    assert_eq!(
        wan.fetch(18083).as_deref().map(str::trim),
        Some("hello"),
        "-p 18083:80 before the take-over"
    );
    // Looks at the table, as fast as nft answers, until told to stop: how many looks,
    // and the ones that lacked the port's DNAT or the network's masquerade.
    let table = format!("uswitch_{plugin}");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut looks, mut lacking) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = Command::new("nft")
                    .args(["list", "table", "inet", &table])
                    .output()
                    .expect("running nft");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                looks += 1;
                if !(text.contains("dport 18083") && text.contains("masquerade")) {
                    lacking.push(text);
                }
            }
            (looks, lacking)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut args_new = args.clone();
    args_new.push("--take-over");
    let mut new = Uswitch::start_at(&control, &args_new);
    new.wait_for_log("the old switch has exited", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while new.json(&["show", "nat"]).as_array().map_or(0, Vec::len) == 0 {
        assert!(Instant::now() < deadline, "the new switch has no NAT");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (looks, lacking) = watcher.join().expect("the table's watcher");
    eprintln!("looked at the table {looks} times across the take-over");
    assert!(looks >= 10, "only {looks} looks at the table");
    assert!(
        lacking.is_empty(),
        "{} of {looks} looks found the table without the port or the NAT; the first:\n{}",
        lacking.len(),
        lacking[0]
    );
    let exited = old.stop_status_within(Duration::from_secs(5));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    assert_eq!(
        wan.fetch(18083).as_deref().map(str::trim),
        Some("hello"),
        "-p 18083:80 after the take-over"
    );
    d.ok(&["rm", "-f", &server]);
    d.ok(&["network", "rm", &net]);
}

/// A state file that is not uswitch's is refused with a message naming it, never half
/// applied, and kept aside (`*.bad`) rather than overwritten by the next save.
#[test]
fn a_corrupt_docker_state_file_is_refused_and_kept() {
    if !privileged("a_corrupt_docker_state_file_is_refused_and_kept") {
        return;
    }
    let plugin = unique("usw");
    let leftovers = PluginLeftovers::new(&plugin);
    std::fs::create_dir_all(leftovers.state_dir()).unwrap();
    let file = leftovers.state_dir().join(format!("docker-{plugin}.json"));
    std::fs::write(&file, b"{\"networks\": [torn").unwrap();
    let args = leftovers.args();
    let mut sw = Uswitch::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let line = sw.wait_for_log("restoring the Docker networks", Duration::from_secs(10));
    assert!(line.contains("is not uswitch's"), "{line}");
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(
        file.with_extension("json.bad").exists(),
        "the bad file was not kept"
    );
    assert_eq!(sw.json(&["network", "ls"]).as_array().unwrap().len(), 0);
    assert!(sw.stop().success());
}

/// The plugin socket abused while the driver keeps answering Docker: a 2 MiB body, a
/// client that sends its request a byte at a time, a hundred clients at once that never
/// finish their request, hostile JSON on every endpoint (network driver and IPAM). Each
/// hostile request gets an `Err` Docker can show; `Plugin.Activate` is answered
/// throughout; the switch still answers its control socket.
#[test]
fn the_docker_plugin_socket_survives_abuse() {
    if !privileged("the_docker_plugin_socket_survives_abuse") {
        return;
    }
    let (plugin, _leftovers, sw) = driver();
    let sock = format!("/run/docker/plugins/{plugin}.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "no plugin socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Clients that start a request and never finish it.
    let stuck: Vec<_> = (0..100)
        .filter_map(|_| {
            let mut s = std::os::unix::net::UnixStream::connect(&sock).ok()?;
            s.write_all(b"POST /Plugin.Activate HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
                .ok()?;
            Some(s)
        })
        .collect();
    // One that sends its request a byte every 20 ms.
    let slow = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
            // An answer that never comes fails the test below instead of hanging it.
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let req = b"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            for b in req {
                s.write_all(&[*b]).expect("a byte");
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
    };
    let big = post(&sock, "/NetworkDriver.CreateNetwork", &vec![b'{'; 2 << 20]);
    // Refused at 1 MiB and never read to its end: an Err, or the connection dropped;
    // either way the plugin goes on answering (checked below).
    assert!(
        big.is_empty() || big.contains("\"Err\""),
        "a 2 MiB body: {big}"
    );
    let hostile: [&[u8]; 6] = [
        b"{not json",
        b"\xff\xfe",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        br#"{"NetworkID": 7}"#,
        br#"{"NetworkID": "../../etc", "EndpointID": "x"}"#,
        br#"{"PoolID": "", "Address": "not an address"}"#,
    ];
    let endpoints = [
        "/NetworkDriver.CreateNetwork",
        "/NetworkDriver.DeleteNetwork",
        "/NetworkDriver.CreateEndpoint",
        "/NetworkDriver.Join",
        "/NetworkDriver.ProgramExternalConnectivity",
        "/IpamDriver.RequestPool",
        "/IpamDriver.RequestAddress",
        "/IpamDriver.ReleaseAddress",
    ];
    for url in endpoints {
        for body in hostile {
            let reply = post(&sock, url, body);
            assert!(reply.contains("\"Err\""), "{url} {body:?}: {reply}");
        }
        assert!(post(&sock, "/Plugin.Activate", b"").contains("NetworkDriver"));
    }
    let slow = slow.join().expect("the slow client");
    assert!(slow.contains("IpamDriver"), "the slow client: {slow}");
    assert_eq!(
        sw.json(&["show", "ports"]).as_array().map(Vec::len),
        Some(0)
    );
    drop(stuck);
}
