//! uswitch-cni, the CNI plugin: invoked directly as runtimes invoke plugins (the `CNI_*`
//! environment, the configuration on stdin), with Debian's `host-local` as the IPAM; and
//! under a real runtime, podman with its CNI backend, its own storage and config.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CNI: &str = env!("CARGO_BIN_EXE_uswitch-cni");
/// Where Debian's containernetworking-plugins puts host-local, tuning, ...
const PLUGINS: &str = "/usr/lib/cni";

/// Whether the CNI plugins (and `what_else`) are here; a loud skip, or a failure under
/// USWITCH_REQUIRE_PRIV=1, when not.
fn have(test: &str, what_else: &[&str]) -> bool {
    if !privileged(test) {
        return false;
    }
    let mut needed = vec![format!("{PLUGINS}/host-local"), format!("{PLUGINS}/tuning")];
    needed.extend(what_else.iter().map(|s| s.to_string()));
    let missing: Vec<&String> = needed.iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("USWITCH_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("{test}: needs {missing:?} (apt-get install containernetworking-plugins podman)");
    }
    eprintln!("!!!!! SKIPPED {test}: needs {missing:?} (containernetworking-plugins, podman)");
    false
}

/// A uswitch of the test's own (own name, socket and state directory), host-local's
/// data directory, and what to clean whichever way the test ends.
struct Lab {
    /// The namespace standing for the host the switch and the plugins run in (this
    /// one's when None).
    host: Option<Netns>,
    name: String,
    dir: PathBuf,
    sw: Option<Uswitch>,
    control: String,
    _forwarding: ForwardingRestored,
}

impl Lab {
    fn new() -> Lab {
        Self::new_in(None)
    }

    fn new_in(host: Option<Netns>) -> Lab {
        let name = unique("ucn");
        let dir = std::env::temp_dir().join(format!("{name}-lab"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut lab = Lab {
            host,
            name,
            dir,
            sw: None,
            control: String::new(),
            _forwarding: ForwardingRestored::take(),
        };
        lab.start();
        lab
    }

    /// Starts the switch, on the same socket each time (the configurations name it).
    fn start(&mut self) {
        let state = self.dir.join("state").display().to_string();
        if self.control.is_empty() {
            self.control = control_path();
        }
        let args = ["--name", &self.name, "--state-dir", &state];
        let sw = match &self.host {
            None => Uswitch::start_at(&self.control, &args),
            Some(h) => Uswitch::start_in_at(h, &self.control, &args),
        };
        self.sw = Some(sw);
    }

    fn sw(&self) -> &Uswitch {
        self.sw.as_ref().expect("the switch runs")
    }

    fn kill(&mut self) {
        if let Some(mut sw) = self.sw.take() {
            sw.signal(libc::SIGKILL);
            let _ = sw.stop();
        }
    }

    /// A configuration for uswitch network `network` on `subnet`, host-local handing
    /// addresses from it (with a default route through its gateway).
    fn conf(&self, network: &str, subnet: &str) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": network,
            "type": "uswitch-cni",
            "control": self.control,
            "ipMasq": true,
            "ipam": {
                "type": "host-local",
                "subnet": subnet,
                "dataDir": self.dir.join("ipam").display().to_string(),
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        })
    }

    /// What host-local has reserved for `network`.
    fn reserved(&self, network: &str) -> Vec<String> {
        let dir = self.dir.join("ipam").join(network);
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("198."))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill();
        let _ = Command::new("nft")
            .args([
                "delete",
                "table",
                "inet",
                &format!("uswitch_cni_{}", self.name),
            ])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the plugin as a runtime does: `CNI_*` from the arguments, `stdin` as given.
/// Whether it succeeded, and what it printed (JSON, or Null for nothing).
fn cni_raw(command: &str, env: &[(&str, &str)], stdin: &[u8]) -> (bool, Value) {
    plugin_in(None, CNI, command, env, stdin)
}

/// Runs the CNI plugin `program` in `host` (or here), as a runtime there would.
fn plugin_in(
    host: Option<&Netns>,
    program: &str,
    command: &str,
    env: &[(&str, &str)],
    stdin: &[u8],
) -> (bool, Value) {
    let mut cmd = match host {
        None => Command::new(program),
        Some(h) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &h.name, program]);
            c
        }
    };
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", PLUGINS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("running uswitch-cni");
    let mut input = child.stdin.take().unwrap();
    // A plugin may stop reading early (a huge stdin): a broken pipe here is no failure.
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "$ CNI_COMMAND={command} {program} -> {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("uswitch-cni prints JSON")
    };
    (out.status.success(), printed)
}

