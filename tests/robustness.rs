//! Abuse the switch's ports: a loop made outside the switch (a kernel bridge joining two
//! of its ports), with storm control alone and with loop protection.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the state field.
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

struct LoopLab {
    switch: Uswitch,
    taps: [String; 4],
    loop_ns: Netns,
    h1: Netns,
    h2: Netns,
}

/// Ports 0 and 1 joined by a kernel bridge in a namespace of their own (the loop); hosts
/// on ports 2 and 3.
fn loop_lab(extra: &[&str]) -> LoopLab {
    let taps = [unique("ut"), unique("ut"), unique("ut"), unique("ut")];
    let mut args: Vec<String> = taps
        .iter()
        .flat_map(|t| ["--port".to_string(), t.clone()])
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let switch = Uswitch::start(&refs);
    let (loop_ns, h1, h2) = (Netns::new(), Netns::new(), Netns::new());
    h1.adopt(&taps[2], "02:00:00:00:00:01", "198.18.0.1/24");
    h2.adopt(&taps[3], "02:00:00:00:00:02", "198.18.0.2/24");
    LoopLab {
        switch,
        taps,
        loop_ns,
        h1,
        h2,
    }
}

impl LoopLab {
    fn close_loop(&self) {
        let ns = &self.loop_ns.name;
        sh(&["ip", "-n", ns, "link", "add", "br0", "type", "bridge"]);
        for t in &self.taps[..2] {
            sh(&["ip", "link", "set", t, "netns", ns]);
            sh(&["ip", "-n", ns, "link", "set", t, "master", "br0"]);
            sh(&["ip", "-n", ns, "link", "set", t, "up"]);
        }
        sh(&["ip", "-n", ns, "link", "set", "br0", "up"]);
    }

    fn open_loop(&self) {
        sh(&["ip", "-n", &self.loop_ns.name, "link", "del", "br0"]);
    }
}

#[test]
fn a_loop_is_capped_by_storm_control_and_the_switch_stays_responsive() {
    if !privileged("a_loop_is_capped_by_storm_control_and_the_switch_stays_responsive") {
        return;
    }
    let lab = loop_lab(&["--bum-rate", "200"]);
    lab.close_loop();
    // One broadcast starts the storm: it goes round the loop for ever.
    send_broadcast_probe(&lab.h1, &lab.taps[2], mac("02:00:00:00:00:01"), b"storm");
    std::thread::sleep(Duration::from_millis(500));
    let before = lab.switch.json(&["show", "ports"]);
    let ticks0 = cpu_ticks(lab.switch.pid());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    // Still answering its control socket in the middle of the storm.
    let answered = Instant::now();
    let after = lab.switch.json(&["show", "ports"]);
    let reply = answered.elapsed();
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(lab.switch.pid()) - ticks0) as f64 / 100.0 / secs * 100.0;
    let count = |v: &Value, p: &str, k: &str| port(v, p)["counters"][k].as_u64().unwrap_or(0);
    let to_host =
        count(&after, &lab.taps[3], "tx_frames") - count(&before, &lab.taps[3], "tx_frames");
    let capped: u64 = lab.taps[..2]
        .iter()
        .map(|t| {
            port(&after, t)["counters"]["drops"]["storm_control"]
                .as_u64()
                .unwrap()
        })
        .sum();
    eprintln!(
        "loop: {:.0} flooded frames/s reached a bystander, {capped} capped by storm control, \
         uswitch CPU {cpu:.1} %, show ports answered in {reply:?}",
        to_host as f64 / secs
    );
    assert!(capped > 0, "the storm was never capped: {after}");
    // Two looped ports, each limited to 200 flooded frames/s (after a burst of 64, spent
    // before the window).
    assert!(
        (to_host as f64 / secs) < 2.0 * 200.0 * 1.25,
        "{to_host} frames in {secs:.1} s"
    );
    assert!(
        reply < Duration::from_secs(2),
        "the control socket took {reply:?}"
    );
    // Without the loop, forwarding is back to normal.
    lab.open_loop();
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.h1.ping("198.18.0.2"));
    tcp_exchange(&lab.h1, &lab.h2, "198.18.0.2", 5400, 4 << 20);
}

