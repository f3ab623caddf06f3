//! End to end: real kernel network stacks in namespaces, talking through the real
//! `uswitch` binary over TAPs that uswitch holds and the test moves into the namespaces.

mod common;

use std::thread;
use std::time::Duration;

use common::*;

/// A switch with one TAP per (network) and a namespace holding each TAP.
struct Lab {
    switch: Uswitch,
    taps: Vec<String>,
    hosts: Vec<Netns>,
}

/// Starts uswitch with a port per entry of `networks` and moves port i into namespace i
/// with MAC 02:00:00:00:00:(i+1) and address `addrs[i]`.
fn lab(networks: &[&str], addrs: &[&str], extra: &[&str]) -> Lab {
    let taps: Vec<String> = networks.iter().map(|_| unique("ut")).collect();
    let specs: Vec<String> = taps
        .iter()
        .zip(networks)
        .map(|(t, n)| format!("{t}@{n}"))
        .collect();
    let mut args = Vec::new();
    for s in &specs {
        args.push("--port");
        args.push(s.as_str());
    }
    args.extend_from_slice(extra);
    let switch = Uswitch::start(&args);
    let hosts: Vec<Netns> = taps.iter().map(|_| Netns::new()).collect();
    for (i, (tap, host)) in taps.iter().zip(&hosts).enumerate() {
        host.adopt(tap, &host_mac(i), addrs[i]);
    }
    Lab {
        switch,
        taps,
        hosts,
    }
}

fn host_mac(i: usize) -> String {
    format!("02:00:00:00:00:{:02x}", i + 1)
}

#[test]
fn switch_carries_a_verified_tcp_stream_both_ways() {
    if !privileged("switch_carries_a_verified_tcp_stream_both_ways") {
        return;
    }
    let lab = lab(
        &["default", "default"],
        &["198.18.0.1/24", "198.18.0.2/24"],
        &[],
    );
    assert!(lab.hosts[0].ping("198.18.0.2"));
    let took = tcp_exchange(&lab.hosts[0], &lab.hosts[1], "198.18.0.2", 5001, 50 << 20);
    eprintln!("50 MiB each way, verified, in {took:?}");
}

#[test]
fn switch_learns_and_stops_flooding_unicast() {
    if !privileged("switch_learns_and_stops_flooding_unicast") {
        return;
    }
    let mut lab = lab(
        &["default", "default", "default"],
        &["198.18.0.1/24", "198.18.0.2/24", "198.18.0.3/24"],
        &[],
    );
    // The first exchange teaches the switch where hosts 1 and 2 are.
    assert!(lab.hosts[0].ping("198.18.0.2"));
    let capture = Capture::start(&lab.hosts[2], &lab.taps[2]);
    tcp_exchange(&lab.hosts[0], &lab.hosts[1], "198.18.0.2", 5002, 4 << 20);
    assert!(lab.hosts[1].ping("198.18.0.1"));
    // Positive control: the third host does hear a broadcast from host 1.
    send_broadcast_probe(
        &lab.hosts[0],
        &lab.taps[0],
        mac(&host_mac(0)),
        b"learn-probe",
    );
    thread::sleep(Duration::from_millis(300));
    let seen = capture.finish();
    assert!(
        saw_probe(&seen, b"learn-probe"),
        "the capture on host 3 saw nothing"
    );
    let (m1, m2) = (mac(&host_mac(0)), mac(&host_mac(1)));
    let leaked = seen
        .iter()
        .filter(|f| (f.src == m1 && f.dst == m2) || (f.src == m2 && f.dst == m1))
        .count();
    assert_eq!(
        leaked, 0,
        "host 3 received {leaked} unicast frames between hosts 1 and 2"
    );
    let stats = lab.switch.port_stats(1);
    let to_third = stats[&lab.taps[2]]["tx_frames"];
    // (With offloads a frame may be a 64 KiB GSO frame: count bytes.)
    let from_first = stats[&lab.taps[0]]["rx_bytes"];
    assert!(from_first > 4 << 20, "host 1 sent only {from_first} bytes");
    assert!(to_third < 50, "host 3 was sent {to_third} frames");
}

