//! Restarts and upgrades: what the control socket changed at runtime comes back after a
//! `kill -9` and a clean stop, a corrupt record is refused whole and kept aside, and a
//! new binary takes a running switch over (`--take-over`) with its descriptors.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// The runtime record in `state` (there is one per control socket).
fn runtime_file(state: &std::path::Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(state)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            n.starts_with("runtime-") && n.ends_with(".json")
        })
}

fn port_names(sw: &Uswitch) -> Vec<(String, String)> {
    let ports = sw.json(&["show", "ports"]);
    ports
        .as_array()
        .expect("a list of ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["network"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Networks, ports and static entries made through the control socket come back after a
/// `kill -9` and after a clean stop, and a removal of a configured port stays removed;
/// what was undone at runtime does not come back.
#[test]
fn runtime_changes_survive_a_kill_9_and_a_clean_restart() {
    let test = "runtime_changes_survive_a_kill_9_and_a_clean_restart";
    if !privileged(test) {
        return;
    }
    let state = std::env::temp_dir().join(unique("urst"));
    let state_arg = state.display().to_string();
    let control = control_path();
    let (p1, p2, p3) = (short_unique("rc"), short_unique("rd"), short_unique("re"));
    let args = ["--state-dir", state_arg.as_str(), "--port", p1.as_str()];
    let sw = Uswitch::start_at(&control, &args);
    sw.json(&["network", "create", "green", "--subnet", "198.18.14.0/24"]);
    sw.json(&["port", "add", &format!("{p2}@green")]);
    sw.json(&["port", "add", &format!("{p3}@green")]);
    sw.json(&["port", "del", &p3]);
    sw.json(&["fdb", "add", "02:00:00:00:00:42", &p2]);
    sw.json(&["fdb", "add", "02:00:00:00:00:43", &p2]);
    sw.json(&["fdb", "del", "02:00:00:00:00:43"]);
    sw.json(&["port", "del", &p1]);
    let cap = state.join("p2.pcapng");
    let out = sw.client(&["capture", &p2, &cap.display().to_string()]);
    assert!(out.status.success(), "capture");
    let record = runtime_file(&state).expect("a runtime record in the state directory");
    let expect = |sw: &Uswitch, how: &str| {
        let ports = port_names(sw);
        assert!(
            ports.contains(&(p2.clone(), "green".into())),
            "{how}: {ports:?}"
        );
        assert!(
            !ports.iter().any(|(n, _)| n == &p1 || n == &p3),
            "{how}: {ports:?}"
        );
        let fdb = sw.json(&["show", "fdb", "--network", "green"]);
        let statics: Vec<&Value> = fdb
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["static"] == true)
            .collect();
        assert_eq!(statics.len(), 1, "{how}: {fdb}");
        assert_eq!(statics[0]["mac"], "02:00:00:00:00:42", "{how}");
        assert_eq!(statics[0]["port"], p2.as_str(), "{how}");
        let nets = sw.json(&["network", "ls"]).to_string();
        assert!(
            nets.contains("\"green\"") && nets.contains("198.18.14.0/24"),
            "{how}: {nets}"
        );
    };
    expect(&sw, "before the restart");
    sw.signal(libc::SIGKILL);
    drop(sw);
    let mut sw = Uswitch::start_at(&control, &args);
    expect(&sw, "after a kill -9");
    // The capture's absence is said, naming it.
    let line = sw.wait_for_log("was started before the restart", Duration::from_secs(1));
    assert!(line.contains(&p2) && line.contains("p2.pcapng"), "{line}");
    let ports = sw.json(&["show", "ports"]);
    assert!(port(&ports, &p2)["capture"].is_null(), "{ports}");
    sw.stop();
    drop(sw);
    let mut sw = Uswitch::start_at(&control, &args);
    expect(&sw, "after a clean stop");
    // Undone at runtime, gone from the record: the network with its port and entry.
    sw.json(&["port", "del", &p2]);
    sw.json(&["network", "rm", "green"]);
    let left: Value = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    assert!(
        !left.to_string().contains("green"),
        "the record still holds the removed network: {left}"
    );
    sw.stop();
    drop(sw);

    // A torn record is refused whole, named, and kept aside; the switch starts from its
    // configuration alone.
    std::fs::write(&record, b"[{\"cmd\":\"network_create\",\"name\":\"torn").unwrap();
    let mut sw = Uswitch::start_at(&control, &args);
    let line = sw.wait_for_log("runtime changes", Duration::from_secs(5));
    assert!(
        line.contains(&record.display().to_string()) && line.contains(".json.bad"),
        "the refusal names neither the file nor where it went: {line}"
    );
    let ports = port_names(&sw);
    assert_eq!(
        ports,
        vec![(p1.clone(), "default".to_string())],
        "{ports:?}"
    );
    assert!(record.with_extension("json.bad").exists());
    sw.stop();
    let _ = std::fs::remove_dir_all(&state);
}

/// Sends a ping every 10 ms from `from` to `to` for `count` tries; (sent, received).
fn ping_flood(from: &Netns, to: &str, count: u32) -> std::thread::JoinHandle<(u32, u32)> {
    let name = from.name.clone();
    let to = to.to_string();
    std::thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &name, "ping", "-n", "-q", "-i", "0.01", "-W", "1",
            ])
            .args(["-c", &count.to_string(), &to])
            .output()
            .expect("running ping (iputils-ping)");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no summary from ping: {text}"));
        // "300 packets transmitted, 299 received, ..."
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let before = |word: &str| -> u32 {
            let i = words.iter().position(|w| *w == word).expect(word);
            words[i - 1].parse().expect("a count")
        };
        (before("packets"), before("received"))
    })
}