/// The usual call: container `id`, interface `ifname`, namespace `netns`.
fn cni(command: &str, id: &str, netns: &str, ifname: &str, conf: &Value) -> (bool, Value) {
    let env = [
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
    ];
    cni_raw(command, &env, conf.to_string().as_bytes())
}

/// A failure with this CNI error code; its message.
fn fails_with(outcome: (bool, Value), code: u64) -> String {
    let (ok, printed) = outcome;
    assert!(!ok, "succeeded: {printed}");
    assert_eq!(printed["code"], code, "{printed}");
    let msg = printed["msg"].as_str().unwrap_or_default().to_string();
    assert!(!msg.is_empty(), "an error without a message: {printed}");
    msg
}

fn netns_path(ns: &Netns) -> String {
    format!("/run/netns/{}", ns.name)
}

/// ADD, CHECK and DEL as the specification has them, with host-local: the result's
/// shape, the interface inside, the switch's port and NAT, the `mac` capability, a
/// chain's next plugin (tuning) reading our prevResult, and every error case.
#[test]
fn cni_add_check_and_del_follow_the_spec() {
    let test = "cni_add_check_and_del_follow_the_spec";
    if !have(test, &[]) {
        return;
    }
    let lab = Lab::new();
    let (a, b) = (Netns::new(), Netns::new());
    let conf = lab.conf("cnblue", "198.18.74.0/24");
    let (ok, result) = cni("ADD", "ctr-a", &netns_path(&a), "eth0", &conf);
    assert!(ok, "{result}");
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(result["interfaces"][0]["sandbox"], netns_path(&a));
    assert_eq!(result["ips"][0]["interface"], 0);
    assert_eq!(result["ips"][0]["gateway"], "198.18.74.1");
    assert_eq!(result["routes"][0]["gw"], "198.18.74.1");
    let addr_a = result["ips"][0]["address"].as_str().unwrap().to_string();
    let mac_a = result["interfaces"][0]["mac"].as_str().unwrap().to_string();
    // Inside: named, addressed, up, with the default route.
    let shown = sh(&["ip", "-n", &a.name, "-j", "addr", "show", "dev", "eth0"]);
    assert!(shown.contains(&mac_a), "{shown}");
    assert!(shown.contains(addr_a.split('/').next().unwrap()), "{shown}");
    assert!(sh(&["ip", "-n", &a.name, "route"]).contains("default via 198.18.74.1"));
    // The gateway answers, on a host port of the switch; NAT is in force.
    assert!(a.ping("198.18.74.1"), "the gateway does not answer");
    let nat = lab.sw().json(&["show", "nat"]);
    assert_eq!(nat[0]["subnet"], "198.18.74.0/24", "{nat}");

    // The mac capability, and a chain: tuning after us gets our result as prevResult.
    let mut with_mac = conf.clone();
    with_mac["runtimeConfig"] = json!({"mac": "02:42:c6:12:4a:0b"});
    let (ok, result_b) = cni("ADD", "ctr-b", &netns_path(&b), "eth0", &with_mac);
    assert!(ok, "{result_b}");
    assert_eq!(result_b["interfaces"][0]["mac"], "02:42:c6:12:4a:0b");
    let tuning = json!({
        "cniVersion": "1.0.0", "name": "cnblue", "type": "tuning",
        "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"},
        "prevResult": result_b
    });
    let (ok, chained) = plugin_in(
        None,
        &format!("{PLUGINS}/tuning"),
        "ADD",
        &[
            ("CNI_CONTAINERID", "ctr-b"),
            ("CNI_NETNS", &netns_path(&b)),
            ("CNI_IFNAME", "eth0"),
        ],
        tuning.to_string().as_bytes(),
    );
    assert!(ok, "tuning refused our prevResult: {chained}");
    for key in ["name", "mac", "sandbox"] {
        assert_eq!(
            chained["interfaces"][0][key],
            result_b["interfaces"][0][key]
        );
    }
    assert!(b.exec_ok(&[
        "sh",
        "-c",
        "grep -q 1 /proc/sys/net/ipv4/conf/eth0/arp_notify"
    ]));
    // The two containers reach each other across uswitch.
    let addr_b = result_b["ips"][0]["address"].as_str().unwrap();
    assert!(a.ping(addr_b.split('/').next().unwrap()));

    // CHECK: fine as ADD left it; not when the MAC changed; not for a stranger.
    let mut check = conf.clone();
    check["prevResult"] = result.clone();
    let (ok, printed) = cni("CHECK", "ctr-a", &netns_path(&a), "eth0", &check);
    assert!(ok, "{printed}");
    assert!(a.exec_ok(&["ip", "link", "set", "eth0", "address", "02:00:00:00:00:99"]));
    let msg = fails_with(cni("CHECK", "ctr-a", &netns_path(&a), "eth0", &check), 101);
    assert!(msg.contains("MAC"), "{msg}");
    fails_with(cni("CHECK", "ctr-zz", &netns_path(&a), "eth0", &check), 3);
    fails_with(cni("CHECK", "ctr-a", &netns_path(&a), "eth0", &conf), 7);

    // ADD again on the same interface: it exists.
    let msg = fails_with(cni("ADD", "ctr-c", &netns_path(&a), "eth0", &conf), 100);
    assert!(msg.contains("eth0"), "{msg}");
    // Bad input: each the specification's code, none a panic.
    let env = [
        ("CNI_CONTAINERID", "ctr-x"),
        ("CNI_NETNS", "/proc/self/ns/net"),
        ("CNI_IFNAME", "eth9"),
    ];
    fails_with(cni_raw("ADD", &env, b""), 6);
    fails_with(cni_raw("ADD", &env, b"{\"cniVersion\":"), 6);
    fails_with(cni_raw("ADD", &env, &vec![b'{'; 2 << 20]), 6);
    fails_with(cni_raw("ADD", &env, b"[]"), 7);
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.1.0");
    fails_with(cni_raw("ADD", &env, old.to_string().as_bytes()), 1);
    fails_with(cni_raw("ADD", &env[..1], conf.to_string().as_bytes()), 4);
    fails_with(cni("ADD", "ctr-x", "/etc/hostname", "eth9", &conf), 4);
    fails_with(cni("ADD", "bad id!", &netns_path(&a), "eth9", &conf), 4);
    fails_with(
        cni(
            "ADD",
            "ctr-x",
            &netns_path(&a),
            "a-name-far-too-long",
            &conf,
        ),
        4,
    );
    fails_with(cni_raw("FROB", &env, conf.to_string().as_bytes()), 4);
    let mut bad_mac = conf.clone();
    bad_mac["runtimeConfig"] = json!({"mac": "01:00:5e:00:00:01"});
    fails_with(cni("ADD", "ctr-x", &netns_path(&a), "eth9", &bad_mac), 7);
    let (ok, version) = cni_raw("VERSION", &[], br#"{"cniVersion":"1.0.0"}"#);
    assert!(ok && version["supportedVersions"].as_array().unwrap().len() >= 2);

    // DEL: the port, the TAP inside and the address lease go; a second DEL is fine.
    for _ in 0..2 {
        let (ok, printed) = cni("DEL", "ctr-a", &netns_path(&a), "eth0", &conf);
        assert!(ok, "{printed}");
    }
    assert!(!link_exists(Some(&a.name), "eth0"), "eth0 outlived DEL");
    assert!(!lab
        .reserved("cnblue")
        .contains(&addr_a.split('/').next().unwrap().to_string()));
    let ports = lab.sw().json(&["show", "ports"]);
    assert_eq!(
        ports.as_array().unwrap().len(),
        2,
        "b's port and the gateway stay: {ports}"
    );
}

