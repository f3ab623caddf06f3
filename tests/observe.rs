//! Observing the switch, end to end: the Prometheus endpoint (checked by Debian's
//! `promtool` and scraped by a real `prometheus` server, its values against `show stats`,
//! hostile clients refused while forwarding goes on), `uswitch top` driven in a tmux
//! pseudo-terminal, and `show topology` drawn by Graphviz.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Whether `tool` is on the PATH; a test without it says so loudly, and fails under
/// USWITCH_REQUIRE_PRIV=1 (CI installs it).
fn have(test: &str, tool: &str, package: &str) -> bool {
    if sh_ok(&["sh", "-c", &format!("command -v {tool}")]) {
        return true;
    }
    if std::env::var("USWITCH_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("{test}: needs {tool} (apt-get install {package}), and USWITCH_REQUIRE_PRIV=1 forbids skipping");
    }
    eprintln!("!!!!! SKIPPED {test}: needs {tool} (apt-get install {package})");
    false
}

/// The address the switch's metrics server bound (`--metrics 127.0.0.1:0`), from its log.
fn metrics_addr(sw: &mut Uswitch) -> SocketAddr {
    let line = sw.wait_for_log("serving Prometheus on http://", Duration::from_secs(5));
    let rest = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    rest.parse().expect("an ADDR:PORT")
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, Some(200), "GET /metrics: {body}");
    body
}