#[test]
fn loop_protection_blocks_the_looped_ports_and_reports_them() {
    if !privileged("loop_protection_blocks_the_looped_ports_and_reports_them") {
        return;
    }
    let mut lab = loop_lab(&["--loop-protect", "3"]);
    lab.close_loop();
    send_broadcast_probe(&lab.h1, &lab.taps[2], mac("02:00:00:00:00:01"), b"storm");
    lab.switch
        .wait_for_log("possible loop", Duration::from_secs(5));
    let ports = lab.switch.json(&["show", "ports"]);
    let blocked: Vec<&String> = lab.taps[..2]
        .iter()
        .filter(|t| port(&ports, t)["state"] == "blocked")
        .collect();
    assert!(!blocked.is_empty(), "no looped port is blocked: {ports}");
    assert_ne!(port(&ports, &lab.taps[2])["state"], "blocked");
    // The hosts keep talking while the loop is cut.
    assert!(lab.h1.ping("198.18.0.2"));
    lab.open_loop();
    std::thread::sleep(Duration::from_secs(4));
    let ports = lab.switch.json(&["show", "ports"]);
    for t in &lab.taps[..2] {
        assert_ne!(
            port(&ports, t)["state"],
            "blocked",
            "{t} stayed blocked after the back-off"
        );
    }
    assert!(lab.h1.ping("198.18.0.2"));
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The file limit under which process `pid` has exactly `free` descriptor numbers left.
/// `RLIMIT_NOFILE` bounds the numbers, not the count: a descriptor inherited at a high
/// number (cargo's jobserver pipe, say) takes no room below the limit.
fn limit_leaving_free(pid: u32, free: usize) -> usize {
    let open: std::collections::BTreeSet<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the switch's descriptors")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The lowest number left free after `free` free ones: below it, exactly `free`.
    (0..)
        .filter(|n| !open.contains(n))
        .nth(free)
        .expect("a limit")
}

#[test]
fn port_churn_leaks_neither_fds_nor_taps() {
    if !privileged("port_churn_leaks_neither_fds_nor_taps") {
        return;
    }
    // The record of runtime changes is written (and synced) after every change: on a
    // tmpfs here, so that the test measures the switch and not the disk.
    let state = std::path::Path::new("/dev/shm").join(unique("uchurn"));
    let state_arg = state.display().to_string();
    let (a, b) = (unique("ut"), unique("ut"));
    let sw = Uswitch::start(&["--port", &a, "--port", &b, "--state-dir", &state_arg]);
    let (ha, hb) = (Netns::new(), Netns::new());
    ha.adopt(&a, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:02", "198.18.0.2/24");
    let (h0, h1) = (ha.handle(), hb.handle());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    // Verified TCP streams, one after another, for as long as the churn lasts.
    let stream = std::thread::spawn(move || {
        let mut streams = 0u16;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            tcp_exchange(&h0, &h1, "198.18.0.2", 5401 + streams, 8 << 20);
            streams += 1;
        }
        streams
    });
    let name = unique("uc");
    let churn = |from: u32, to: u32| {
        for i in from..to {
            let add = sw.raw(&format!(
                r#"{{"cmd":"port_add","name":"{name}","network":"default"}}"#
            ));
            assert_eq!(add["ok"], true, "add {i}: {add}");
            let del = sw.raw(&format!(r#"{{"cmd":"port_del","name":"{name}"}}"#));
            assert_eq!(del["ok"], true, "del {i}: {del}");
        }
    };
    // A first thousand lets the allocator and the tables reach their size; the next
    // nine thousand must not grow them.
    churn(0, 1000);
    let fds_before = open_fds(sw.pid());
    let rss_before = rss_kib(sw.pid());
    let links_before = sh(&["ip", "-br", "link"]).lines().count();
    let started = std::time::Instant::now();
    churn(1000, 10_000);
    let fds_after = open_fds(sw.pid());
    let rss_after = rss_kib(sw.pid());
    let links_after = sh(&["ip", "-br", "link"]).lines().count();
    eprintln!(
        "10000 port add/del ({:?} for the last 9000): fds {fds_before} -> {fds_after}, \
         RSS {rss_before} -> {rss_after} KiB, links {links_before} -> {links_after}",
        started.elapsed()
    );
    assert_eq!(fds_after, fds_before, "uswitch leaked file descriptors");
    assert!(
        rss_after <= rss_before + 1024,
        "uswitch's memory grew by {} KiB over 9000 port add/del",
        rss_after.saturating_sub(rss_before)
    );
    assert!(!link_exists(None, &name), "the churned TAP is left behind");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let streams = stream.join().expect("a stream failed during the churn");
    assert!(streams > 1, "traffic did not flow during the churn");
    eprintln!("{streams} verified 8 MiB streams crossed during the churn");
    let ports = sw.json(&["show", "ports"]);
    assert_eq!(ports.as_array().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn malformed_frames_are_counted_by_reason_and_hurt_nobody() {
    if !privileged("malformed_frames_are_counted_by_reason_and_hurt_nobody") {
        return;
    }
    let (sw, [a, _], ha, hb) = two_hosts();
    let (evil, evil_tap) = (Netns::new(), unique("ut"));
    sw.json(&["port", "add", &evil_tap]);
    evil.adopt(&evil_tap, "02:00:00:00:00:66", "198.18.0.66/24");
    // Let the evil port take frames up to 4000 bytes while uswitch knows it as 1500.
    sh(&[
        "ip", "-n", &evil.name, "link", "set", &evil_tap, "mtu", "4000",
    ]);
    let frame = |dst: [u8; 6], src: [u8; 6], ethertype: u16, len: usize| {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f
    };
    let me = mac("02:00:00:00:00:66");
    const N: usize = 50;
    let mut frames = Vec::new();
    for _ in 0..N {
        frames.push(frame([0xff; 6], [0; 6], 0x0800, 60)); // zero source
        frames.push(frame([0xff; 6], [0x01, 0, 0x5e, 0, 0, 1], 0x0800, 60)); // multicast source
        frames.push(frame([0xff; 6], me, 0x8100, 16)); // a VLAN TPID without its tag
        frames.push(frame([0xff; 6], me, 0x0800, 3000)); // over the port's MTU
        frames.push(frame([0x01, 0x80, 0xc2, 0, 0, 0], me, 0x0800, 60)); // STP group
    }
    let sent = send_raw(&evil, &evil_tap, frames);
    assert_eq!(
        sent,
        5 * N,
        "the kernel refused some of the malformed frames"
    );
    // Everyone else carries on.
    assert!(ha.ping("198.18.0.2"));
    tcp_exchange(&ha, &hb, "198.18.0.2", 5402, 4 << 20);
    let ports = sw.json(&["show", "ports"]);
    let drops = &port(&ports, &evil_tap)["counters"]["drops"];
    for reason in [
        "source_zero",
        "source_multicast",
        "bad_vlan_tag",
        "oversized",
        "link_local",
    ] {
        assert_eq!(drops[reason], N as u64, "{reason}: {drops}");
    }
    // None of it reached host 1.
    assert_eq!(port(&ports, &a)["counters"]["drops"]["egress_too_big"], 0);
}

#[test]
fn floods_on_two_networks_never_cross() {
    if !privileged("floods_on_two_networks_never_cross") {
        return;
    }
    let taps = [unique("ut"), unique("ut"), unique("ut"), unique("ut")];
    let specs = [
        format!("{}@red", taps[0]),
        format!("{}@red", taps[1]),
        format!("{}@blue", taps[2]),
        format!("{}@blue", taps[3]),
    ];
    let sw = Uswitch::start(&[
        "--port",
        &specs[0],
        "--port",
        &specs[1],
        "--port",
        &specs[2],
        "--port",
        &specs[3],
        "--bum-rate",
        "0",
    ]);
    let hosts: Vec<Netns> = (0..4).map(|_| Netns::new()).collect();
    for (i, (h, t)) in hosts.iter().zip(&taps).enumerate() {
        h.adopt(
            t,
            &format!("02:00:00:00:01:{:02x}", i + 1),
            &format!("198.18.0.{}/24", i + 1),
        );
    }
    let red_watch = Capture::start(&hosts[1], &taps[1]);
    let blue_watch = Capture::start(&hosts[3], &taps[3]);
    // Both networks flooded at once: red from 02:aa:.., blue from 02:aa:.. too (the same
    // MACs in both, which must not matter), told apart by the port they enter.
    let (r, b) = (hosts[0].handle(), hosts[2].handle());
    let (t0, t2) = (taps[0].clone(), taps[2].clone());
    let red = std::thread::spawn(move || send_from_many_macs(&r, &t0, 5000));
    let blue = std::thread::spawn(move || send_from_many_macs(&b, &t2, 5000));
    red.join().unwrap();
    blue.join().unwrap();
    send_broadcast_probe(&hosts[0], &taps[0], mac("02:00:00:00:01:01"), b"red-end");
    send_broadcast_probe(&hosts[2], &taps[2], mac("02:00:00:00:01:03"), b"blue-end");
    std::thread::sleep(Duration::from_millis(500));
    let (red_seen, blue_seen) = (red_watch.finish(), blue_watch.finish());
    assert!(saw_probe(&red_seen, b"red-end") && saw_probe(&blue_seen, b"blue-end"));
    let from = |seen: &[Seen], src: [u8; 6]| seen.iter().filter(|f| f.src == src).count();
    // Not one frame of the other network's hosts.
    assert_eq!(from(&red_seen, mac("02:00:00:00:01:03")), 0);
    assert_eq!(from(&blue_seen, mac("02:00:00:00:01:01")), 0);
    let stats = sw.json(&["show", "stats"]);
    let tx = |name: &str| {
        stats["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["tx_frames"]
            .as_u64()
            .unwrap()
    };
    let rx = |name: &str| {
        stats["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["rx_frames"]
            .as_u64()
            .unwrap()
    };
    // Each watcher was sent what its own network's flooder sent (give or take chatter),
    // never the sum of both floods.
    for (watch, flooder) in [(&taps[1], &taps[0]), (&taps[3], &taps[2])] {
        assert!(
            tx(watch) <= rx(flooder) + 50,
            "{watch}: tx {} vs its flooder's rx {}",
            tx(watch),
            rx(flooder)
        );
    }
    let counted = |seen: &[Seen]| {
        seen.iter()
            .filter(|f| f.ethertype == PROBE_ETHERTYPE)
            .count()
    };
    eprintln!(
        "isolation under load: red watcher saw {} probe frames, blue watcher {}; none from the other network",
        counted(&red_seen),
        counted(&blue_seen)
    );
}

/// A port flooding far beyond its storm-control rate is rested: taken out of the poll
/// for as long as the rate takes to refill a burst, so uswitch reads a fraction of the
/// flood (the kernel drops the rest in the port's own queue) and says so; once the flood
/// stops, the port forwards as before.
#[test]
fn a_port_flooding_far_beyond_its_rate_is_rested() {
    if !privileged("a_port_flooding_far_beyond_its_rate_is_rested") {
        return;
    }
    let (f, a, b) = (unique("ut"), unique("ut"), unique("ut"));
    let mut sw = Uswitch::start(&[
        "--port",
        &f,
        "--port",
        &a,
        "--port",
        &b,
        "--bum-rate",
        "100",
    ]);
    let (hf, ha, hb) = (Netns::new(), Netns::new(), Netns::new());
    hf.adopt(&f, "02:00:00:00:00:0f", "198.18.0.15/24");
    ha.adopt(&a, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:02", "198.18.0.2/24");
    assert!(ha.ping("198.18.0.2"));

    // 20 000 broadcast frames in about a second: 200 times the port's rate.
    const SENT: u32 = 20_000;
    send_from_many_macs(&hf, &f, SENT);
    sw.wait_for_log(
        "floods far beyond its storm-control rate",
        Duration::from_secs(5),
    );
    let ports = sw.json(&["show", "ports"]);
    let pf = port(&ports, &f);
    let rests = pf["storm_rests"].as_u64().unwrap();
    let read = pf["counters"]["rx_frames"].as_u64().unwrap();
    let storm = pf["counters"]["drops"]["storm_control"].as_u64().unwrap();
    eprintln!("{SENT} frames sent: {rests} rests, {read} read, {storm} dropped by storm control");
    assert!(rests > 0, "{pf}");
    assert!(storm > 0, "{pf}");
    assert!(
        read < u64::from(SENT) / 4,
        "uswitch read {read} of {SENT} flood frames: the port was not rested"
    );
    // The others were never rested, and once the flood is over the flooder's port is
    // polled again: its host and the others reach each other.
    assert_eq!(port(&ports, &a)["storm_rests"], 0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(hf.ping("198.18.0.1"));
    assert!(hb.ping("198.18.0.15"));
}

/// The control socket abused every way at once while a ping runs through the switch:
/// a 2 MiB request, a client that sends a byte every 100 ms, 900 clients at once,
/// hostile JSON (deeply nested, not UTF-8, a misspelt field, huge numbers), clients that
/// never read their answer. Every ping is answered, a well-behaved client is answered
/// throughout, every hostile line gets an error, and no descriptor is left behind.
#[test]
fn the_control_socket_survives_abuse_while_forwarding_goes_on() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let test = "the_control_socket_survives_abuse_while_forwarding_goes_on";
    if !privileged(test) {
        return;
    }
    let (sw, _, ha, _hb) = two_hosts();
    assert!(ha.ping("198.18.0.2"));
    let fds_before = open_fds(sw.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let (stop, ns) = (Arc::clone(&stop), ha.handle());
        std::thread::spawn(move || {
            let (mut sent, mut lost) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                sent += 1;
                if !ns.ping("198.18.0.2") {
                    lost += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (sent, lost)
        })
    };
    let path = sw.control.clone();
    let mut abusers = Vec::new();
    // Over a megabyte with no newline: refused, not buffered.
    abusers.push({
        let path = path.clone();
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(&path).expect("connect");
            let _ = s.write_all(&vec![b'a'; 2 << 20]);
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            assert!(out.is_empty() || out.contains("too large"), "{out}");
        })
    });
    // A byte every 100 ms, for two seconds.
    abusers.push({
        let path = path.clone();
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(&path).expect("connect");
            for b in br#"{"cmd":"show_ports"}"#.iter() {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    });
    // Many at once: the oldest are closed to make room, nobody is locked out.
    abusers.push({
        let path = path.clone();
        std::thread::spawn(move || {
            let many: Vec<UnixStream> = (0..900)
                .filter_map(|_| UnixStream::connect(&path).ok())
                .collect();
            std::thread::sleep(Duration::from_secs(2));
            drop(many);
        })
    });
    // Clients that ask and never read, holding the connection.
    abusers.push({
        let path = path.clone();
        std::thread::spawn(move || {
            let held: Vec<UnixStream> = (0..20)
                .filter_map(|_| {
                    let mut s = UnixStream::connect(&path).ok()?;
                    s.write_all(b"{\"cmd\":\"show_stats\"}\n").ok()?;
                    Some(s)
                })
                .collect();
            std::thread::sleep(Duration::from_secs(3));
            drop(held);
        })
    });
    // Hostile lines, each answered with an error.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let long_name = format!(
        r#"{{"cmd":"port_add","name":"{}","network":"x"}}"#,
        "n".repeat(10_000)
    );
    let hostile: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        br#"{"cmd":"show_fdb","netwrk":"blue"}"#.to_vec(),
        br#"{"cmd":"fdb_add","mac":"02:00:00:00:00:09","port":1e999999}"#.to_vec(),
        b"null".to_vec(),
        br#"{"cmd":"frobnicate"}"#.to_vec(),
        long_name.into_bytes(),
        deep.into_bytes(),
    ];
    for (i, line) in hostile.into_iter().enumerate() {
        let mut s = UnixStream::connect(&path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&line);
        let _ = s.write_all(b"\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("no JSON answer to hostile line {i} ({e}): {out:?}"));
        assert_eq!(v["ok"], false, "{out}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{out}");
    }
    // A well-behaved client, answered throughout.
    for _ in 0..15 {
        let ports = sw.json(&["show", "ports"]);
        assert_eq!(ports.as_array().map(Vec::len), Some(2));
        std::thread::sleep(Duration::from_millis(200));
    }
    for a in abusers {
        a.join().expect("an abuser's assertion");
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, lost) = pinger.join().expect("the pinger");
    assert!(sent > 10, "only {sent} pings");
    assert_eq!(
        lost, 0,
        "{lost} of {sent} pings lost while the control socket was abused"
    );
    // Every abuser's connection is closed again.
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    while open_fds(sw.pid()) > fds_before {
        assert!(
            std::time::Instant::now() < deadline,
            "{} descriptors open, {fds_before} before",
            open_fds(sw.pid())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ulimit -n` too small for the ports asked: `port add` fails with an error that names
/// the limit and how to raise it, the switch lives, and once the limit is raised again
/// it attaches ports and forwards as before.
#[test]
fn a_file_limit_too_small_for_a_port_is_a_clear_error_and_the_switch_lives() {
    let test = "a_file_limit_too_small_for_a_port_is_a_clear_error_and_the_switch_lives";
    if !privileged(test) {
        return;
    }
    let (sw, _, ha, _hb) = two_hosts();
    let pid = sw.pid().to_string();
    // Only the soft limit moves (the hard one could not be raised again here).
    let limit = |n: &str| {
        let ok = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={n}:")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "prlimit --nofile={n}:");
    };
    let soft = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        .expect("the switch's file limit");
    // Room for the client's connection, a TAP and the socket that brings it up: one port
    // fits, the next does not.
    limit(&limit_leaving_free(sw.pid(), 3).to_string());
    // The first fits. (With two ports read by one worker, the automatic count would start
    // a second worker for it, whose poll and waker need two descriptors where one is
    // left: the port goes to the running worker instead.)
    let name = unique("ut");
    let out = sw.client(&["port", "add", &name]);
    assert!(
        out.status.success(),
        "the first port under a tight limit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut refused = None;
    for _ in 0..4 {
        let name = unique("ut");
        let out = sw.client(&["port", "add", &name]);
        if !out.status.success() {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let err = refused.expect("every port fitted under a tiny file limit");
    assert!(err.contains("ulimit -n"), "{err}");
    limit(&soft);
    let name = unique("ut");
    let out = sw.client(&["port", "add", &name]);
    assert!(out.status.success(), "port add after the limit was raised");
    assert!(ha.ping("198.18.0.2"), "forwarding stopped");
}

/// A tmpfs of `kib` KiB mounted on a fresh directory, unmounted (and removed) on drop.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn new(kib: u32) -> SmallDisk {
        let dir = std::env::temp_dir().join(unique("ufull"));
        std::fs::create_dir_all(&dir).expect("a mount point");
        let size = format!("size={kib}k");
        sh(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &size,
            "tmpfs",
            &dir.display().to_string(),
        ]);
        SmallDisk { dir }
    }

    /// Writes until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join("filler")).expect("the filler");
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        sh_ok(&["umount", &self.dir.display().to_string()]);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// With the state directory and the capture file on a full disk, runtime changes still
/// apply (the record's failure is logged, naming the file), a capture stops with a
/// message saying why, and forwarding goes on.
#[test]
fn a_full_disk_for_state_and_captures_is_reported_and_traffic_flows() {
    if !privileged("a_full_disk_for_state_and_captures_is_reported_and_traffic_flows") {
        return;
    }
    let disk = SmallDisk::new(256);
    let state = disk.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let state_arg = state.display().to_string();
    let (a, b) = (unique("ut"), unique("ut"));
    let mut sw = Uswitch::start(&["--port", &a, "--port", &b, "--state-dir", &state_arg]);
    let (ha, hb) = (Netns::new(), Netns::new());
    ha.adopt(&a, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:02", "198.18.0.2/24");
    assert!(ha.ping("198.18.0.2"));
    disk.fill();

    let made = sw.json(&["network", "create", "green"]);
    assert_eq!(made["name"], "green", "{made}");
    let line = sw.wait_for_log("writing the runtime changes", Duration::from_secs(5));
    assert!(
        line.contains("No space left") && line.contains(&state_arg),
        "the failure does not say why or where: {line}"
    );
    assert!(
        ha.ping("198.18.0.2"),
        "forwarding after the state write failed"
    );
    let left: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a torn state file is left behind: {left:?}"
    );

    // A capture: refused at once, or stopped at its first flush, with the reason.
    let cap = disk.dir.join("cap.pcapng");
    let out = sw.client(&["capture", &a, &cap.display().to_string()]);
    if out.status.success() {
        let (h0, h1) = (ha.handle(), hb.handle());
        tcp_exchange(&h0, &h1, "198.18.0.2", 5501, 4 << 20);
        let line = sw.wait_for_log("stopping it", Duration::from_secs(5));
        assert!(line.contains("No space left"), "{line}");
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No space left"), "{err}");
    }
    let (h0, h1) = (ha.handle(), hb.handle());
    tcp_exchange(&h0, &h1, "198.18.0.2", 5502, 4 << 20);
    assert!(ha.ping("198.18.0.2"), "forwarding after the capture failed");
    let ports = sw.json(&["show", "ports"]);
    assert!(
        ports
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["capture"].is_null()),
        "{ports}"
    );
    sw.stop();
}
