//! The cluster at scale: N simulated nodes with M MACs each put straight into a real etcd,
//! then one real uswitch node joins, and this measures how long it takes to sync, how
//! many updates a second it absorbs while a ping runs through it, its memory, and what a
//! flood costs it as the network's flood list grows (head-end replication).
//!
//! ```sh
//! cargo build --release -p uswitch -p uswitch-benches
//! target/release/cluster-scale --nodes 10,100,1000 --macs 100 --out benches/results
//! ```
//!
//! Everything runs in a network namespace of its own: etcd on its loopback, the node's
//! VTEP on a veth whose far end drops whatever uswitch sends to the simulated VTEPs, two
//! containers of the launcher's on the cluster network. The namespace, etcd
//! and uswitch are removed on every exit path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, Txn, TxnOp};
use serde_json::{json, Value};

const PREFIX: &str = "/uswitch/v1";
const NETWORK: &str = "scale";
const ETCD_URL: &str = "http://127.0.0.1:23790";

/// Gives up: a panic, so that the lab's Drop still removes the namespace, etcd and
/// uswitch on the way out.
fn die(msg: impl std::fmt::Display) -> ! {
    panic!("cluster-scale: {msg}")
}

/// A namespace, with what runs in it; all removed on drop.
struct Lab {
    ns: String,
    dir: PathBuf,
    children: Vec<Child>,
    containers: Vec<String>,
    uswitch: PathBuf,
    control: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.client(&["rm", c]);
        }
        for c in self.children.iter_mut().rev() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(args: &[&str]) {
    let ok = Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        die(format!("{args:?} failed"));
    }
}

impl Lab {
    fn new(uswitch: &Path, tag: &str) -> Lab {
        let ns = format!("uscs{}{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&ns);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(e));
        run(&["ip", "netns", "add", &ns]);
        let lab = Lab {
            control: dir.join("uswitch.sock"),
            ns,
            dir,
            children: Vec::new(),
            containers: Vec::new(),
            uswitch: uswitch.to_path_buf(),
        };
        let ip = |args: &[&str]| {
            let mut all = vec!["ip", "-n", lab.ns.as_str()];
            all.extend_from_slice(args);
            run(&all);
        };
        ip(&["link", "set", "lo", "up"]);
        // The underlay: a veth pair whose far end takes nothing, and the simulated VTEPs
        // behind a neighbour that does not exist: every datagram to them leaves ul0 and
        // is dropped at ul1 (this kernel has no dummy interface).
        ip(&["link", "add", "ul0", "type", "veth", "peer", "name", "ul1"]);
        ip(&["addr", "add", "198.18.1.1/24", "dev", "ul0"]);
        ip(&["link", "set", "ul0", "up"]);
        ip(&["link", "set", "ul1", "up"]);
        ip(&[
            "neigh",
            "add",
            "198.18.1.2",
            "lladdr",
            "02:00:00:00:00:02",
            "dev",
            "ul0",
            "nud",
            "permanent",
        ]);
        ip(&["route", "add", "198.18.16.0/20", "via", "198.18.1.2"]);
        lab
    }

    fn spawn(&mut self, what: &str, args: &[&str]) -> u32 {
        let log =
            std::fs::File::create(self.dir.join(format!("{what}.log"))).unwrap_or_else(|e| die(e));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| die(format!("starting {what}: {e}")));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn start_etcd(&mut self) {
        let data = self.dir.join("etcd");
        let data = data.display().to_string();
        self.spawn(
            "etcd",
            &[
                "etcd",
                "--data-dir",
                &data,
                "--listen-client-urls",
                ETCD_URL,
                "--advertise-client-urls",
                ETCD_URL,
                "--listen-peer-urls",
                "http://127.0.0.1:23800",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:23800",
                "--initial-cluster",
                "default=http://127.0.0.1:23800",
                "--quota-backend-bytes",
                "4294967296",
            ],
        );
    }

    /// uswitch as the real node; its pid.
    fn start_uswitch(&mut self) -> u32 {
        let control = self.control.display().to_string();
        let state = self.dir.join("state").display().to_string();
        let bin = self.uswitch.display().to_string();
        self.spawn(
            "uswitch",
            &[
                &bin,
                "--control",
                &control,
                "--state-dir",
                &state,
                "--cluster",
                &format!("etcd={ETCD_URL}"),
                "--node",
                "real",
                "--vtep",
                "198.18.1.1",
                "--bum-rate",
                "0",
            ],
        )
    }

    fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.uswitch)
            .args(args)
            .arg("--control")
            .arg(&self.control)
            .output()
            .unwrap_or_else(|e| die(e))
    }

    fn json(&self, args: &[&str]) -> Option<Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.client(&all);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    fn cluster(&self) -> Value {
        self.json(&["show", "cluster"]).unwrap_or(Value::Null)
    }
}

