//! TAP offloads: frames cross the fd behind a virtio-net header, so 64 KiB GSO frames and
//! partial checksums pass between offloaded TAPs untouched, and are segmented and
//! checksummed in software for a TAP without offloads. TCP bulk data, checked byte for
//! byte, is the test: ping alone passes with a broken offload setup.

mod common;

use common::*;
use serde_json::Value;

fn average_frame(p: &Value, dir: &str) -> u64 {
    let c = &p["counters"];
    c[format!("{dir}_bytes")].as_u64().unwrap()
        / c[format!("{dir}_frames")].as_u64().unwrap().max(1)
}

#[test]
fn offloaded_taps_pass_gso_frames_through() {
    if !privileged("offloaded_taps_pass_gso_frames_through") {
        return;
    }
    let (sw, [a, b], ha, hb) = two_hosts();
    tcp_exchange(&ha, &hb, "198.18.0.2", 5300, 64 << 20);
    let ports = sw.json(&["show", "ports"]);
    for name in [&a, &b] {
        let offloads = port(&ports, name)["offloads"].as_array().unwrap().clone();
        for want in ["csum", "tso4", "tso6"] {
            assert!(
                offloads.iter().any(|o| o == want),
                "{name} lacks {want}: {offloads:?}"
            );
        }
    }
    // Far more than an MTU per frame on average: GSO frames crossed whole.
    let avg = average_frame(port(&ports, &a), "rx");
    assert!(avg > 3000, "average frame from {a} is {avg} bytes: no GSO");
}

