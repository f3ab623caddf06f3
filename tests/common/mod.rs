//! Helpers for end-to-end tests: namespaces as hosts, the real `uswitch` binary between
//! them, and raw-socket probes. Every name is unique to the run (prefix + pid + counter)
//! and every resource is removed by a Drop guard, so tests run in parallel and leak
//! nothing, whichever way they end.
//!
//! Addresses are all in 198.18.0.0/15 and live only in namespaces the test created.

#![allow(dead_code)]

pub mod docker;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub const USWITCH: &str = env!("CARGO_BIN_EXE_uswitch");

/// Whether this process may create TAPs and namespaces. Without CAP_NET_ADMIN a test says
/// loudly that it skipped; with USWITCH_REQUIRE_PRIV=1 (CI) it fails instead.
pub fn privileged(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_NET_ADMIN: u64 = 1 << 12;
    if cap_eff & CAP_NET_ADMIN != 0 {
        return true;
    }
    if std::env::var("USWITCH_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("{test}: needs CAP_NET_ADMIN, and USWITCH_REQUIRE_PRIV=1 forbids skipping");
    }
    eprintln!("!!!!! SKIPPED {test}: needs CAP_NET_ADMIN (run as root); set USWITCH_REQUIRE_PRIV=1 to fail instead");
    false
}

/// A name unique to this process and call, at most 15 bytes: `prefix` + pid + counter.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id());
    assert!(name.len() <= 15, "name {name} too long");
    name
}

/// The entry named `name` in a `show ports --json` answer.
pub fn port<'a>(ports: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    ports
        .as_array()
        .expect("a list of ports")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {ports}"))
}

/// A switch with two ports on `default`, each moved into a namespace of its own with
/// MACs 02:00:00:00:00:01 and :02 and addresses 198.18.0.1/24 and .2/24.
pub fn two_hosts() -> (Uswitch, [String; 2], Netns, Netns) {
    let (a, b) = (unique("ut"), unique("ut"));
    let sw = Uswitch::start(&["--port", &a, "--port", &b]);
    let (ha, hb) = (Netns::new(), Netns::new());
    ha.adopt(&a, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:02", "198.18.0.2/24");
    (sw, [a, b], ha, hb)
}

/// A shorter unique name (at most 11 bytes), for container names.
pub fn short_unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `out` is a failure explained in exactly one line on stderr containing
/// `needle`; returns that line.
pub fn one_line_failure(out: &std::process::Output, needle: &str) -> String {
    assert!(!out.status.success(), "exited {}", out.status);
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.contains(needle), "'{needle}' not in: {err}");
    err
}