#[test]
fn networks_are_isolated() {
    if !privileged("networks_are_isolated") {
        return;
    }
    // Hosts 1 and 2 on default, hosts 3 and 4 on blue, all in one subnet.
    let mut lab = lab(
        &["default", "default", "blue", "blue"],
        &[
            "198.18.0.1/24",
            "198.18.0.2/24",
            "198.18.0.3/24",
            "198.18.0.4/24",
        ],
        &[],
    );
    let caps: Vec<Capture> = (0..4)
        .map(|i| Capture::start(&lab.hosts[i], &lab.taps[i]))
        .collect();
    // Within a network: reachable.
    assert!(lab.hosts[0].ping("198.18.0.2"));
    assert!(lab.hosts[2].ping("198.18.0.4"));
    // Across: not, in either direction.
    assert!(!lab.hosts[0].ping("198.18.0.3"));
    assert!(!lab.hosts[3].ping("198.18.0.2"));
    send_broadcast_probe(
        &lab.hosts[0],
        &lab.taps[0],
        mac(&host_mac(0)),
        b"from-default",
    );
    send_broadcast_probe(&lab.hosts[2], &lab.taps[2], mac(&host_mac(2)), b"from-blue");
    thread::sleep(Duration::from_millis(300));
    let seen: Vec<Vec<Seen>> = caps.into_iter().map(Capture::finish).collect();
    assert!(saw_probe(&seen[1], b"from-default"));
    assert!(saw_probe(&seen[3], b"from-blue"));
    for i in [2, 3] {
        assert!(
            !saw_probe(&seen[i], b"from-default"),
            "default's broadcast reached blue"
        );
        let from_default = seen[i]
            .iter()
            .filter(|f| f.src == mac(&host_mac(0)) || f.src == mac(&host_mac(1)))
            .count();
        assert_eq!(
            from_default,
            0,
            "host {} on blue received frames from default",
            i + 1
        );
    }
    for i in [0, 1] {
        assert!(
            !saw_probe(&seen[i], b"from-blue"),
            "blue's broadcast reached default"
        );
        let from_blue = seen[i]
            .iter()
            .filter(|f| f.src == mac(&host_mac(2)) || f.src == mac(&host_mac(3)))
            .count();
        assert_eq!(
            from_blue,
            0,
            "host {} on default received frames from blue",
            i + 1
        );
    }
    let stats = lab.switch.port_stats(2);
    assert!(stats[&lab.taps[2]]["rx_frames"] > 0);
}