/// `uswitch --take-over` receives the running switch's TAPs (ones it created and moved
/// into namespaces, which would vanish with it), its runtime ports and its control
/// socket; the old one exits; a ping every 10 ms through the switch loses at most one
/// reply.
#[test]
fn take_over_hands_every_port_over_and_loses_at_most_one_ping() {
    let test = "take_over_hands_every_port_over_and_loses_at_most_one_ping";
    if !privileged(test) {
        return;
    }
    let state = std::env::temp_dir().join(unique("utko"));
    let state_arg = state.display().to_string();
    let control = control_path();
    let (a, b, c) = (short_unique("ta"), short_unique("tb"), short_unique("tc"));
    // The metrics port is not handed over: the new switch binds it once the old one's
    // descriptors are closed (a fixed port, on loopback, so that the two would clash).
    let metrics: std::net::SocketAddr =
        format!("127.0.0.1:{}", 30_000 + std::process::id() % 10_000)
            .parse()
            .expect("an address");
    let metrics_arg = metrics.to_string();
    let args = [
        "--state-dir",
        state_arg.as_str(),
        "--port",
        a.as_str(),
        "--port",
        b.as_str(),
        "--metrics",
        metrics_arg.as_str(),
    ];
    let mut old = Uswitch::start_at(&control, &args);
    let (ha, hb, hc) = (Netns::new(), Netns::new(), Netns::new());
    ha.adopt(&a, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:02", "198.18.0.2/24");
    old.json(&["port", "add", &c]);
    hc.adopt(&c, "02:00:00:00:00:03", "198.18.0.3/24");
    // A VXLAN endpoint over loopback: its UDP port is bound, so a new switch could not
    // bind it while the old one lives; it must be handed over.
    let vx_port = (40_000 + std::process::id() % 20_000).to_string();
    old.json(&[
        "network",
        "create",
        "ov",
        "--vni",
        "9",
        "--local",
        "127.0.0.1",
        "--remote",
        "127.0.0.2",
        "--vxlan-port",
        &vx_port,
    ]);
    assert!(
        ha.ping("198.18.0.2") && ha.ping("198.18.0.3"),
        "before the take-over"
    );

    let pings = ping_flood(&ha, "198.18.0.2", 300);
    std::thread::sleep(Duration::from_millis(800));
    let mut args_new = args.to_vec();
    args_new.push("--take-over");
    let mut new = Uswitch::start_at(&control, &args_new);
    let (sent, received) = pings.join().expect("ping thread");
    eprintln!("take-over: {sent} pings sent at 10 ms, {received} answered");
    assert!(sent >= 290, "ping sent only {sent}");
    assert!(
        sent - received <= 1,
        "{} of {sent} pings lost across the take-over",
        sent - received
    );
    let exited = old.stop_status_within(Duration::from_secs(5));
    assert!(
        exited.is_some_and(|s| s.success()),
        "the old switch did not exit cleanly: {exited:?}"
    );
    assert!(
        old.log().iter().any(|l| l.contains("handed over")),
        "{:#?}",
        old.log()
    );
    let ports: Vec<String> = port_names(&new).into_iter().map(|(n, _)| n).collect();
    for p in [&a, &b, &c] {
        assert!(
            ports.contains(p),
            "{p} missing after the take-over: {ports:?}"
        );
    }
    assert!(
        hc.ping("198.18.0.1"),
        "the runtime port after the take-over"
    );
    new.wait_for_log("1 VXLAN endpoint(s)", Duration::from_secs(1));
    let vxlan = new.json(&["show", "vxlan"]).to_string();
    assert!(vxlan.contains(&vx_port), "{vxlan}");
    new.wait_for_log("the old switch has exited", Duration::from_secs(1));
    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, Some(200), "the new switch's metrics: {body}");
    assert!(body.contains(&a), "{body}");
    new.stop();
    let _ = std::fs::remove_dir_all(&state);
}

