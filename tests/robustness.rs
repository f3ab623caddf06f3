//! Abuse the switch's ports: a loop made outside the switch (a kernel bridge joining two
//! of its ports), with storm control alone and with loop protection.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn port<'a>(ports: &'a Value, name: &str) -> &'a Value {
    ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {ports}"))
}

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

/// One request straight over the control socket (faster than a client process).
fn request(sw: &Uswitch, line: &str) -> Value {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&sw.control).expect("connect");
    s.write_all(format!("{line}\n").as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    serde_json::from_str(&out).expect("a JSON response")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn port_churn_leaks_neither_fds_nor_taps() {
    if !privileged("port_churn_leaks_neither_fds_nor_taps") {
        return;
    }
    let (sw, _, ha, hb) = two_hosts();
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
    let fds_before = open_fds(sw.pid());
    let links_before = sh(&["ip", "-br", "link"]).lines().count();
    let name = unique("uc");
    for i in 0..1000 {
        let add = request(
            &sw,
            &format!(r#"{{"cmd":"port_add","name":"{name}","network":"default"}}"#),
        );
        assert_eq!(add["ok"], true, "add {i}: {add}");
        let del = request(&sw, &format!(r#"{{"cmd":"port_del","name":"{name}"}}"#));
        assert_eq!(del["ok"], true, "del {i}: {del}");
    }
    let fds_after = open_fds(sw.pid());
    let links_after = sh(&["ip", "-br", "link"]).lines().count();
    eprintln!(
        "1000 port add/del: fds {fds_before} -> {fds_after}, links {links_before} -> {links_after}"
    );
    assert_eq!(fds_after, fds_before, "uswitch leaked file descriptors");
    assert!(!link_exists(None, &name), "the churned TAP is left behind");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let streams = stream.join().expect("a stream failed during the churn");
    assert!(streams > 1, "traffic did not flow during the churn");
    eprintln!("{streams} verified 8 MiB streams crossed during the churn");
    let ports = sw.json(&["show", "ports"]);
    assert_eq!(ports.as_array().unwrap().len(), 2);
}
