//! What `IFF_MULTI_QUEUE` could give uswitch: two namespaces joined by two multi-queue
//! TAPs (with offloads) and a patch between them, no forwarding table, one worker thread
//! per queue pair (queue i of one TAP to queue i of the other and back). With one queue
//! it is uswitch's data path stripped to the copies; with two, the kernel spreads flows
//! over the queues by their hash and each worker moves its own. iperf3 TCP with 1 and 4
//! streams and UDP with 64-byte datagrams run over one queue, then two, alternated for
//! a number of rounds; the medians are printed. An upper bound for what multi-queue adds
//! to the switch, which would also need a shared forwarding table. As root, with iperf3;
//! everything runs in namespaces it creates, on 198.18.0.0/24:
//!
//! ```text
//! cargo run --release -p uswitch-benches --bin tap-mq -- [ROUNDS] [SECONDS]
//! ```

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use uswitch::dataplane::io::tap::open_queue;
use uswitch_benches::check;

const BURST: usize = 64;

/// Moves frames between `a` and `b` (one queue of each TAP) until `stop`.
fn worker(a: OwnedFd, b: OwnedFd, stop: Arc<AtomicBool>) -> io::Result<()> {
    // SAFETY: epoll_create1; checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    check(ep, "epoll_create1")?;
    // SAFETY: fresh fd, ours.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    for (i, fd) in [&a, &b].iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: registering an fd we hold with an event struct we own.
        let rc = unsafe {
            libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev)
        };
        check(rc, "epoll_ctl")?;
    }
    let fds: [RawFd; 2] = [a.as_raw_fd(), b.as_raw_fd()];
    let mut buf = vec![0u8; 65_536 + 256];
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: waiting into an array we own, its length given.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), 2, 100) };
        if n < 0 {
            continue;
        }
        for ev in &events[..n as usize] {
            let from = ev.u64 as usize;
            let (src, dst) = (fds[from], fds[1 - from]);
            for _ in 0..BURST {
                // SAFETY: reading into our buffer, its length given.
                let got = unsafe { libc::read(src, buf.as_mut_ptr().cast(), buf.len()) };
                if got <= 0 {
                    break;
                }
                // SAFETY: writing what was read; a full queue drops it, as uswitch does.
                unsafe { libc::write(dst, buf.as_ptr().cast(), got as usize) };
            }
        }
    }
    Ok(())
}

fn sh(args: &[&str]) -> io::Result<String> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Two namespaces joined through `queues` queue pairs; torn down on drop.
struct Setup {
    ns: [String; 2],
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<io::Result<()>>>,
}

impl Setup {
    fn new(queues: usize) -> io::Result<Setup> {
        let id = std::process::id();
        let taps = [format!("umqa{id}"), format!("umqb{id}")];
        let ns = [format!("umqA{id}"), format!("umqB{id}")];
        let mut setup = Setup {
            ns: ns.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
        };
        let mut pairs = Vec::new();
        for _ in 0..queues {
            pairs.push((open_queue(&taps[0])?, open_queue(&taps[1])?));
        }
        for (i, (tap, n)) in taps.iter().zip(&ns).enumerate() {
            sh(&["ip", "netns", "add", n])?;
            sh(&["ip", "link", "set", tap, "netns", n])?;
            sh(&["ip", "-n", n, "link", "set", "lo", "up"])?;
            let addr = format!("198.18.0.{}/24", i + 1);
            sh(&["ip", "-n", n, "addr", "add", &addr, "dev", tap])?;
            sh(&["ip", "-n", n, "link", "set", tap, "up"])?;
        }
        for (a, b) in pairs {
            let stop = setup.stop.clone();
            setup
                .workers
                .push(std::thread::spawn(move || worker(a, b, stop)));
        }
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns[0],
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "198.18.0.2",
        ])?;
        Ok(setup)
    }

    /// One iperf3 run, from the first namespace to the second; returns bits/s for TCP,
    /// packets received per second for UDP.
    fn iperf(&self, args: &[&str], secs: u64) -> io::Result<f64> {
        let pidfile = format!("/tmp/uswitch-tap-mq-{}.pid", std::process::id());
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns[1],
            "iperf3",
            "-s",
            "-1",
            "-D",
            "-p",
            "5299",
            "--pidfile",
            &pidfile,
        ])?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        let t = secs.to_string();
        let mut cmd = vec![
            "ip",
            "netns",
            "exec",
            &self.ns[0],
            "iperf3",
            "-c",
            "198.18.0.2",
            "-p",
            "5299",
            "-J",
            "-t",
            &t,
        ];
        cmd.extend_from_slice(args);
        let out = sh(&cmd);
        let _ = std::fs::remove_file(&pidfile);
        let json: serde_json::Value =
            serde_json::from_str(&out?).map_err(|e| io::Error::other(format!("iperf3: {e}")))?;
        let end = &json["end"];
        if args.contains(&"-u") {
            let s = &end["sum"];
            let got =
                s["packets"].as_f64().unwrap_or(0.0) - s["lost_packets"].as_f64().unwrap_or(0.0);
            Ok(got / s["seconds"].as_f64().unwrap_or(1.0).max(1e-9))
        } else {
            Ok(end["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0))
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        for n in &self.ns {
            let _ = sh(&["ip", "netns", "del", n]);
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run(rounds: usize, secs: u64) -> io::Result<()> {
    let tests: [(&str, &[&str]); 3] = [
        ("TCP x1 (Gbit/s)", &[]),
        ("TCP x4 (Gbit/s)", &["-P", "4"]),
        ("UDP 64 B (kpps)", &["-u", "-l", "64", "-b", "0"]),
    ];
    // results[queues - 1][test] = one figure per round
    let mut results = vec![vec![Vec::new(); tests.len()]; 2];
    for round in 0..rounds {
        for queues in [1, 2] {
            let setup = Setup::new(queues)?;
            for (t, (name, args)) in tests.iter().enumerate() {
                let v = setup.iperf(args, secs)?;
                let v = if args.contains(&"-u") {
                    v / 1e3
                } else {
                    v / 1e9
                };
                eprintln!("round {} queues {queues} {name}: {v:.1}", round + 1);
                results[queues - 1][t].push(v);
            }
        }
    }
    println!("| test | 1 queue | 2 queues | ratio |");
    println!("|---|---|---|---|");
    for (t, (name, _)) in tests.iter().enumerate() {
        let one = median(&mut results[0][t]);
        let two = median(&mut results[1][t]);
        println!(
            "| {name} | {one:.1} | {two:.1} | {:.2}x |",
            two / one.max(1e-9)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let rounds = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let secs = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    match run(rounds, secs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tap-mq: {e}");
            ExitCode::FAILURE
        }
    }
}