/// A take-over asked in another handover version is refused with an error naming both,
/// and a new switch that fails half-way leaves the old one forwarding.
#[test]
fn a_refused_or_failed_take_over_leaves_the_old_switch_running() {
    let test = "a_refused_or_failed_take_over_leaves_the_old_switch_running";
    if !privileged(test) {
        return;
    }
    let (mut old, [a, b], ha, _hb) = two_hosts();
    let _ = (&a, &b);
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&old.control).expect("connect");
    s.write_all(b"{\"v\":1,\"cmd\":\"take_over\",\"version\":999,\"release\":\"9.9.9\"}\n")
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&s).read_line(&mut line).unwrap();
    let answer: Value = serde_json::from_str(&line).expect("a JSON answer");
    assert_eq!(answer["ok"], false, "{answer}");
    let why = answer["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("take-over refused")
            && why.contains("version 999")
            && why.contains("version 1"),
        "{why}"
    );
    assert!(ha.ping("198.18.0.2"), "after the refusal");

    // A new switch whose configuration cannot be applied (a port named like the
    // loopback, which is no TAP) gives up after receiving the descriptors.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uswitch"))
        .args(["--port", &a, "--port", &b, "--port", "lo", "--take-over"])
        .args(["--control", &old.control])
        .output()
        .expect("running uswitch --take-over");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lo"), "{err}");
    old.wait_for_log("take-over failed", Duration::from_secs(5));
    assert!(ha.ping("198.18.0.2"), "the old switch stopped forwarding");
    assert!(old
        .json(&["show", "ports"])
        .as_array()
        .is_some_and(|p| p.len() == 2));

    // And without a switch to take over, one clear line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uswitch"))
        .args(["--take-over", "--control", "/tmp/nothing-here.sock"])
        .output()
        .expect("running uswitch --take-over");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no switch answers"), "{err}");
}