/// DEL is best effort (no switch, no namespace: success after cleaning what it can);
/// ADD without a switch is "try again later" and leaves no address taken; an ADD that the
/// switch refuses gives its address back; STATUS says whether the switch is there; GC
/// removes what the runtime no longer lists; a restart keeps an attachment working.
#[test]
fn cni_del_is_best_effort_and_gc_and_restarts_keep_the_books() {
    let test = "cni_del_is_best_effort_and_gc_and_restarts_keep_the_books";
    if !have(test, &[]) {
        return;
    }
    let mut lab = Lab::new();
    let (a, b, c) = (Netns::new(), Netns::new(), Netns::new());
    let conf = lab.conf("cngreen", "198.18.75.0/24");
    let mut v11 = conf.clone();
    v11["cniVersion"] = json!("1.1.0");
    let status = |v: &Value| cni_raw("STATUS", &[], v.to_string().as_bytes());
    assert!(status(&v11).0, "STATUS with the switch up");
    fails_with(status(&conf), 1); // a 1.0.0 configuration has no STATUS
    assert!(cni("ADD", "gc-a", &netns_path(&a), "eth0", &conf).0);
    assert!(cni("ADD", "gc-b", &netns_path(&b), "eth0", &conf).0);
    // An ADD the switch refuses (a subnet it cannot read) gives its lease back.
    let mut refused = lab.conf("cnbad", "198.18.76.0/24");
    refused["subnet"] = json!("not-a-subnet");
    fails_with(cni("ADD", "gc-c", &netns_path(&c), "eth0", &refused), 7);
    assert_eq!(
        lab.reserved("cnbad"),
        Vec::<String>::new(),
        "the lease leaked"
    );

    // kill -9 and a new switch: ctr-a's interface is reattached and answers.
    let addr_b = sh(&[
        "ip", "-n", &b.name, "-4", "-o", "addr", "show", "dev", "eth0",
    ]);
    let addr_b = addr_b
        .split_whitespace()
        .nth(3)
        .and_then(|c| c.split('/').next())
        .unwrap()
        .to_string();
    assert!(a.ping(&addr_b));
    lab.kill();
    assert!(
        link_exists(Some(&a.name), "eth0"),
        "the interface went with the switch"
    );
    fails_with(status(&v11), 50);
    fails_with(cni("ADD", "gc-c", &netns_path(&c), "eth0", &conf), 11);
    assert_eq!(
        lab.reserved("cngreen").len(),
        2,
        "an ADD without a switch took a lease"
    );
    lab.start();
    let started = Instant::now();
    while !a.ping(&addr_b) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "traffic did not resume after the restart"
        );
    }

    // GC: the runtime lists only ctr-a; ctr-b's port and lease go.
    let mut gc = v11.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-a", "ifname": "eth0"}]);
    let (ok, printed) = cni_raw("GC", &[], gc.to_string().as_bytes());
    assert!(ok, "{printed}");
    assert_eq!(
        lab.reserved("cngreen").len(),
        1,
        "GC did not release ctr-b's lease"
    );
    assert!(
        !link_exists(Some(&b.name), "eth0"),
        "GC left ctr-b's interface"
    );
    let left = lab.sw().json(&["show", "cni"]);
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left[0]["container_id"], "gc-a");

    // DEL with the namespace gone, then with no switch at all: success both times.
    let mut a = a;
    a.delete();
    assert!(cni("DEL", "gc-a", "/run/netns/no-such-ns", "eth0", &conf).0);
    lab.kill();
    assert!(cni("DEL", "gc-zz", &netns_path(&c), "eth0", &conf).0);
}