/// Runs `f` on a thread inside namespace `ns`, on a runtime of its own.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| die(format!("{path}: {e}")));
        // SAFETY: setns(2) on a descriptor held open; it moves only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            die(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        f()
    })
    .join()
    .unwrap_or_else(|_| die("a thread in the namespace failed"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(e))
}

async fn connect() -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Client::connect([ETCD_URL], None).await {
            if c.status().await.is_ok() {
                return c;
            }
        }
        if Instant::now() > deadline {
            die("etcd did not come up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mac_of(k: u64) -> String {
    let b = k.to_be_bytes();
    format!("02:5c:{:02x}:{:02x}:{:02x}:{:02x}", b[4], b[5], b[6], b[7])
}

/// The address MAC `k` advertises: one of 198.18.0.0/15, never 198.18.1.1.
fn ip_of(k: u64) -> String {
    let a = 0xc612_0000u32 + 0x200 + (k as u32 % 0x1_fd00);
    std::net::Ipv4Addr::from(a).to_string()
}

/// Puts `kvs` with transactions of 128 operations (etcd's limit), 16 at a time.
async fn put_all(client: &Client, kvs: Vec<(String, Vec<u8>)>) {
    let mut pending = Vec::new();
    for chunk in kvs.chunks(128) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(k, v)| TxnOp::put(k.as_str(), v.clone(), None))
            .collect();
        let mut c = client.clone();
        pending.push(tokio::spawn(async move {
            c.txn(Txn::new().and_then(ops)).await
        }));
        if pending.len() == 16 {
            for p in pending.drain(..) {
                if !matches!(p.await, Ok(Ok(_))) {
                    die("a put to etcd failed");
                }
            }
        }
    }
    for p in pending {
        if !matches!(p.await, Ok(Ok(_))) {
            die("a put to etcd failed");
        }
    }
}