/// The namespaces under /run/netns whose names start with `prefix`.
fn netns_with(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The interfaces of the root namespace whose names start with `prefix`.
fn links_with(prefix: &str) -> Vec<String> {
    sh(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// `kill -9` at random moments of a soak (ports added and removed, containers run and
/// removed, networks with a VXLAN overlay created and removed), then a restart: every
/// container the switch lists has its namespace and its ports, every namespace and TAP
/// the soak made is either the switch's or gone, and once everything is removed nothing
/// is left.
#[test]
fn kill_9_at_random_moments_of_a_soak_leaks_nothing() {
    let test = "kill_9_at_random_moments_of_a_soak_leaks_nothing";
    if !privileged(test) {
        return;
    }
    let state = std::env::temp_dir().join(unique("usoak"));
    let state_arg = state.display().to_string();
    let control = control_path();
    let args = ["--state-dir", state_arg.as_str()];
    let tag = format!("k{}", std::process::id() % 10_000);
    let vx_port = (20_000 + std::process::id() % 20_000).to_string();
    let mut sw = Uswitch::start_at(&control, &args);
    sw.json(&["network", "create", "soak", "--subnet", "198.18.16.0/24"]);
    // A small deterministic generator: the same moments every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..6u32 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let (ctl, tag2, port) = (control.clone(), tag.clone(), vx_port.clone());
        let soak = std::thread::spawn(move || {
            let run = |args: &[&str]| {
                let _ = std::process::Command::new(env!("CARGO_BIN_EXE_uswitch"))
                    .args(args)
                    .args(["--control", &ctl])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            };
            let mut i = 0u32;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let (p, c, n) = (
                    format!("{tag2}p{round}x{i}"),
                    format!("{tag2}c{round}x{i}"),
                    format!("{tag2}n{round}x{i}"),
                );
                run(&["port", "add", &format!("{p}@soak")]);
                run(&["run", "--name", &c, "--network", "soak"]);
                run(&[
                    "network",
                    "create",
                    &n,
                    "--vni",
                    "77",
                    "--local",
                    "127.0.0.1",
                    "--remote",
                    "127.0.0.2",
                    "--vxlan-port",
                    &port,
                ]);
                run(&["port", "del", &p]);
                if i % 2 == 1 {
                    run(&["rm", &c]);
                }
                run(&["network", "rm", &n]);
                i += 1;
            }
            i
        });
        std::thread::sleep(Duration::from_millis(100 + next(900)));
        sw.signal(libc::SIGKILL);
        drop(sw);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let ops = soak.join().expect("the soak thread");
        sw = Uswitch::start_at(&control, &args);
        // Consistent: what the switch lists exists, and what exists is the switch's.
        let ps = sw.json(&["ps"]);
        let ports: Vec<String> = port_names(&sw).into_iter().map(|(n, _)| n).collect();
        let listed: Vec<String> = ps
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_string())
            .collect();
        for c in ps.as_array().unwrap() {
            for i in c["interfaces"].as_array().unwrap() {
                let tap = i["tap"].as_str().unwrap_or_default().to_string();
                assert!(
                    ports.contains(&tap),
                    "round {round}: {tap} of {} is no port: {ports:?}",
                    c["name"]
                );
            }
        }
        for ns in netns_with(&format!("{tag}c")) {
            assert!(
                listed.contains(&ns),
                "round {round}: namespace {ns} leaked (ps: {listed:?})"
            );
        }
        for l in links_with(&tag) {
            assert!(
                ports.contains(&l),
                "round {round}: interface {l} leaked (ports: {ports:?})"
            );
        }
        eprintln!(
            "soak round {round}: {ops} rounds of operations, {} container(s) and {} port(s) after the restart",
            listed.len(),
            ports.len()
        );
    }
    // Everything removed: nothing left.
    let ps = sw.json(&["ps"]);
    for c in ps.as_array().unwrap() {
        let out = sw.client(&["rm", c["name"].as_str().unwrap_or_default()]);
        assert!(out.status.success());
    }
    for (p, _) in port_names(&sw) {
        if p.starts_with(&tag) {
            sw.json(&["port", "del", &p]);
        }
    }
    let nets = sw.json(&["network", "ls"]);
    for n in nets.as_array().unwrap() {
        let name = n["name"].as_str().unwrap_or_default();
        if name != "default" {
            let _ = sw.client(&["network", "rm", name]);
        }
    }
    sw.stop();
    assert_eq!(
        netns_with(&format!("{tag}c")),
        Vec::<String>::new(),
        "namespaces left"
    );
    assert_eq!(links_with(&tag), Vec::<String>::new(), "interfaces left");
    let _ = std::fs::remove_dir_all(&state);
}