#[test]
fn a_container_on_two_networks_reaches_both() {
    if !privileged("a_container_on_two_networks_reaches_both") {
        return;
    }
    let (a, b, m0, m1) = (unique("ut"), unique("ut"), unique("ut"), unique("ut"));
    let _switch = Uswitch::start(&[
        "--port",
        &format!("{a}@default"),
        "--port",
        &format!("{b}@blue"),
        "--port",
        &format!("{m0}@default"),
        "--port",
        &format!("{m1}@blue"),
    ]);
    let (ha, hb, multi) = (Netns::new(), Netns::new(), Netns::new());
    ha.adopt(&a, "02:00:00:00:00:0a", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:0b", "198.18.2.1/24");
    multi.adopt(&m0, "02:00:00:00:00:10", "198.18.0.10/24");
    multi.adopt(&m1, "02:00:00:00:00:11", "198.18.2.10/24");
    assert!(
        multi.ping("198.18.0.1"),
        "the container cannot reach default"
    );
    assert!(multi.ping("198.18.2.1"), "the container cannot reach blue");
    assert!(ha.ping("198.18.0.10"));
    assert!(hb.ping("198.18.2.10"));
    tcp_exchange(&ha, &multi, "198.18.0.10", 5003, 1 << 20);
    tcp_exchange(&hb, &multi, "198.18.2.10", 5004, 1 << 20);
    // The container does not route: the two networks stay apart.
    assert!(!ha.ping("198.18.2.1"));
}

#[test]
fn deleting_a_namespace_mid_traffic_leaves_the_others_working() {
    if !privileged("deleting_a_namespace_mid_traffic_leaves_the_others_working") {
        return;
    }
    let mut lab = lab(
        &["default", "default", "default"],
        &["198.18.0.1/24", "198.18.0.2/24", "198.18.0.3/24"],
        &[],
    );
    assert!(lab.hosts[2].ping("198.18.0.1"));
    let (h0, h1) = (lab.hosts[0].handle(), lab.hosts[1].handle());
    let stream = thread::spawn(move || tcp_exchange(&h0, &h1, "198.18.0.2", 5005, 256 << 20));
    thread::sleep(Duration::from_millis(100));
    let gone = lab.taps[2].clone();
    lab.hosts[2].delete();
    lab.switch
        .wait_for_log(&format!("detached port {gone}"), Duration::from_secs(20));
    assert!(
        !stream.is_finished(),
        "the stream ended before the namespace went: not mid-traffic"
    );
    stream
        .join()
        .expect("the stream between the remaining hosts failed");
    assert!(lab.hosts[0].ping("198.18.0.2"));
    assert!(lab.hosts[1].ping("198.18.0.1"));
    let stats = lab.switch.port_stats(1);
    assert!(
        !stats.contains_key(&gone),
        "the vanished port is still listed"
    );
    assert_eq!(stats.len(), 2);
}

#[test]
fn sigterm_removes_created_taps_leaves_existing_ones_and_exits_zero() {
    if !privileged("sigterm_removes_created_taps_leaves_existing_ones_and_exits_zero") {
        return;
    }
    let existing = PersistentTap::new();
    let (kept_here, moved) = (unique("ut"), unique("ut"));
    let mut switch = Uswitch::start(&[
        "--port",
        &kept_here,
        "--port",
        &moved,
        "--port",
        &format!("{}@blue", existing.name),
    ]);
    let ns = Netns::new();
    ns.adopt(&moved, "02:00:00:00:00:01", "198.18.0.1/24");
    assert!(link_exists(None, &kept_here));
    assert!(link_exists(Some(&ns.name), &moved));
    let status = switch.stop();
    assert!(status.success(), "uswitch exited with {status}");
    assert!(
        !link_exists(None, &kept_here),
        "created TAP {kept_here} was left behind"
    );
    assert!(
        !link_exists(Some(&ns.name), &moved),
        "created TAP {moved} was left in the namespace"
    );
    assert!(
        link_exists(None, &existing.name),
        "the pre-existing TAP was removed"
    );
    let log = switch.log().join("\n");
    assert!(log.contains(&format!("removed TAP {kept_here}")));
    assert!(log.contains(&format!("left TAP {} in place", existing.name)));
}

#[test]
fn sigint_stops_the_switch_too() {
    if !privileged("sigint_stops_the_switch_too") {
        return;
    }
    let tap = unique("ut");
    let switch = Uswitch::start(&["--port", &tap]);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(switch.pid() as i32, libc::SIGINT) };
    let mut switch = switch;
    let status = switch.stop();
    assert!(status.success());
    assert!(!link_exists(None, &tap));
}

#[test]
fn a_tap_deleted_with_ip_link_del_is_detached() {
    if !privileged("a_tap_deleted_with_ip_link_del_is_detached") {
        return;
    }
    let mut lab = lab(
        &["default", "default"],
        &["198.18.0.1/24", "198.18.0.2/24"],
        &[],
    );
    let doomed = unique("ut");
    let added = lab.switch.json(&["port", "add", &doomed]);
    assert_eq!(added["created"], true);
    sh(&["ip", "link", "del", &doomed]);
    lab.switch
        .wait_for_log(&format!("detached port {doomed}"), Duration::from_secs(10));
    assert!(
        lab.hosts[0].ping("198.18.0.2"),
        "the other ports stopped forwarding"
    );
    let ports = lab.switch.json(&["show", "ports"]);
    assert_eq!(ports.as_array().unwrap().len(), 2, "{ports}");
}

#[test]
fn busy_poll_mode_forwards_like_the_default() {
    if !privileged("busy_poll_mode_forwards_like_the_default") {
        return;
    }
    let lab = lab(
        &["default", "default"],
        &["198.18.0.1/24", "198.18.0.2/24"],
        &["--busy-poll", "2000"],
    );
    assert!(lab.hosts[0].ping("198.18.0.2"));
    tcp_exchange(&lab.hosts[0], &lab.hosts[1], "198.18.0.2", 5010, 8 << 20);
}