/// Runs a command and reports whether it succeeded.
pub fn sh_ok(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether an interface exists in the root namespace (or in `ns`).
pub fn link_exists(ns: Option<&str>, name: &str) -> bool {
    match ns {
        Some(ns) => sh_ok(&["ip", "-n", ns, "link", "show", "dev", name]),
        None => sh_ok(&["ip", "link", "show", "dev", name]),
    }
}

/// A network namespace standing for a host or container; deleted on drop.
pub struct Netns {
    pub name: String,
    owned: bool,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("uns");
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name, owned: true }
    }

    /// Takes charge of a namespace someone else made (deleting it on drop, if it is
    /// still there).
    pub fn guard(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            owned: true,
        }
    }

    /// A handle on a namespace known by name; it deletes nothing.
    pub fn named(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            owned: false,
        }
    }

    /// A second handle on this namespace, for another thread; it deletes nothing.
    pub fn handle(&self) -> Netns {
        Netns {
            name: self.name.clone(),
            owned: false,
        }
    }

    /// Moves the TAP `tap` (attached to uswitch) in, gives it a MAC and an address and
    /// brings it up.
    pub fn adopt(&self, tap: &str, mac: &str, cidr: &str) {
        sh(&["ip", "link", "set", tap, "netns", &self.name]);
        sh(&["ip", "-n", &self.name, "link", "set", tap, "address", mac]);
        sh(&["ip", "-n", &self.name, "addr", "add", cidr, "dev", tap]);
        sh(&["ip", "-n", &self.name, "link", "set", tap, "up"]);
    }

    /// Like [`Netns::adopt`], for a TAP that lives in namespace `from` (a switch started
    /// with [`Uswitch::start_in`]).
    pub fn adopt_from(&self, from: &Netns, tap: &str, mac: &str, cidr: &str) {
        sh(&[
            "ip", "-n", &from.name, "link", "set", tap, "netns", &self.name,
        ]);
        sh(&["ip", "-n", &self.name, "link", "set", tap, "address", mac]);
        sh(&["ip", "-n", &self.name, "addr", "add", cidr, "dev", tap]);
        sh(&["ip", "-n", &self.name, "link", "set", tap, "up"]);
    }

    /// `ip netns exec NS args...`, reporting success.
    pub fn exec_ok(&self, args: &[&str]) -> bool {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh_ok(&full)
    }

    /// Whether `addr` answers an ICMP echo from here (two tries, a second each). Uses a
    /// raw socket in this namespace, so the tests need no ping binary.
    pub fn ping(&self, addr: &str) -> bool {
        let addr: std::net::Ipv4Addr = addr.parse().expect("IPv4 address");
        self.spawn(move || (0..2).any(|seq| icmp_echo(addr, seq, Duration::from_secs(1))))
            .join()
            .expect("ping thread")
    }

    /// Runs `f` on a new thread that lives in this namespace. Sockets it creates stay
    /// in the namespace and may be handed back.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a valid namespace fd; it changes only this thread, which
            // is ours and ends with `f`.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
    }

    pub fn delete(&mut self) {
        if self.owned && !self.name.is_empty() {
            sh_ok(&["ip", "netns", "del", &self.name]);
            self.name.clear();
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Makes blocking receives on `fd` give up after `timeout`.
fn set_recv_timeout(fd: &OwnedFd, timeout: Duration) {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros().max(1) as libc::suseconds_t,
    };
    // SAFETY: setting SO_RCVTIMEO with a timeval of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    assert_eq!(rc, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
}

/// The Internet checksum (RFC 1071).
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends one ICMP echo request to `addr` from the calling thread's namespace and waits up
/// to `timeout` for the matching reply.
fn icmp_echo(addr: std::net::Ipv4Addr, seq: u16, timeout: Duration) -> bool {
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    assert!(
        fd >= 0,
        "raw ICMP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut req = vec![8u8, 0, 0, 0];
    req.extend_from_slice(&id.to_be_bytes());
    req.extend_from_slice(&seq.to_be_bytes());
    req.extend_from_slice(b"uswitch-e2e-ping");
    let ck = inet_checksum(&req);
    req[2..4].copy_from_slice(&ck.to_be_bytes());
    // SAFETY: sockaddr_in is plain data.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_addr.s_addr = u32::from(addr).to_be();
    // SAFETY: valid buffer and sockaddr of the right size.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if sent < 0 {
        // No route, or the neighbour is unreachable: not reachable.
        return false;
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        set_recv_timeout(&fd, left);
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return false;
        }
        let pkt = &buf[..n as usize];
        let ihl = ((pkt[0] & 0x0f) as usize) * 4;
        let Some(icmp) = pkt.get(ihl..ihl + 8) else {
            continue;
        };
        let src = std::net::Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
        if icmp[0] == 0
            && icmp[4..6] == id.to_be_bytes()
            && icmp[6..8] == seq.to_be_bytes()
            && src == addr
        {
            return true;
        }
    }
    false
}

/// A persistent TAP made with `ip tuntap`, deleted on drop.
pub struct PersistentTap {
    pub name: String,
}

impl PersistentTap {
    pub fn new() -> PersistentTap {
        let name = unique("upt");
        sh(&["ip", "tuntap", "add", "mode", "tap", "name", &name]);
        PersistentTap { name }
    }
}