#[test]
fn tcp_between_an_offloaded_tap_and_a_plain_one() {
    if !privileged("tcp_between_an_offloaded_tap_and_a_plain_one") {
        return;
    }
    let (a, b) = (unique("ut"), unique("ut"));
    let sw = Uswitch::start(&["--port", &a, "--port", &format!("{b},offload=off")]);
    let (ha, hb) = (Netns::new(), Netns::new());
    ha.adopt(&a, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:02", "198.18.0.2/24");
    tcp_exchange(&ha, &hb, "198.18.0.2", 5301, 64 << 20);
    let ports = sw.json(&["show", "ports"]);
    assert_eq!(port(&ports, &b)["offloads"], serde_json::json!([]));
    // The offloaded side sent GSO frames; the plain side only ever got MTU-sized ones,
    // so uswitch segmented (and checksummed) them in software.
    assert!(average_frame(port(&ports, &a), "rx") > 3000);
    let plain = &port(&ports, &b)["counters"];
    assert!(average_frame(port(&ports, &b), "tx") <= 1514, "{plain}");
    assert_eq!(plain["drops"]["egress_too_big"], 0, "{plain}");
    assert_eq!(plain["drops"]["bad_offload"], 0, "{plain}");
}

#[test]
fn a_stale_offload_mask_is_reset_on_a_reused_tap() {
    if !privileged("a_stale_offload_mask_is_reset_on_a_reused_tap") {
        return;
    }
    // A persistent TAP first used with offloads, then attached without: the mask is
    // device-wide and outlives the first user, so it must be cleared explicitly or the
    // kernel keeps handing over GSO frames that a plain reader cannot take.
    let tap = PersistentTap::new();
    let other = unique("ut");
    {
        let mut first = Uswitch::start(&["--port", &tap.name]);
        assert!(first.stop().success());
    }
    let sw = Uswitch::start(&[
        "--port",
        &format!("{},offload=off", tap.name),
        "--port",
        &other,
    ]);
    let (ha, hb) = (Netns::new(), Netns::new());
    ha.adopt(&tap.name, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&other, "02:00:00:00:00:02", "198.18.0.2/24");
    tcp_exchange(&ha, &hb, "198.18.0.2", 5302, 16 << 20);
    let ports = sw.json(&["show", "ports"]);
    let c = &port(&ports, &tap.name)["counters"];
    assert_eq!(c["drops"]["oversized"], 0, "{c}");
    // Put it back where the guard can delete it.
    sh(&["ip", "-n", &ha.name, "link", "set", &tap.name, "netns", "1"]);
}

/// Small UDP datagrams queued up behind one another are written to an offloaded TAP
/// as UDP GSO frames, and the receiving kernel hands its sockets the same datagrams,
/// byte for byte and in order: IPv4 and IPv6, from a sender that leaves checksums
/// partial (an offloaded TAP) and from one that completes them (a plain TAP), several
/// flows interleaved.
#[test]
fn queued_udp_datagrams_cross_joined_and_intact() {
    if !privileged("queued_udp_datagrams_cross_joined_and_intact") {
        return;
    }
    queued_udp_datagrams(true);
}

/// With `--no-udp-join` the same datagrams cross one write each.
#[test]
fn no_udp_join_writes_datagrams_one_by_one() {
    if !privileged("no_udp_join_writes_datagrams_one_by_one") {
        return;
    }
    queued_udp_datagrams(false);
}

fn queued_udp_datagrams(join: bool) {
    let (a, b, c) = (unique("ut"), unique("ut"), unique("ut"));
    let c_port = format!("{c},offload=off");
    let mut args = vec!["--port", &a, "--port", &b, "--port", &c_port];
    if !join {
        args.push("--no-udp-join");
    }
    let sw = Uswitch::start(&args);
    let (ha, hb, hc) = (Netns::new(), Netns::new(), Netns::new());
    ha.adopt(&a, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:02", "198.18.0.2/24");
    hc.adopt(&c, "02:00:00:00:00:03", "198.18.0.3/24");
    for (ns, tap, addr) in [(&ha, &a, "2001:2:0:9::1/64"), (&hb, &b, "2001:2:0:9::2/64")] {
        sh(&[
            "ip", "-n", &ns.name, "addr", "add", addr, "dev", tap, "nodad",
        ]);
    }
    sh(&[
        "ip",
        "-n",
        &ha.name,
        "neigh",
        "replace",
        "2001:2:0:9::2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        &a,
    ]);
    // The switch learns every MAC, so the datagrams are known unicast to b.
    assert!(ha.ping("198.18.0.2") && hc.ping("198.18.0.2"));

    const N: u32 = 200;
    let v4: std::net::SocketAddr = "198.18.0.2:5400".parse().unwrap();
    let v6: std::net::SocketAddr = "[2001:2:0:9::2]:5400".parse().unwrap();
    let r4 = hb.spawn(move || receive_udp(v4, 2 * N as usize));
    let r6 = hb.spawn(move || receive_udp(v6, N as usize));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rx_before = rx_packets(&hb, &b);

    // Stopped, the switch lets the datagrams queue up in the TAPs, so it finds them
    // back to back when it resumes.
    let pid = sw.pid() as libc::pid_t;
    // SAFETY: signalling the switch this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let from_a = ha.spawn(move || {
        let s4 = std::net::UdpSocket::bind("198.18.0.1:0").unwrap();
        let s6 = std::net::UdpSocket::bind("[2001:2:0:9::1]:0").unwrap();
        for block in 0..N.div_ceil(7) {
            for seq in block * 7..(block * 7 + 7).min(N) {
                s4.send_to(&udp_datagram(1, seq), v4).unwrap();
            }
            for seq in block * 7..(block * 7 + 7).min(N) {
                s6.send_to(&udp_datagram(2, seq), v6).unwrap();
            }
        }
    });
    let from_c = hc.spawn(move || {
        let s = std::net::UdpSocket::bind("198.18.0.3:0").unwrap();
        for seq in 0..N {
            s.send_to(&udp_datagram(3, seq), v4).unwrap();
        }
    });
    from_a.join().unwrap();
    from_c.join().unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);

    let got4 = r4.join().unwrap();
    let got6 = r6.join().unwrap();
    for flow in [1u8, 2, 3] {
        let got: Vec<&Vec<u8>> = got4
            .iter()
            .chain(got6.iter())
            .filter(|d| d.first() == Some(&flow))
            .collect();
        let want: Vec<Vec<u8>> = (0..N).map(|seq| udp_datagram(flow, seq)).collect();
        assert_eq!(got.len(), want.len(), "flow {flow}: datagrams lost");
        for (seq, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(*g, w, "flow {flow}: datagram {seq} differs");
        }
    }
    // Fewer packets reached b's kernel than datagrams its sockets read: the switch
    // wrote runs of datagrams as one GSO frame each. A kernel without USO (before 6.2)
    // cannot take them, and gets every datagram on its own.
    let writes = rx_packets(&hb, &b) - rx_before;
    let ports = sw.json(&["show", "ports"]);
    let uso = port(&ports, &b)["offloads"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "uso4");
    if uso && join {
        assert!(
            writes < u64::from(3 * N) / 2,
            "{writes} packets into {b} for {} datagrams: nothing was joined",
            3 * N
        );
    } else {
        if !uso {
            eprintln!("this kernel has no USO: datagrams are not joined");
        }
        // (A stray neighbour or multicast-listener packet may come on top.)
        assert!(writes >= u64::from(3 * N), "{writes} packets into {b}");
    }
    // Each datagram is counted on its own.
    let cb = &port(&ports, &b)["counters"];
    assert!(
        cb["tx_frames"].as_u64().unwrap() >= u64::from(3 * N),
        "{cb}"
    );
}