#[test]
fn with_two_workers_networks_stay_apart_and_a_flow_keeps_its_order() {
    if !privileged("with_two_workers_networks_stay_apart_and_a_flow_keeps_its_order") {
        return;
    }
    // Ports are spread as they come: 0 and 2 on worker 0, 1 and 3 on worker 1, so each
    // network's two hosts sit on different workers and every frame crosses between them.
    let mut lab = lab(
        &["default", "default", "blue", "blue"],
        &[
            "198.18.0.1/24",
            "198.18.0.2/24",
            "198.18.0.3/24",
            "198.18.0.4/24",
        ],
        &["--workers", "2"],
    );
    let ports = lab.switch.json(&["show", "ports"]);
    let workers: Vec<u64> = lab
        .taps
        .iter()
        .map(|t| port(&ports, t)["worker"].as_u64().expect("a worker"))
        .collect();
    assert_eq!(workers, [0, 1, 0, 1], "{ports}");
    assert!(lab.hosts[0].ping("198.18.0.2"));
    assert!(lab.hosts[2].ping("198.18.0.4"));
    assert!(!lab.hosts[0].ping("198.18.0.3"));
    assert!(!lab.hosts[3].ping("198.18.0.2"));

    // One flow of numbered frames from host 1 to host 2, and at the same time floods on
    // both networks from both workers.
    let caps: Vec<Capture> = (0..4)
        .map(|i| Capture::start(&lab.hosts[i], &lab.taps[i]))
        .collect();
    let flow: Vec<Vec<u8>> = (0..2000u32)
        .map(|seq| {
            let mut f = mac(&host_mac(1)).to_vec();
            f.extend_from_slice(&mac(&host_mac(0)));
            f.extend_from_slice(&PROBE_ETHERTYPE.to_be_bytes());
            f.extend_from_slice(b"order");
            f.extend_from_slice(&seq.to_be_bytes());
            f.resize(64, 0);
            f
        })
        .collect();
    // In bursts: a TAP holds 500 frames for its reader, and the kernel drops what does
    // not fit before uswitch sees it.
    let sender = {
        let (host, tap) = (lab.hosts[0].handle(), lab.taps[0].clone());
        thread::spawn(move || {
            flow.chunks(200)
                .map(|burst| {
                    let sent = send_raw(&host, &tap, burst.to_vec());
                    thread::sleep(Duration::from_millis(5));
                    sent
                })
                .sum::<usize>()
        })
    };
    for _ in 0..20 {
        send_broadcast_probe(&lab.hosts[3], &lab.taps[3], mac(&host_mac(3)), b"from-blue");
        send_broadcast_probe(
            &lab.hosts[1],
            &lab.taps[1],
            mac(&host_mac(1)),
            b"from-default",
        );
    }
    let sent = sender.join().expect("the sender");
    thread::sleep(Duration::from_millis(300));
    let seen: Vec<Vec<Seen>> = caps.into_iter().map(Capture::finish).collect();
    let order: Vec<u32> = seen[1]
        .iter()
        .filter(|f| f.ethertype == PROBE_ETHERTYPE && f.payload.starts_with(b"order"))
        .map(|f| u32::from_be_bytes(f.payload[5..9].try_into().expect("a number")))
        .collect();
    // Every frame uswitch read from host 1 for host 2 it wrote to host 2's port or
    // counted as dropped there (the kernel may drop some before uswitch reads them, when
    // the TAP's queue is full). The capture in the namespace may miss some when the
    // kernel's backlog overflows, but what it saw must be in order.
    let stats = lab.switch.port_stats(2);
    let read = stats[&lab.taps[0]]["forwarded"];
    let to = &stats[&lab.taps[1]];
    let dropped: u64 = to
        .iter()
        .filter(|(k, _)| k.starts_with("drop_"))
        .map(|(_, v)| v)
        .sum();
    eprintln!(
        "{sent} frames sent, {read} read by uswitch, {} seen",
        order.len()
    );
    assert!(to["tx_frames"] + dropped >= read, "{stats:?}");
    assert!(
        read * 2 >= sent as u64 && order.len() as u64 * 2 >= read,
        "{sent} frames sent, {read} read by uswitch, {} seen",
        order.len()
    );
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "the flow arrived out of order: {:?}",
        order.windows(2).find(|w| w[0] >= w[1])
    );
    // Nothing crossed networks, whichever worker read or wrote it.
    assert!(saw_probe(&seen[0], b"from-default"));
    assert!(saw_probe(&seen[2], b"from-blue"));
    for i in [2, 3] {
        assert!(
            !saw_probe(&seen[i], b"from-default"),
            "default reached blue"
        );
        assert!(
            !seen[i].iter().any(|f| f.payload.starts_with(b"order")),
            "the flow reached blue"
        );
    }
    for i in [0, 1] {
        assert!(!saw_probe(&seen[i], b"from-blue"), "blue reached default");
    }
    // Each port's counters are the sum of what both workers counted: the frames read
    // on one worker's port are the ones written on the other's.
    assert!(stats[&lab.taps[0]]["rx_frames"] >= sent as u64);
    assert!(stats[&lab.taps[0]]["forwarded"] >= sent as u64);
}