/// N simulated nodes with M MACs each, all members of the network.
fn simulated(nodes: u64, macs: u64, first_mac: u64) -> Vec<(String, Vec<u8>)> {
    let mut kvs = Vec::new();
    for i in 0..nodes {
        let node = format!("s{i}");
        let vtep = format!("198.18.{}.{}", 16 + i / 250, 1 + i % 250);
        let record = json!({ "name": node, "vtep": vtep, "port": 4789 });
        kvs.push((
            format!("{PREFIX}/nodes/{node}"),
            record.to_string().into_bytes(),
        ));
        kvs.push((format!("{PREFIX}/members/{NETWORK}/{node}"), Vec::new()));
        for j in 0..macs {
            let k = first_mac + i * macs + j;
            let rec = json!({ "ips": [ip_of(k)] });
            kvs.push((
                format!("{PREFIX}/macs/{NETWORK}/{}/{node}", mac_of(k)),
                rec.to_string().into_bytes(),
            ));
        }
    }
    kvs
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process's main thread (the event loop, which floods)
/// has used: the cluster agent's thread is left out.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime): the 12th and 13th after the command name's ')'.
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > timeout {
            die(format!("{what} did not happen within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Sends `count` broadcast frames out of `ifname` in namespace `ns` (AF_PACKET).
fn send_broadcasts(ns: &str, ifname: &str, count: usize) {
    let ifname = ifname.to_string();
    in_netns(ns, move || {
        let cname = std::ffi::CString::new(ifname).unwrap_or_default();
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 || index == 0 {
            die("a packet socket in the container");
        }
        // SAFETY: sockaddr_ll is plain data.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = index;
        to.sll_halen = 6;
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&[0x02, 0x5d, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        for n in 0..count {
            frame[14..22].copy_from_slice(&(n as u64).to_be_bytes());
            // SAFETY: frame and to are valid for the sizes given.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    &to as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if sent < 0 {
                // A full queue: let the switch catch up.
                std::thread::sleep(Duration::from_micros(200));
            }
            if n % 64 == 63 {
                // Paced, so the TAP's queue does not overflow before the switch reads.
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
    });
}

/// The flood counter of the container's port.
fn floods_of(lab: &Lab, port_prefix: &str) -> u64 {
    let ports = lab.json(&["show", "ports"]).unwrap_or(Value::Null);
    ports
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(port_prefix))
        })
        .map(|p| p["counters"]["floods"].as_u64().unwrap_or(0))
        .sum()
}

#[derive(Debug, Clone)]
struct Point {
    nodes: u64,
    macs: u64,
    load_secs: f64,
    sync_secs: f64,
    rss_mib: f64,
    updates: u64,
    update_secs: f64,
    ping_loss: String,
    flood_us: f64,
}

fn measure(uswitch: &Path, nodes: u64, macs: u64, updates: u64) -> Point {
    let mut lab = Lab::new(uswitch, &nodes.to_string());
    lab.start_etcd();
    let ns = lab.ns.clone();
    let load_secs = in_netns(&ns, move || {
        runtime().block_on(async move {
            let client = connect().await;
            let net =
                json!({ "name": NETWORK, "vni": 100, "subnet": "198.18.0.0/15", "mtu": null });
            let mut kvs = vec![
                (
                    format!("{PREFIX}/networks/{NETWORK}"),
                    net.to_string().into_bytes(),
                ),
                (format!("{PREFIX}/vnis/100"), NETWORK.as_bytes().to_vec()),
            ];
            kvs.extend(simulated(nodes, macs, 0));
            let start = Instant::now();
            put_all(&client, kvs).await;
            start.elapsed().as_secs_f64()
        })
    });
    let started = Instant::now();
    let pid = lab.start_uswitch();
    let want = nodes * macs;
    wait_until("the node's sync", Duration::from_secs(600), || {
        let s = lab.cluster();
        s["remote_macs"].as_u64() == Some(want)
            && s["nodes"].as_object().map(|o| o.len() as u64) == Some(nodes + 1)
    });
    let sync_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let rss_mib = rss_kib(pid) as f64 / 1024.0;

    // Two containers on the network and a ping between them while updates pour in.
    let (c1, c2) = (format!("cs{}a", nodes), format!("cs{}b", nodes));
    let mut addrs = Vec::new();
    for c in [&c1, &c2] {
        let out = lab.client(&["run", "--name", c, "--network", NETWORK, "--json"]);
        if !out.status.success() {
            die(format!(
                "uswitch run: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        lab.containers.push(c.clone());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let a = v["interfaces"][0]["address"].as_str().unwrap_or_default();
        addrs.push(a.split('/').next().unwrap_or_default().to_string());
    }
    let ping = Command::new("ip")
        .args([
            "netns", "exec", &c1, "ping", "-q", "-i", "0.01", "-w", "30", &addrs[1],
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| die(e));
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    in_netns(&ns, move || {
        runtime().block_on(async move {
            let client = connect().await;
            // New MACs on the simulated nodes, as containers starting across the cluster.
            let mut kvs = Vec::new();
            for u in 0..updates {
                let k = nodes * macs + u;
                let node = format!("s{}", u % nodes);
                kvs.push((
                    format!("{PREFIX}/macs/{NETWORK}/{}/{node}", mac_of(k)),
                    json!({ "ips": [ip_of(k)] }).to_string().into_bytes(),
                ));
            }
            put_all(&client, kvs).await;
        })
    });
    wait_until("the updates' absorption", Duration::from_secs(600), || {
        lab.cluster()["remote_macs"].as_u64() == Some(want + updates)
    });
    let update_secs = t0.elapsed().as_secs_f64();
    // Stop the ping (SIGINT prints its summary).
    // SAFETY: kill(2) on our child's pid.
    unsafe { libc::kill(ping.id() as i32, libc::SIGINT) };
    let summary = ping
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let ping_loss = summary
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.contains("packet loss"))?;
            let n: Vec<&str> = line.split_whitespace().collect();
            // "N packets transmitted, M received, L% packet loss, ..."
            Some(format!("{} lost of {}", n.get(5)?, n.first()?))
        })
        .unwrap_or_else(|| "no summary".into());

    // Head-end replication: broadcasts from c1, each copied to every simulated VTEP.
    let floods = (200_000 / nodes).clamp(500, 20_000) as usize;
    let port = format!("{c1}-e0");
    let (f0, cpu0) = (floods_of(&lab, &port), cpu_secs(pid));
    send_broadcasts(&c1, "eth0", floods);
    std::thread::sleep(Duration::from_millis(500));
    let (f1, cpu1) = (floods_of(&lab, &port), cpu_secs(pid));
    let flooded = f1.saturating_sub(f0).max(1);
    let flood_us = (cpu1 - cpu0) * 1e6 / flooded as f64;
    eprintln!(
        "cluster-scale: {nodes} nodes x {macs} MACs: loaded in {load_secs:.1} s, synced in \
         {sync_secs:.2} s, RSS {rss_mib:.1} MiB, {updates} updates in {update_secs:.2} s \
         ({ping_loss}), {flooded} floods at {flood_us:.1} us each"
    );
    Point {
        nodes,
        macs,
        load_secs,
        sync_secs,
        rss_mib,
        updates,
        update_secs,
        ping_loss,
        flood_us,
    }
}

fn plot(points: &[Point], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    let xs: Vec<f64> = points.iter().map(|p| p.nodes as f64).collect();
    let (xmin, xmax) = (
        xs.iter().cloned().fold(f64::MAX, f64::min),
        xs.iter().cloned().fold(0.0, f64::max),
    );
    let series: [(&str, Vec<f64>); 3] = [
        (
            "sync time (s)",
            points.iter().map(|p| p.sync_secs).collect(),
        ),
        ("RSS (MiB)", points.iter().map(|p| p.rss_mib).collect()),
        (
            "CPU per flood (us)",
            points.iter().map(|p| p.flood_us).collect(),
        ),
    ];
    for (panel, (name, ys)) in panels.iter().zip(series.iter()) {
        let ymax = ys.iter().cloned().fold(0.0, f64::max) * 1.15 + 1e-9;
        let mut chart = ChartBuilder::on(panel)
            .caption(*name, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_desc("nodes in the network")
            .draw()?;
        chart.draw_series(LineSeries::new(
            xs.iter().cloned().zip(ys.iter().cloned()),
            &BLUE,
        ))?;
        chart.draw_series(
            xs.iter()
                .cloned()
                .zip(ys.iter().cloned())
                .map(|(x, y)| Circle::new((x, y), 3, BLUE.filled())),
        )?;
    }
    root.present()?;
    Ok(())
}

fn main() {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        match pair {
            [k, v] if k.starts_with("--") => {
                args.insert(k.trim_start_matches("--").to_string(), v.clone());
            }
            _ => die("usage: cluster-scale [--nodes 10,100,1000] [--macs 100] [--updates 20000] [--out DIR] [--uswitch PATH]"),
        }
    }
    let nodes: Vec<u64> = args
        .get("nodes")
        .map_or("10,100,1000", String::as_str)
        .split(',')
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| die(format!("--nodes: {n} is not a number")))
        })
        .collect();
    let num = |k: &str, d: u64| -> u64 {
        args.get(k)
            .map_or(Ok(d), |v| v.parse())
            .unwrap_or_else(|_| die(format!("--{k} takes a number")))
    };
    let (macs, updates) = (num("macs", 100), num("updates", 20_000));
    let here = std::env::current_exe().unwrap_or_default();
    let uswitch = args
        .get("uswitch")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.with_file_name("uswitch"));
    if !uswitch.exists() {
        die(format!(
            "{} is missing: cargo build --release -p uswitch (or give --uswitch PATH)",
            uswitch.display()
        ));
    }
    let out = PathBuf::from(args.get("out").map_or("benches/results", String::as_str));
    std::fs::create_dir_all(&out).unwrap_or_else(|e| die(e));
    let points: Vec<Point> = nodes
        .iter()
        .map(|&n| measure(&uswitch, n, macs, updates))
        .collect();
    let mut table = String::from(
        "| nodes | MACs each | remote MACs | etcd load (s) | node sync (s) | RSS (MiB) | updates | absorbed (s) | updates/s | ping at 10 ms meanwhile | loop CPU per flood (us) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in &points {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.1} | {:.2} | {:.1} | {} | {:.2} | {:.0} | {} | {:.1} |",
            p.nodes,
            p.macs,
            p.nodes * p.macs,
            p.load_secs,
            p.sync_secs,
            p.rss_mib,
            p.updates,
            p.update_secs,
            p.updates as f64 / p.update_secs.max(1e-9),
            p.ping_loss,
            p.flood_us
        );
    }
    print!("{table}");
    let _ = std::fs::write(out.join("cluster-scale.md"), &table);
    if let Err(e) = plot(&points, &out.join("cluster-scale.svg")) {
        die(format!("the plot: {e}"));
    }
    eprintln!(
        "cluster-scale: wrote {}",
        out.join("cluster-scale.{md,svg}").display()
    );
}