impl Drop for PersistentTap {
    fn drop(&mut self) {
        sh_ok(&["ip", "link", "del", &self.name]);
    }
}

/// The real `uswitch` binary, run as a child. Its log is kept (and echoed to the test's
/// output); it is killed on drop if still running.
pub struct Uswitch {
    pub control: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    /// The state directory this harness chose (when the test named none), removed on drop:
    /// without one, every switch would leave its record in /var/lib/uswitch.
    own_state: Option<std::path::PathBuf>,
}

impl Uswitch {
    /// Starts uswitch with `args` and waits until it reports it is running.
    pub fn start(args: &[&str]) -> Uswitch {
        Self::spawn(Command::new(USWITCH), args)
    }

    /// Starts uswitch inside the namespace `ns` (`ip netns exec` keeps the pid).
    pub fn start_in(ns: &Netns, args: &[&str]) -> Uswitch {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name, USWITCH]);
        Self::spawn(cmd, args)
    }

    /// `start_in` with the control socket at `control`.
    pub fn start_in_at(ns: &Netns, control: &str, args: &[&str]) -> Uswitch {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name, USWITCH]);
        Self::spawn_at(cmd, control.to_string(), args)
    }

    /// Starts uswitch with its control socket at `control` (a restart keeps the path).
    pub fn start_at(control: &str, args: &[&str]) -> Uswitch {
        Self::spawn_at(Command::new(USWITCH), control.to_string(), args)
    }

    fn spawn(cmd: Command, args: &[&str]) -> Uswitch {
        Self::spawn_at(cmd, control_path(), args)
    }

    fn spawn_at(mut cmd: Command, control: String, args: &[&str]) -> Uswitch {
        let own_state = (!args.contains(&"--state-dir"))
            .then(|| std::path::PathBuf::from(format!("{control}.state")));
        if let Some(dir) = &own_state {
            cmd.arg("--state-dir").arg(dir);
        }
        let mut child = cmd
            .args(args)
            .args(["--control", &control])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning uswitch");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[uswitch] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut sw = Uswitch {
            control,
            child,
            log,
            reader: Some(reader),
            own_state,
        };
        sw.wait_for_log("uswitch running", Duration::from_secs(15));
        sw
    }

    /// Runs a client subcommand against this switch: `uswitch ARGS --control PATH`.
    pub fn client(&self, args: &[&str]) -> std::process::Output {
        // --control goes before a `--` that starts a command to run.
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let out = Command::new(USWITCH)
            .args(&args[..split])
            .args(["--control", &self.control])
            .args(&args[split..])
            .output()
            .expect("running the uswitch client");
        eprintln!(
            "$ uswitch {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// One request line straight over the control socket (faster than a client process,
    /// and it says what no client would); the parsed response.
    pub fn raw(&self, line: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.control).expect("connect");
        s.write_all(format!("{line}\n").as_bytes()).expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        serde_json::from_str(&out).expect("a JSON response")
    }

    /// A client subcommand with `--json` that must succeed; its parsed output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.push("--json");
        let out = self.client(&full);
        assert!(
            out.status.success(),
            "uswitch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the client printed JSON")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`; panics after `timeout`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "uswitch exited ({status}) before logging '{needle}': {:#?}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no '{needle}' in uswitch's log: {:#?}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Asks for the counters (SIGUSR1) and returns them: port name -> key -> value.
    pub fn port_stats(&mut self, networks: usize) -> HashMap<String, HashMap<String, u64>> {
        let before = self.log.lock().unwrap().len();
        self.signal(libc::SIGUSR1);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let fresh = &log[before.min(log.len())..];
            if fresh
                .iter()
                .filter(|l| l.contains("stats network="))
                .count()
                >= networks
            {
                let mut out = HashMap::new();
                for line in fresh {
                    let Some(rest) = line.split("stats ").nth(1) else {
                        continue;
                    };
                    let kv: HashMap<String, String> = rest
                        .split_whitespace()
                        .filter_map(|p| p.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    if let Some(port) = kv.get("port") {
                        let nums = kv
                            .iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
                            .collect();
                        out.insert(port.clone(), nums);
                    }
                }
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "no stats after SIGUSR1: {log:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status once the process ends by itself, waiting at most `timeout`.
    pub fn stop_status_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait (at most 10 s) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for uswitch") {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "uswitch did not exit within 10 s of SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Uswitch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(dir) = &self.own_state {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A control socket path unique to this run, in the temporary directory.
pub fn control_path() -> String {
    std::env::temp_dir()
        .join(format!("{}.sock", unique("usc")))
        .to_string_lossy()
        .into_owned()
}

/// A deterministic byte stream: byte `i` of stream `seed` is a pure function of both, so
/// a receiver can check every byte wherever its reads happen to split the stream.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed)
    }

    /// splitmix64 of the word index.
    fn word(&self, index: u64) -> u64 {
        let mut z = (self.0 << 40 ^ index).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Writes the bytes at `offset..offset + buf.len()` of the stream into `buf`.
    pub fn fill_at(&self, offset: u64, buf: &mut [u8]) {
        let mut word_index = u64::MAX;
        let mut word = [0u8; 8];
        for (j, b) in buf.iter_mut().enumerate() {
            let pos = offset + j as u64;
            if pos / 8 != word_index {
                word_index = pos / 8;
                word = self.word(word_index).to_le_bytes();
            }
            *b = word[(pos % 8) as usize];
        }
    }
}

fn send_pattern(mut stream: TcpStream, seed: u64, total: usize) {
    let pat = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let n = buf.len().min(total - sent);
        pat.fill_at(sent as u64, &mut buf[..n]);
        stream.write_all(&buf[..n]).expect("sending the stream");
        sent += n;
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutting down the write side");
}

/// Reads to EOF and checks the bytes against `seed`'s pattern; returns the byte count.
fn check_pattern(mut stream: TcpStream, seed: u64) -> usize {
    let pat = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut expected = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    loop {
        let n = stream.read(&mut buf).expect("reading the stream");
        if n == 0 {
            return got;
        }
        pat.fill_at(got as u64, &mut expected[..n]);
        if let Some(i) = (0..n).find(|&i| buf[i] != expected[i]) {
            panic!("stream {seed} corrupted at byte {}", got + i);
        }
        got += n;
    }
}

/// Both directions of a TCP connection at once: `client` sends `bytes` to `server` and
/// `server` sends `bytes` back, each checked byte for byte. Returns the time it took.
pub fn tcp_exchange(
    client: &Netns,
    server: &Netns,
    server_addr: &str,
    port: u16,
    bytes: usize,
) -> Duration {
    let addr: SocketAddr = format!("{server_addr}:{port}").parse().expect("address");
    let listener = server
        .spawn(move || TcpListener::bind(addr).expect("binding the listener"))
        .join()
        .expect("listener thread");
    let start = Instant::now();
    let srv = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accepting");
        let reader = stream.try_clone().expect("cloning the stream");
        let tx = thread::spawn(move || send_pattern(stream, 2, bytes));
        let got = check_pattern(reader, 1);
        tx.join().expect("server sender");
        got
    });
    let stream = client
        .spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                    Ok(s) => return s,
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("connect {addr}: {e}; retrying");
                        thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => panic!("connect {addr}: {e}"),
                }
            }
        })
        .join()
        .expect("connect thread");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let reader = stream.try_clone().expect("cloning the stream");
    let tx = thread::spawn(move || send_pattern(stream, 1, bytes));
    let got_back = check_pattern(reader, 2);
    tx.join().expect("client sender");
    let got = srv.join().expect("server thread");
    assert_eq!(got, bytes, "server received a short stream");
    assert_eq!(got_back, bytes, "client received a short stream");
    start.elapsed()
}

/// One frame seen by a [`Capture`]: its addresses, EtherType and the first payload bytes.
#[derive(Debug, Clone)]
pub struct Seen {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: u16,
    pub payload: Vec<u8>,
}

/// Records every frame an interface receives (not the ones it sends), from an AF_PACKET
/// socket inside the interface's namespace, until stopped.
pub struct Capture {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Seen>>>,
}

fn packet_socket(ifname: &str) -> (OwnedFd, i32) {
    let cname = std::ffi::CString::new(ifname).expect("interface name");
    // SAFETY: if_nametoindex on a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
    assert!(ifindex > 0, "no interface {ifname} in this namespace");
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto as i32,
        )
    };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    uswitch::dataplane::io::af_packet::bind_to_interface(fd.as_raw_fd(), ifindex)
        .unwrap_or_else(|e| panic!("bind AF_PACKET to {ifname}: {e}"));
    (fd, ifindex)
}

impl Capture {
    pub fn start(ns: &Netns, ifname: &str) -> Capture {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ifname = ifname.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = ns.spawn(move || {
            let (fd, _) = packet_socket(&ifname);
            set_recv_timeout(&fd, Duration::from_millis(50));
            let _ = ready_tx.send(());
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: sockaddr_ll is plain data.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: buf and from are valid for the sizes passed.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                        &mut len,
                    )
                };
                if n < 14 || from.sll_pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                let n = n as usize;
                seen.push(Seen {
                    dst: buf[0..6].try_into().unwrap(),
                    src: buf[6..12].try_into().unwrap(),
                    ethertype: u16::from_be_bytes([buf[12], buf[13]]),
                    payload: buf[14..n.min(14 + 64)].to_vec(),
                });
            }
            seen
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("capture did not start");
        Capture {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("running")
            .join()
            .expect("capture thread")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A local experimental EtherType (IEEE 802 "local experimental 1") for probe frames.
pub const PROBE_ETHERTYPE: u16 = 0x88b5;

/// Sends each of `frames` as it is (raw, no padding beyond the kernel's) out of
/// `ifname` in `ns`; returns how many the kernel accepted.
pub fn send_raw(ns: &Netns, ifname: &str, frames: Vec<Vec<u8>>) -> usize {
    let ifname = ifname.to_string();
    ns.spawn(move || {
        let (fd, _) = packet_socket(&ifname);
        frames
            .iter()
            .filter(|f| {
                // SAFETY: sending from a valid buffer on a bound packet socket.
                let n = unsafe { libc::send(fd.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
                n == f.len() as isize
            })
            .count()
    })
    .join()
    .expect("raw send thread")
}

/// Sends one raw broadcast probe frame carrying `tag` out of `ifname` in `ns`.
pub fn send_broadcast_probe(ns: &Netns, ifname: &str, src: [u8; 6], tag: &[u8]) {
    let ifname = ifname.to_string();
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&PROBE_ETHERTYPE.to_be_bytes());
    frame.extend_from_slice(tag);
    frame.resize(60, 0);
    ns.spawn(move || {
        let (fd, _) = packet_socket(&ifname);
        // SAFETY: sending from a valid buffer on a bound packet socket.
        let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send probe: {}",
            std::io::Error::last_os_error()
        );
    })
    .join()
    .expect("probe thread");
}

/// Sends `count` broadcast probe frames out of `ifname` in `ns`, each from its own
/// source MAC (02:aa:xx:xx:xx:xx), as a MAC flood does; paced (100 frames, then 5 ms)
/// so that the TAP's queue (1000 frames) does not overflow and drop them in the kernel.
pub fn send_from_many_macs(ns: &Netns, ifname: &str, count: u32) {
    let ifname = ifname.to_string();
    ns.spawn(move || {
        let (fd, _) = packet_socket(&ifname);
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[12..14].copy_from_slice(&PROBE_ETHERTYPE.to_be_bytes());
        for i in 0..count {
            let b = i.to_be_bytes();
            frame[6..12].copy_from_slice(&[0x02, 0xaa, b[0], b[1], b[2], b[3]]);
            // SAFETY: sending from a valid buffer on a bound packet socket.
            let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            assert_eq!(
                n,
                frame.len() as isize,
                "send: {}",
                std::io::Error::last_os_error()
            );
            if i % 100 == 99 {
                thread::sleep(Duration::from_millis(5));
            }
        }
    })
    .join()
    .expect("flood thread");
}

/// Whether `frames` hold the probe carrying `tag`.
pub fn saw_probe(frames: &[Seen], tag: &[u8]) -> bool {
    frames
        .iter()
        .any(|f| f.ethertype == PROBE_ETHERTYPE && f.payload.starts_with(tag))
}

/// Parses "02:00:00:00:00:01".
pub fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).expect("hex"))
        .collect();
    v.try_into().expect("six octets")
}

/// The datagram `seq` of flow `flow`: its length varies (a shorter one ends a run, a
/// longer one cannot join it) and every byte says where it belongs.
pub fn udp_datagram(flow: u8, seq: u32) -> Vec<u8> {
    let len = match seq % 37 {
        36 => 20,
        _ if seq % 53 == 52 => 100,
        _ => 64,
    };
    let mut d = vec![flow];
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend((5..len).map(|i| (seq as usize * 31 + i * 7 + flow as usize) as u8));
    d
}

/// Packets received by `ifname` in `ns`, as the kernel counts them.
pub fn rx_packets(ns: &Netns, ifname: &str) -> u64 {
    let out = sh(&["ip", "-n", &ns.name, "-s", "-j", "link", "show", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -s -j prints JSON");
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .expect("rx packets")
}

/// Receives on `addr` until `expected` datagrams came or none came for 3 s.
pub fn receive_udp(addr: std::net::SocketAddr, expected: usize) -> Vec<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let sock = std::net::UdpSocket::bind(addr).expect("bind the receiver");
    uswitch::dataplane::io::setsockopt_int(
        sock.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        8 << 20,
    )
    .expect("SO_RCVBUFFORCE");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < expected {
        match sock.recv(&mut buf) {
            Ok(n) => got.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    got
}

/// The root namespace's `net.ipv4.ip_forward`, which uswitch turns on for its NAT (as
/// Docker does): put back as it was found when the last test that may change it ends
/// (the tests of this binary run in parallel, on threads of one process).
static FORWARDING: std::sync::Mutex<(usize, Option<String>)> = std::sync::Mutex::new((0, None));
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

pub struct ForwardingRestored;

impl ForwardingRestored {
    pub fn take() -> ForwardingRestored {
        let mut held = FORWARDING.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 {
            held.1 = std::fs::read_to_string(IP_FORWARD).ok();
        }
        held.0 += 1;
        ForwardingRestored
    }
}

impl Drop for ForwardingRestored {
    fn drop(&mut self) {
        let mut held = FORWARDING.lock().unwrap_or_else(|e| e.into_inner());
        held.0 -= 1;
        if held.0 == 0 {
            if let Some(found) = held.1.take() {
                let _ = std::fs::write(IP_FORWARD, found);
            }
        }
    }
}

/// Deletes a link of the root namespace on drop.
pub struct LinkGuard(pub String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// The WAN: a namespace holding 198.19.0.2, joined by a veth to the Docker host's
/// 198.19.0.1 (this namespace's, or `host`'s).
pub struct Wan {
    pub ns: Netns,
    _link: Option<LinkGuard>,
}

impl Wan {
    pub fn new(host: Option<&Netns>) -> Wan {
        let ns = Netns::new();
        let up = unique("uw");
        sh(&[
            "ip", "link", "add", &up, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        // In `host`, the link goes with the namespace.
        let link = match host {
            None => Some(LinkGuard(up.clone())),
            Some(h) => {
                sh(&["ip", "link", "set", &up, "netns", &h.name]);
                None
            }
        };
        let on_host = |args: &[&str]| match host {
            None => sh_ok(args),
            Some(h) => h.exec_ok(args),
        };
        assert!(on_host(&["ip", "addr", "add", "198.19.0.1/24", "dev", &up]));
        assert!(on_host(&["ip", "link", "set", &up, "up"]));
        assert!(ns.exec_ok(&["ip", "addr", "add", "198.19.0.2/24", "dev", "eth0"]));
        assert!(ns.exec_ok(&["ip", "link", "set", "eth0", "up"]));
        Wan { ns, _link: link }
    }

    /// What the WAN host reads from a connection to the Docker host's `port`.
    pub fn fetch(&self, port: u16) -> Option<String> {
        self.ns
            .spawn(move || {
                let addr = std::net::SocketAddr::from(([198, 19, 0, 1], port));
                let mut s =
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                let mut got = String::new();
                let _ = s.read_to_string(&mut got);
                Some(got)
            })
            .join()
            .expect("the WAN host")
    }
}

/// The underlay: a bridge in namespace `wire`, and hosts plugged into it, each with
/// interface `ul` holding its underlay address.
pub struct Underlay {
    /// Held for its Drop: the wire goes when the test ends.
    pub wire: Netns,
    pub hosts: Vec<Netns>,
    pub addrs: Vec<String>,
    v6: bool,
}

/// The underlay address of host `i` (0-based).
pub fn underlay_addr(i: usize, v6: bool) -> String {
    if v6 {
        format!("2001:2::{}", i + 1)
    } else {
        format!("198.18.1.{}", i + 1)
    }
}

pub fn disable_ipv6(ns: &Netns) {
    for conf in ["all", "default"] {
        let key = format!("net.ipv6.conf.{conf}.disable_ipv6=1");
        sh(&["ip", "netns", "exec", &ns.name, "sysctl", "-q", "-w", &key]);
    }
}

/// Runs `cmd` (`what`, for the message), which must succeed; its stdout.
pub fn stdout_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Underlay {
    /// `n` hosts on one wire.
    pub fn new(n: usize, v6: bool) -> Underlay {
        let wire = Netns::new();
        sh(&[
            "ip", "-n", &wire.name, "link", "add", "name", "ulbr", "type", "bridge",
        ]);
        sh(&["ip", "-n", &wire.name, "link", "set", "ulbr", "up"]);
        let mut u = Underlay {
            wire,
            hosts: Vec::new(),
            addrs: Vec::new(),
            v6,
        };
        for _ in 0..n {
            u.add_host();
        }
        u
    }

    /// One more host plugged into the wire; its index.
    pub fn add_host(&mut self) -> usize {
        let (i, v6) = (self.hosts.len(), self.v6);
        let host = Netns::new();
        if !v6 {
            disable_ipv6(&host);
        }
        let port = format!("h{i}");
        sh(&[
            "ip",
            "-n",
            &self.wire.name,
            "link",
            "add",
            "name",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "ul",
            "netns",
            &host.name,
        ]);
        sh(&[
            "ip",
            "-n",
            &self.wire.name,
            "link",
            "set",
            &port,
            "master",
            "ulbr",
        ]);
        sh(&["ip", "-n", &self.wire.name, "link", "set", &port, "up"]);
        let addr = underlay_addr(i, v6);
        let cidr = if v6 {
            format!("{addr}/64")
        } else {
            format!("{addr}/24")
        };
        let mut add = vec!["ip", "-n", &host.name, "addr", "add", &cidr, "dev", "ul"];
        if v6 {
            // Duplicate address detection would hold the address back for a second
            // or two, and binding to it would fail meanwhile.
            add.push("nodad");
        }
        sh(&add);
        sh(&["ip", "-n", &host.name, "link", "set", "ul", "up"]);
        self.hosts.push(host);
        self.addrs.push(addr);
        i
    }
}

/// One raw HTTP/1.1 exchange: `request` as it is, then everything until the server
/// closes. The status (None when the server closed without answering) and the body.
pub fn http(addr: SocketAddr, request: &[u8]) -> (Option<u16>, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (None, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A server that closes on us early may reset the rest of the write; what it
    // answered before is still read below.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn http_get(addr: SocketAddr, path: &str) -> (Option<u16>, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// `series{labels} value` lines, by their series.
pub fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}