/// First in a conflist chain on a host (a namespace standing for it): `portmap` and
/// `firewall` after uswitch-cni read its result as prevResult, the WAN reaches the
/// container's server through portmap's DNAT from the host's address, and DEL runs the
/// chain backwards without an error. portmap's and firewall's iptables rules stay in the
/// host's namespace.
#[test]
fn cni_works_first_in_a_chain_with_portmap_and_firewall() {
    let test = "cni_works_first_in_a_chain_with_portmap_and_firewall";
    if !have(
        test,
        &[
            &format!("{PLUGINS}/portmap"),
            &format!("{PLUGINS}/firewall"),
        ],
    ) {
        return;
    }
    let host = Netns::new();
    let wan = Wan::new(Some(&host));
    let hostns = host.handle();
    let lab = Lab::new_in(Some(host));
    let ctr = Netns::new();
    let conf = lab.conf("cnchain", "198.18.79.0/24");
    let env = [
        ("CNI_CONTAINERID", "chain-a"),
        ("CNI_NETNS", &netns_path(&ctr)),
        ("CNI_IFNAME", "eth0"),
    ];
    let run = |program: &str, command: &str, conf: &Value| {
        plugin_in(
            Some(&hostns),
            program,
            command,
            &env,
            conf.to_string().as_bytes(),
        )
    };
    let (ok, ours) = run(CNI, "ADD", &conf);
    assert!(ok, "{ours}");
    let portmap = json!({
        "cniVersion": "1.0.0", "name": "cnchain", "type": "portmap",
        "capabilities": {"portMappings": true}, "snat": true,
        "runtimeConfig": {"portMappings": [
            {"hostPort": 18090, "containerPort": 80, "protocol": "tcp"}
        ]},
        "prevResult": ours
    });
    let (ok, mapped) = run(&format!("{PLUGINS}/portmap"), "ADD", &portmap);
    assert!(ok, "portmap refused our prevResult: {mapped}");
    let firewall = json!({
        "cniVersion": "1.0.0", "name": "cnchain", "type": "firewall", "backend": "iptables",
        "prevResult": mapped
    });
    let (ok, last) = run(&format!("{PLUGINS}/firewall"), "ADD", &firewall);
    assert!(ok, "firewall refused the chain's prevResult: {last}");
    assert_eq!(last["ips"], ours["ips"], "the chain lost our addresses");

    // The container serves on port 80; the WAN reaches it at the host's 18090.
    let server = ctr.spawn(|| {
        let l = std::net::TcpListener::bind("0.0.0.0:80").expect("listen");
        l.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.write_all(b"hello\n");
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        wan.fetch(18090).as_deref().map(str::trim),
        Some("hello"),
        "portmap's DNAT did not reach the container on uswitch"
    );
    assert!(server.join().unwrap());

    for (program, conf) in [
        (format!("{PLUGINS}/firewall"), &firewall),
        (format!("{PLUGINS}/portmap"), &portmap),
        (CNI.to_string(), &conf),
    ] {
        let (ok, printed) = run(&program, "DEL", conf);
        assert!(ok, "DEL by {program}: {printed}");
    }
    assert!(!link_exists(Some(&ctr.name), "eth0"));
}

/// podman (Debian's, CNI backend) with its own storage, run root, config and networks
/// defined by conflists in the test's own directory: two containers of one uswitch
/// network reach each other and carry 50 MB intact, one of another network reaches
/// neither, a `kill -9` of uswitch costs them nothing, and `podman rm -f` leaves no port
/// or TAP behind.
#[test]
fn podman_containers_on_uswitch_networks() {
    let test = "podman_containers_on_uswitch_networks";
    if !have(test, &["/usr/bin/podman", "/bin/busybox"]) {
        return;
    }
    let mut lab = Lab::new();
    let pm = Podman::new(&lab);
    let (c1, c2, c3) = (unique("pc"), unique("pc"), unique("pc"));
    pm.run(&c1, "pmblue");
    pm.run(&c2, "pmblue");
    pm.run(&c3, "pmred");
    let (a1, a2) = (pm.address(&c1), pm.address(&c2));
    assert!(a1.starts_with("198.18.77."), "{a1}");
    assert!(pm.pings(&c1, &a2), "two containers of one network");
    assert!(
        !pm.pings(&c3, &a1),
        "a container of another network reached pmblue"
    );
    let ports = lab.sw().json(&["show", "ports"]);
    assert_eq!(
        ports.as_array().unwrap().len(),
        5,
        "3 TAPs, 2 gateways: {ports}"
    );

    // 50 MB from c1 to c2 over TCP, its digest compared. The receiver keeps its stdin
    // open (busybox's nc ends with it) and writes what arrives.
    let sent = pm.ok(&[
        "exec",
        &c1,
        "sh",
        "-c",
        "dd if=/dev/urandom of=/tmp/data bs=1M count=50 2>/dev/null; md5sum < /tmp/data",
    ]);
    pm.ok(&[
        "exec",
        "-d",
        &c2,
        "sh",
        "-c",
        "sleep 60 | nc -l -p 5001 > /tmp/got",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    pm.ok(&[
        "exec",
        &c1,
        "sh",
        "-c",
        &format!("nc {a2} 5001 < /tmp/data"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let size = pm.ok(&["exec", &c2, "sh", "-c", "wc -c < /tmp/got"]);
        if size.trim() == "52428800" || Instant::now() > deadline {
            break pm.ok(&["exec", &c2, "sh", "-c", "md5sum < /tmp/got"]);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        sent.split_whitespace().next(),
        got.split_whitespace().next(),
        "50 MB arrived altered"
    );

    // kill -9, start again: the containers keep their eth0 and traffic resumes.
    lab.kill();
    lab.start();
    let started = Instant::now();
    while !pm.pings(&c1, &a2) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "traffic did not resume after the restart"
        );
    }
    pm.ok(&["rm", "-f", &c1, &c2, &c3]);
    let ports = lab.sw().json(&["show", "ports"]);
    let left: Vec<&str> = ports
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|n| !n.starts_with("ug"))
        .collect();
    assert!(left.is_empty(), "podman rm -f left ports {left:?}");
    let links = sh(&["ip", "-o", "link", "show"]);
    assert!(
        !links.lines().any(|l| l.contains(": uk")),
        "a CNI TAP outlived its container: {links}"
    );
}

/// A podman of the test's own: storage, run root, tmpdir and CNI config directory under
/// the lab's; uswitch-cni found in a plugin directory of its own; two networks.
struct Podman {
    dir: PathBuf,
    conf: PathBuf,
}

const PODMAN_IMAGE: &str = "localhost/uswitch-cni-busybox:1";

impl Podman {
    fn new(lab: &Lab) -> Podman {
        let dir = lab.dir.join("podman");
        let (net, bin) = (dir.join("net"), dir.join("bin"));
        std::fs::create_dir_all(&net).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(CNI, bin.join("uswitch-cni")).unwrap();
        let conf = dir.join("containers.conf");
        // Never podman's default network: the default is one of ours, in 198.18/15.
        std::fs::write(
            &conf,
            format!(
                "[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{}\"\n\
                 cni_plugin_dirs = [\"{}\", \"{PLUGINS}\"]\ndefault_network = \"pmblue\"\n\
                 default_subnet = \"198.18.77.0/24\"\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n",
                net.display(),
                bin.display()
            ),
        )
        .unwrap();
        for (name, subnet) in [("pmblue", "198.18.77.0/24"), ("pmred", "198.18.78.0/24")] {
            let mut plugin = lab.conf(name, subnet);
            plugin.as_object_mut().unwrap().remove("cniVersion");
            plugin.as_object_mut().unwrap().remove("name");
            plugin["capabilities"] = json!({"mac": true});
            let list = json!({"cniVersion": "1.0.0", "name": name, "plugins": [plugin]});
            std::fs::write(net.join(format!("{name}.conflist")), list.to_string()).unwrap();
        }
        let pm = Podman { dir, conf };
        let root = pm.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "sleep", "ping", "ip", "cat", "nc", "dd", "md5sum", "wc",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-c", "."])
            .output()
            .unwrap();
        let mut import = pm
            .command(&["import", "-", PODMAN_IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
        assert!(import.wait().unwrap().success(), "podman import");
        pm
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(args);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(&mut self.command(args), &format!("podman {args:?}"))
    }

    fn run(&self, name: &str, network: &str) {
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            "--cap-add",
            "NET_RAW",
            PODMAN_IMAGE,
            "sleep",
            "600",
        ]);
    }

    fn address(&self, name: &str) -> String {
        self.ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            name,
        ])
        .trim()
        .to_string()
    }

    fn pings(&self, from: &str, to: &str) -> bool {
        self.command(&["exec", from, "ping", "-c", "1", "-W", "1", to])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.command(&["rm", "-af", "-t", "0"]).output();
        let _ = self.command(&["system", "reset", "-f"]).output();
    }
}