/// `tool args...` with `input` on its stdin; what it did.
fn piped(tool: &str, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn promtool_accepts(body: &str) {
    let out = piped("promtool", &["check", "metrics"], body);
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn port_series(family: &str, network: &str, port: &str) -> String {
    format!("{family}{{network=\"{network}\",port=\"{port}\"}}")
}

/// The metrics agree with `show stats` taken just before and just after them, with
/// nothing moving in between (retried until the switch is quiet for a moment).
fn metrics_match_stats(sw: &Uswitch, addr: SocketAddr) -> (HashMap<String, f64>, Value) {
    for _ in 0..20 {
        let before = sw.json(&["show", "stats"]);
        // Past the half second one observation answers every scrape for.
        thread::sleep(Duration::from_millis(600));
        let body = scrape(addr);
        let after = sw.json(&["show", "stats"]);
        if before != after {
            continue;
        }
        let m = samples(&body);
        for p in after["ports"].as_array().unwrap() {
            let (name, net) = (p["name"].as_str().unwrap(), p["network"].as_str().unwrap());
            for (family, field) in [
                ("uswitch_port_rx_frames_total", "rx_frames"),
                ("uswitch_port_rx_bytes_total", "rx_bytes"),
                ("uswitch_port_tx_frames_total", "tx_frames"),
                ("uswitch_port_tx_bytes_total", "tx_bytes"),
                ("uswitch_port_flooded_frames_total", "floods"),
                ("uswitch_port_mac_moves_total", "mac_moves"),
            ] {
                let series = port_series(family, net, name);
                assert_eq!(
                    m.get(&series).copied(),
                    p[field].as_u64().map(|v| v as f64),
                    "{series} against show stats' {field}"
                );
            }
            for (reason, n) in p["drops"].as_object().unwrap() {
                let series = format!(
                    "uswitch_port_drops_total{{network=\"{net}\",port=\"{name}\",reason=\"{reason}\"}}"
                );
                assert_eq!(
                    m.get(&series).copied(),
                    n.as_u64().map(|v| v as f64),
                    "{series}"
                );
            }
        }
        for n in after["networks"].as_array().unwrap() {
            let name = n["name"].as_str().unwrap();
            for (family, field) in [
                ("uswitch_network_fdb_entries", "fdb_entries"),
                ("uswitch_network_fdb_evictions_total", "fdb_evictions"),
                ("uswitch_network_fdb_expired_total", "fdb_expired"),
            ] {
                let series = format!("{family}{{network=\"{name}\"}}");
                assert_eq!(
                    m.get(&series).copied(),
                    n[field].as_u64().map(|v| v as f64),
                    "{series}"
                );
            }
        }
        return (m, after);
    }
    panic!("the switch's counters never stood still for a second");
}

/// A namespace whose kernel says nothing unasked (no IPv6 chatter), holding `tap`.
fn quiet_host(tap: &str, mac: &str, cidr: &str) -> Netns {
    let ns = Netns::new();
    disable_ipv6(&ns);
    ns.adopt(tap, mac, cidr);
    ns
}

/// `n` broadcast probe frames from `src` out of `tap` in `ns`.
fn probes(ns: &Netns, tap: &str, src: &str, n: usize) -> usize {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&mac(src));
    frame.extend_from_slice(&PROBE_ETHERTYPE.to_be_bytes());
    frame.resize(100, 0x5a);
    send_raw(ns, tap, vec![frame; n])
}

#[test]
fn metrics_pass_promtool_and_agree_with_show_stats() {
    if !privileged("metrics_pass_promtool_and_agree_with_show_stats")
        || !have(
            "metrics_pass_promtool_and_agree_with_show_stats",
            "promtool",
            "prometheus",
        )
    {
        return;
    }
    let (a, b, c) = (unique("mt"), unique("mt"), unique("mt"));
    let mut sw = Uswitch::start(&[
        "--port",
        &a,
        "--port",
        &b,
        "--port",
        &format!("{c}@blue"),
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = metrics_addr(&mut sw);
    let ha = quiet_host(&a, "02:00:00:00:10:01", "198.18.10.1/24");
    let hb = quiet_host(&b, "02:00:00:00:10:02", "198.18.10.2/24");
    assert!(ha.ping("198.18.10.2"));
    assert_eq!(probes(&ha, &a, "02:00:00:00:10:01", 200), 200);

    let body = scrape(addr);
    promtool_accepts(&body);
    for family in [
        "uswitch_port_rx_frames_total",
        "uswitch_port_drops_total",
        "uswitch_network_fdb_entries",
        "uswitch_port_info",
    ] {
        assert!(
            body.contains(&format!("# HELP {family} ")),
            "{family}: {body}"
        );
    }
    assert!(body.contains("# TYPE uswitch_port_rx_frames_total counter"));
    assert!(body.contains("# TYPE uswitch_network_fdb_entries gauge"));

    let (m, stats) = metrics_match_stats(&sw, addr);
    // The known traffic is there: a's 200 probes (and the ping) came in, were flooded to
    // b, and none of it reached blue.
    let rx_a = m[&port_series("uswitch_port_rx_frames_total", "default", &a)];
    assert!(rx_a >= 202.0, "rx of {a}: {rx_a}");
    assert!(m[&port_series("uswitch_port_tx_frames_total", "default", &b)] >= 201.0);
    assert!(m[&port_series("uswitch_port_flooded_frames_total", "default", &a)] >= 200.0);
    assert_eq!(
        m[&port_series("uswitch_port_rx_frames_total", "blue", &c)],
        { port(&stats["ports"], &c)["rx_frames"].as_u64().unwrap() as f64 }
    );
    // a and b, and whatever the TAPs said before they left this namespace.
    assert!(m["uswitch_network_fdb_entries{network=\"default\"}"] >= 2.0);
    assert_eq!(m["uswitch_network_ports{network=\"blue\"}"], 1.0);
    assert!(m["process_resident_memory_bytes"] > 0.0);
    assert!(m["process_open_fds"] > 0.0);
    assert!(
        m.contains_key(&format!(
            "uswitch_port_info{{kind=\"tap\",network=\"default\",owner=\"\",port=\"{a}\",state=\"up\"}}"
        )),
        "{body}"
    );

    // A port that goes away stops being exported; the others' counters only grew.
    assert!(sw.client(&["port", "del", &c]).status.success());
    assert_eq!(probes(&ha, &a, "02:00:00:00:10:01", 50), 50);
    let (after, _) = metrics_match_stats(&sw, addr);
    assert!(
        !after.keys().any(|k| k.contains(&format!("port=\"{c}\""))),
        "{c} is still exported"
    );
    assert_eq!(after["uswitch_network_ports{network=\"blue\"}"], 0.0);
    for (series, v) in &m {
        if series.starts_with("uswitch_port_") && series.contains("_total") {
            if let Some(now) = after.get(series) {
                assert!(now >= v, "{series} went from {v} to {now}");
            }
        }
    }
    let rx_after = after[&port_series("uswitch_port_rx_frames_total", "default", &a)];
    assert!(rx_after >= rx_a + 50.0, "{rx_a} -> {rx_after}");
    drop((ha, hb));
}

/// A `prometheus` server of the test's own scrapes the switch once a second; its query
/// API then answers with the switch's own counters.
#[test]
fn a_prometheus_server_scrapes_the_switch() {
    if !privileged("a_prometheus_server_scrapes_the_switch")
        || !have(
            "a_prometheus_server_scrapes_the_switch",
            "prometheus",
            "prometheus",
        )
    {
        return;
    }
    let (a, b) = (unique("mp"), unique("mp"));
    let mut sw = Uswitch::start(&["--port", &a, "--port", &b, "--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&mut sw);
    let ha = quiet_host(&a, "02:00:00:00:11:01", "198.18.11.1/24");
    let _hb = quiet_host(&b, "02:00:00:00:11:02", "198.18.11.2/24");
    assert_eq!(probes(&ha, &a, "02:00:00:00:11:01", 100), 100);

    let dir = std::env::temp_dir().join(unique("prom"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: uswitch\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    // Its own web port: bound and let go (the server binds it a moment later).
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut server = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting prometheus");
    let query = |q: &str| -> Option<Value> {
        let (status, body) = http_get(web, &format!("/api/v1/query?query={q}"));
        if status != Some(200) {
            return None;
        }
        // A chunked answer: the JSON object is between the first '{' and the last '}'.
        let json = &body[body.find('{')?..=body.rfind('}')?];
        serde_json::from_str(json).ok()
    };
    let series = format!("uswitch_port_rx_frames_total{{port=\"{a}\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while Instant::now() < deadline {
        if let Some(v) = query(&series) {
            let value = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            if value.is_some_and(|x| x >= 100.0) {
                seen = Some(v);
                break;
            }
        }
        thread::sleep(Duration::from_millis(500));
    }
    let up = query("up{job=\"uswitch\"}");
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let seen = seen.expect("prometheus never held uswitch's rx counter of 100 probes or more");
    assert_eq!(seen["data"]["result"][0]["metric"]["network"], "default");
    let up = up.expect("prometheus answers a query for up");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

#[test]
fn hostile_clients_are_refused_and_forwarding_goes_on() {
    if !privileged("hostile_clients_are_refused_and_forwarding_goes_on") {
        return;
    }
    let (a, b) = (unique("mh"), unique("mh"));
    let mut sw = Uswitch::start(&["--port", &a, "--port", &b, "--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&mut sw);
    let ha = quiet_host(&a, "02:00:00:00:12:01", "198.18.12.1/24");
    let _hb = quiet_host(&b, "02:00:00:00:12:02", "198.18.12.2/24");

    // Other paths and methods, and a head larger than the server reads.
    let (status, body) = http_get(addr, "/nope");
    assert_eq!(status, Some(404), "{body}");
    assert!(body.contains("/metrics"), "{body}");
    let (status, _) = http(
        addr,
        format!("POST /metrics HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, Some(405));
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, _) = http(addr, huge.as_bytes());
    assert!(
        status.is_none() || status == Some(431),
        "a 64 KiB header got {status:?}"
    );
    let (status, _) = http(addr, b"\x16\x03\x01 this is not HTTP\r\n\r\n");
    assert_ne!(status, Some(200));

    // A thousand clients at once, half idle and half scraping, while a stream of pings
    // crosses the switch: the pings all come back, every scraper gets the metrics or a
    // closed connection, and the server answers once they are gone.
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        let ha = ha.handle();
        thread::spawn(move || {
            let (mut sent, mut answered) = (0, 0);
            while !stop.load(Ordering::Relaxed) || sent < 20 {
                sent += 1;
                if ha.ping("198.18.12.2") {
                    answered += 1;
                }
                thread::sleep(Duration::from_millis(50));
            }
            (sent, answered)
        })
    };
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok())
        .collect();
    // Scrapers for eight seconds: refused while the idle ones fill every slot, served
    // once the header timeout (5 s) has let those go.
    let scrapers: Vec<_> = (0..10)
        .map(|_| {
            thread::spawn(move || {
                let (mut served, mut refused) = (0, 0);
                let until = Instant::now() + Duration::from_secs(8);
                while Instant::now() < until {
                    match http_get(addr, "/metrics") {
                        (Some(200), body) if body.contains("uswitch_port_rx_frames_total") => {
                            served += 1
                        }
                        (None, _) => refused += 1,
                        (other, body) => panic!("a scraper got {other:?}: {body}"),
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                (served, refused)
            })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for s in scrapers {
        let (ok, no) = s.join().unwrap();
        served += ok;
        refused += no;
    }
    assert!(
        refused > 0,
        "a thousand idle clients, and no scraper was refused"
    );
    assert!(
        served > 0,
        "no scraper was served once the idle clients timed out"
    );
    drop(idle);
    stop.store(true, Ordering::Relaxed);
    let (sent, answered) = pinger.join().unwrap();
    assert_eq!(
        answered, sent,
        "pings lost while the metrics server was under load"
    );

    // The idle ones it accepted are let go after the header timeout; then it answers.
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        match http_get(addr, "/metrics") {
            (Some(200), body) => break body,
            _ if Instant::now() < deadline => thread::sleep(Duration::from_millis(250)),
            other => panic!("no metrics after the crowd left: {other:?}"),
        }
    };
    let m = samples(&body);
    assert!(
        m["uswitch_metrics_refused_connections_total"] > 0.0,
        "{refused} refused by the test's count, none by the switch's"
    );
    assert!(m["uswitch_metrics_bad_requests_total"] >= 2.0);
    assert!(sw.client(&["show", "ports"]).status.success());
}

/// A tmux server of the test's own, removed on every exit path.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(width: u16, height: u16, command: &str) -> Tmux {
        let t = Tmux {
            socket: unique("tmux"),
        };
        let (w, h) = (width.to_string(), height.to_string());
        assert!(sh_ok(&[
            "tmux",
            "-L",
            &t.socket,
            "new-session",
            "-d",
            "-x",
            &w,
            "-y",
            &h,
            command
        ]));
        t
    }

    fn run(&self, args: &[&str]) -> bool {
        let mut full = vec!["tmux", "-L", &self.socket];
        full.extend_from_slice(args);
        sh_ok(&full)
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The screen once it holds `needle`; panics after `timeout`.
    fn wait_for(&self, needle: impl Fn(&str) -> bool, timeout: Duration, what: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if needle(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what}; the screen:\n{s}");
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

/// The number `si` printed ("512", "1.5k").
fn unsi(s: &str) -> Option<f64> {
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1e3),
        'M' => (&s[..s.len() - 1], 1e6),
        'G' => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// The cells of the table row naming `port` on `screen`.
fn row<'a>(screen: &'a str, port: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .find(|l| l.split_whitespace().any(|w| w.trim_matches('│') == port))
        .map(|l| {
            l.split(|c: char| c.is_whitespace() || c == '│')
                .filter(|w| !w.is_empty())
                .collect()
        })
}

#[test]
fn top_shows_rates_in_a_terminal_narrow_or_wide_and_says_when_the_switch_goes() {
    let test = "top_shows_rates_in_a_terminal_narrow_or_wide_and_says_when_the_switch_goes";
    if !privileged(test) || !have(test, "tmux", "tmux") {
        return;
    }
    let (a, b, c) = (unique("tp"), unique("tp"), unique("tp"));
    let mut sw = Uswitch::start(&["--port", &a, "--port", &b, "--port", &format!("{c}@blue")]);
    let ha = quiet_host(&a, "02:00:00:00:13:01", "198.18.13.1/24");
    let hb = quiet_host(&b, "02:00:00:00:13:02", "198.18.13.2/24");
    // What b said from uswitch's namespace before it moved (IPv6 is on there) may have
    // reached a while a was moving, down: one frame to a now says it is up.
    probes(&hb, &b, "02:00:00:00:13:02", 1);

    // Known traffic: 50 probes from a every 100 ms, about 500 frames a second, and 10
    // from a multicast source (dropped as source_multicast), about 100 a second.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, ha, a) = (stop.clone(), ha.handle(), a.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                probes(&ha, &a, "02:00:00:00:13:01", 50);
                probes(&ha, &a, "03:00:00:00:13:01", 10);
                thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let tmux = Tmux::new(120, 30, &format!("{USWITCH} top --control {}", sw.control));
    let rx_of = |screen: &str, col: usize| {
        row(screen, &a)
            .and_then(|cells| cells.get(col).copied().and_then(unsi))
            .unwrap_or(0.0)
    };
    // Wide: PORT OWNER NETWORK KIND STATE RX f/s ...; a's OWNER is "-".
    let screen = tmux.wait_for(
        |s| rx_of(s, 5) >= 100.0,
        Duration::from_secs(10),
        "a's receive rate never showed",
    );
    assert!(screen.contains("uswitch top"), "{screen}");
    assert!(
        screen.contains("OWNER") && screen.contains("DROP/s"),
        "{screen}"
    );
    let cells = row(&screen, &a).unwrap();
    assert_eq!(&cells[1..5], &["-", "default", "tap", "up"], "{screen}");
    assert!(row(&screen, &c).is_some(), "{c} missing:\n{screen}");
    assert!(
        screen.contains("networks") && screen.contains("blue"),
        "{screen}"
    );
    let screen = tmux.wait_for(
        |s| s.contains("busiest drop: source_multicast"),
        Duration::from_secs(5),
        "the busiest drop reason never showed",
    );
    let drops = row(&screen, &a).and_then(|c| c.get(9).copied().and_then(unsi));
    assert!(
        drops.is_some_and(|d| d >= 20.0),
        "a's drops/s: {drops:?}\n{screen}"
    );
    // Sorted by receive rate, a comes first.
    let first = screen.lines().position(|l| l.contains(&a)).unwrap();
    assert!(
        screen.lines().position(|l| l.contains(&b)).unwrap() > first,
        "{screen}"
    );

    // Sorting by name, then a narrow terminal: the port and its rate still show.
    assert!(tmux.run(&["send-keys", "n"]));
    tmux.wait_for(
        |s| s.contains("sort: name"),
        Duration::from_secs(5),
        "no sort by name",
    );
    assert!(tmux.run(&["resize-window", "-x", "40", "-y", "20"]));
    let narrow = tmux.wait_for(
        |s| !s.contains("OWNER") && rx_of(s, 1) >= 100.0,
        Duration::from_secs(10),
        "the narrow view never showed a's rate",
    );
    assert!(
        narrow.lines().all(|l| l.chars().count() <= 40),
        "wider than the terminal:\n{narrow}"
    );
    assert!(narrow.contains("PORT"), "{narrow}");

    // The switch goes away: the view says so and keeps asking; q quits.
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    assert!(tmux.run(&["resize-window", "-x", "120", "-y", "30"]));
    sw.stop();
    tmux.wait_for(
        |s| s.contains("the switch went away"),
        Duration::from_secs(10),
        "the view never said the switch went away",
    );
    assert!(tmux.run(&["send-keys", "q"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while tmux.run(&["has-session"]) {
        assert!(
            Instant::now() < deadline,
            "q did not quit:\n{}",
            tmux.screen()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn top_without_a_switch_says_so() {
    let out = Command::new(USWITCH)
        .args(["top", "--control", "/nonexistent/uswitch.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/uswitch.sock"), "{err}");
}

#[test]
fn topology_holds_every_port_network_and_remote_and_graphviz_draws_it() {
    let test = "topology_holds_every_port_network_and_remote_and_graphviz_draws_it";
    if !privileged(test) || !have(test, "dot", "graphviz") {
        return;
    }
    // Host 0 of an underlay runs the switch: a TAP on default, one on blue, a host port
    // on blue, an uplink (a veth) on default, and blue on VXLAN to host 1.
    let ul = Underlay::new(2, false);
    let host = &ul.hosts[0];
    let (pa, pc, hp) = (unique("ta"), unique("tc"), unique("hp"));
    sh(&[
        "ip", "-n", &host.name, "link", "add", "up0", "type", "veth", "peer", "name", "up1",
    ]);
    for end in ["up0", "up1"] {
        sh(&["ip", "-n", &host.name, "link", "set", end, "up"]);
    }
    let vxlan = format!("blue:vni=42,local={},remote={}", ul.addrs[0], ul.addrs[1]);
    let sw = Uswitch::start_in(
        host,
        &[
            "--port",
            &pa,
            "--port",
            &format!("{pc}@blue"),
            "--host-port",
            &format!("{hp}@blue=198.18.14.254/24"),
            "--uplink",
            "up0",
            "--vxlan",
            &vxlan,
        ],
    );
    let hc = Netns::new();
    disable_ipv6(&hc);
    hc.adopt_from(host, &pc, "02:00:00:00:14:03", "198.18.14.3/24");
    // Traffic on blue while the rates are measured.
    let pinger = {
        let hc = hc.handle();
        thread::spawn(move || {
            (0..30)
                .filter(|_| {
                    thread::sleep(Duration::from_millis(100));
                    hc.ping("198.18.14.254")
                })
                .count()
        })
    };

    let out = sw.client(&["show", "topology", "--format", "dot", "--rates-over", "1"]);
    assert!(out.status.success());
    let dot = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(pinger.join().unwrap() > 0);
    assert!(dot.starts_with("graph"), "{dot}");
    for id in [
        "\"net:default\"".to_string(),
        "\"net:blue\"".to_string(),
        format!("\"port:{pa}\""),
        format!("\"port:{pc}\""),
        format!("\"port:{hp}\""),
        "\"port:up0\"".to_string(),
        format!("\"vtep:{}\"", ul.addrs[1]),
        "\"wire:up0\"".to_string(),
        format!("\"port:{hp}\" -- \"host\""),
    ] {
        assert!(dot.contains(&id), "{id} missing from:\n{dot}");
    }
    // The ping's rate is on the edge between blue and the container's port.
    let edge = dot
        .lines()
        .find(|l| l.contains(&format!("\"net:blue\" -- \"port:{pc}\"")))
        .unwrap_or_else(|| panic!("no edge to {pc}:\n{dot}"));
    assert!(edge.contains("f/s"), "no rate on {edge}");

    // Graphviz parses and draws it.
    let drawn = piped("dot", &["-Tsvg"], &dot);
    assert!(
        drawn.status.success() && drawn.stderr.is_empty(),
        "dot -Tsvg: {}",
        String::from_utf8_lossy(&drawn.stderr)
    );

    let out = sw.client(&["show", "topology", "--format", "svg", "--rates-over", "0"]);
    assert!(out.status.success());
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(svg.contains("<svg") && svg.contains(&pa), "{svg}");

    let json = sw.json(&["show", "topology", "--rates-over", "0"]);
    let names = |key: &str, field: &str| -> Vec<String> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[field].as_str().unwrap().to_string())
            .collect()
    };
    let nets = names("networks", "name");
    assert!(nets.contains(&"default".into()) && nets.contains(&"blue".into()));
    let ports = names("ports", "name");
    for p in [&pa, &pc, &hp, &"up0".to_string()] {
        assert!(ports.contains(p), "{p} missing from {json}");
    }
    assert_eq!(names("remotes", "remote"), vec![ul.addrs[1].clone()]);
    assert_eq!(json["remotes"][0]["vni"], 42);
}

#[test]
fn topology_rejects_a_bad_format_clearly() {
    let out = Command::new(USWITCH)
        .args([
            "show",
            "topology",
            "--format",
            "png",
            "--control",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("png") && err.contains("dot"), "{err}");
}
