//! A mutation fuzzer that runs on the stable toolchain (cargo-fuzz needs nightly): it
//! mutates frames from the captures in pcaps/ and feeds them to a target, checking the
//! target's invariants and that nothing panics. A failing input is printed in hex.
//!
//! ```text
//! cargo run --release -p uswitch-benches --bin fuzz -- TARGET [SECONDS] [SEED]
//! TARGET: frame | offload | forwarder | vxlan | all        (CI runs each for 20 s)
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use forwarder::{Decision, FdbConfig, Forwarder, Protection};
use packets::offload::{complete_checksum, segment_tcp, segment_udp, VirtioNetHdr};
use packets::EthernetFrame;

/// The generator's PRNG, with a `usize` bound for picking indices.
struct Rng(uswitch_benches::Rng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }
}

/// One random mutation of `input`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(9) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = [0, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
            }
            2 => out.truncate(rng.below(out.len() + 1)),
            3 => out.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            4 if !other.is_empty() => {
                let cut = rng.below(out.len() + 1).min(out.len());
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            // Interesting EtherTypes and addresses.
            5 if out.len() >= 14 => {
                let t: [u16; 5] = [0x8100, 0x88a8, 0x0800, 0x86dd, 0x0806];
                out[12..14].copy_from_slice(&t[rng.below(5)].to_be_bytes());
            }
            6 if out.len() >= 12 => {
                let m: [[u8; 6]; 4] = [
                    [0xff; 6],
                    [0; 6],
                    [1, 0x80, 0xc2, 0, 0, 0],
                    [2, 0, 0, 0, 0, 1],
                ];
                let at = if rng.below(2) == 0 { 0 } else { 6 };
                out[at..at + 6].copy_from_slice(&m[rng.below(4)]);
            }
            7 => out = (0..rng.below(128)).map(|_| rng.next() as u8).collect(),
            _ => {}
        }
    }
    out
}

fn target_frame(input: &[u8], _rng: &mut Rng) {
    if let Ok(f) = EthernetFrame::new_checked(input) {
        let _ = (
            f.dst(),
            f.src(),
            f.ethertype(),
            f.vlan_id(),
            f.fits_mtu(1500),
        );
        assert!(f.header_len() <= f.len());
        assert_eq!(f.payload().len(), f.len() - f.header_len());
    }
}

fn target_offload(input: &[u8], rng: &mut Rng) {
    let mut hdr_bytes = [0u8; 10];
    hdr_bytes.iter_mut().for_each(|b| *b = rng.next() as u8);
    let _ = VirtioNetHdr::parse(&hdr_bytes);
    let size = 1 + rng.below(2000);
    let mut scratch = Vec::new();
    for tcp in [true, false] {
        let mut total = 0usize;
        let mut emit = |seg: &[u8]| total += seg.len();
        let result = if tcp {
            segment_tcp(input, size, &mut scratch, &mut emit)
        } else {
            segment_udp(input, size, &mut scratch, &mut emit)
        };
        if let Ok(n) = result {
            assert!(n >= 1 && total >= input.len(), "segments lost bytes");
        }
    }
    let mut copy = input.to_vec();
    let _ = complete_checksum(&mut copy, rng.below(input.len() + 8), rng.below(40));
    udp_join_round_trip(input, size);
}

/// Datagrams cut from `input` taken as a UDP GSO frame and joined again: when every one
/// joined the run, cutting the run gives the same datagrams back.
fn udp_join_round_trip(input: &[u8], size: usize) {
    let mut dgrams = Vec::new();
    let mut scratch = Vec::new();
    if segment_udp(input, size, &mut scratch, |d| dgrams.push(d.to_vec())).is_err() {
        return;
    }
    let mut acc = Vec::new();
    let Some(mut run) = packets::gro::UdpGro::start(&mut acc, 0, &dgrams[0], None) else {
        return;
    };
    if !dgrams[1..].iter().all(|d| run.append(&mut acc, 0, d, None)) {
        return;
    }
    if run.finish(&mut acc).is_none() {
        assert_eq!(dgrams.len(), 1, "a run of several finished as one");
        return;
    }
    let mut again = Vec::new();
    segment_udp(&acc, size, &mut scratch, |d| again.push(d.to_vec()))
        .expect("a joined run segments");
    assert_eq!(again, dgrams, "joining then cutting changed the datagrams");
}

struct ForwarderState {
    fwd: Forwarder,
    ports: Vec<forwarder::PortId>,
    now: u64,
    targets: Vec<forwarder::PortId>,
}

fn new_forwarder() -> ForwarderState {
    let mut fwd = Forwarder::with_protection(
        FdbConfig {
            max_entries: 32,
            aging_ms: 5_000,
            move_hold_down_ms: 1_000,
        },
        Protection {
            bum_rate: 500,
            loop_block_ms: Some(2_000),
        },
    );
    let ports = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            fwd.add_port(n, if i < 3 { "default" } else { "blue" }, 1500)
                .expect("a port")
        })
        .collect();
    ForwarderState {
        fwd,
        ports,
        now: 0,
        targets: Vec::new(),
    }
}

impl ForwarderState {
    /// Moves the clock on a little and switches `frame` from one of the ports, picked at
    /// random; returns that port and where the frame goes.
    fn switch(
        &mut self,
        frame: &[u8],
        gso: bool,
        rng: &mut Rng,
    ) -> (forwarder::PortId, Vec<forwarder::PortId>) {
        self.now += rng.below(300) as u64;
        let ingress = self.ports[rng.below(self.ports.len())];
        let targets = match self.fwd.process_frame(ingress, frame, gso, self.now) {
            Decision::Forward(p) => vec![p],
            Decision::Flood(n) => {
                self.fwd.flood_targets(n, ingress, &mut self.targets);
                self.targets.clone()
            }
            Decision::Drop(_) => vec![],
        };
        (ingress, targets)
    }
}

fn target_forwarder(input: &[u8], rng: &mut Rng, st: &mut ForwarderState) {
    let gso = rng.below(8) == 0;
    let (ingress, targets) = st.switch(input, gso, rng);
    let net = st.fwd.port(ingress).expect("attached").network();
    for p in targets {
        assert_ne!(p, ingress, "a frame went back out of its ingress port");
        assert_eq!(
            st.fwd.port(p).expect("attached").network(),
            net,
            "a frame crossed networks"
        );
    }
    for (_, n) in st.fwd.networks() {
        assert!(n.fdb().len() <= 32, "the table outgrew its limit");
    }
    if rng.below(200) == 0 {
        st.fwd.expire(st.now);
        st.fwd.take_loop_alerts();
    }
}

/// A network with two local ports and three VXLAN peers in one split-horizon group;
/// frames enter from the peers (its `ports`).
fn new_overlay() -> ForwarderState {
    let mut fwd = Forwarder::new(FdbConfig {
        max_entries: 32,
        ..FdbConfig::default()
    });
    for n in ["tap0", "tap1"] {
        fwd.add_port(n, "default", 1450).expect("a port");
    }
    let ports = (0..3)
        .map(|i| {
            fwd.add_port_in_horizon(&format!("vx42:198.18.1.{i}"), "default", 1450, 1)
                .expect("a peer")
        })
        .collect();
    ForwarderState {
        fwd,
        ports,
        now: 0,
        targets: Vec::new(),
    }
}

/// A datagram as a VXLAN endpoint receives it: the header checked and written back
/// identically, the flow hash and source port of the inner frame, the IPv6 checksum
/// the same in pieces as whole, TCP receive coalescing, then the inner frame into a
/// network from one of its remotes, where nothing may go back into the overlay.
fn target_vxlan(input: &[u8], rng: &mut Rng, st: &mut ForwarderState) {
    use packets::vxlan::{
        flow_hash, parse_header, source_port, udp_checksum_v6, write_header, SOURCE_PORTS,
        VXLAN_HEADER_LEN,
    };
    let Ok(vni) = parse_header(input) else {
        return;
    };
    let mut h = [0u8; VXLAN_HEADER_LEN];
    write_header(&mut h, vni);
    assert_eq!(
        &h[..],
        &input[..VXLAN_HEADER_LEN],
        "header does not round-trip"
    );
    let inner = &input[VXLAN_HEADER_LEN..];
    let port = source_port(flow_hash(inner));
    assert!((SOURCE_PORTS.0..=SOURCE_PORTS.1).contains(&port));
    let (a, b) = input.split_at(rng.below(input.len() + 1));
    let (src, dst) = (
        std::net::Ipv6Addr::LOCALHOST,
        std::net::Ipv6Addr::UNSPECIFIED,
    );
    assert_eq!(
        udp_checksum_v6(&src, &dst, a, b),
        udp_checksum_v6(&src, &dst, input, &[]),
        "checksum depends on where the datagram is split"
    );
    // A checksum left partial is finished once and verifies after; a whole GSO packet's
    // header stays inside the frame.
    let mut copy = inner.to_vec();
    if packets::offload::finish_partial(&mut copy) == packets::offload::L4Checksum::Finished {
        assert_eq!(
            packets::offload::finish_partial(&mut copy),
            packets::offload::L4Checksum::Valid,
            "a finished checksum does not verify"
        );
    }
    if let Some(h) = packets::offload::tcp_gso_header(inner, 1 + rng.below(2000)) {
        assert!((h.hdr_len as usize) < inner.len());
    }
    // Receive coalescing: the inner frame as a run's start; offered again as the next
    // segment it must be refused (its sequence number does not follow), and the run of one
    // finishes as the frame it was.
    if let Some(mut run) = packets::gro::Gro::start(inner) {
        let mut acc = inner.to_vec();
        assert!(!run.append(&mut acc, 0, inner), "a segment joined itself");
        assert_eq!(acc, inner, "a refused segment changed the run");
        assert_eq!(run.finish(&mut acc), None);
    }
    let (_, targets) = st.switch(inner, false, rng);
    for p in targets {
        assert!(
            !st.ports.contains(&p),
            "a frame from the overlay went back into it"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(target: &str, secs: u64, seed: u64, corpus: &[Vec<u8>]) -> Result<u64, String> {
    let mut rng = Rng(uswitch_benches::Rng(seed | 1));
    let mut st = new_forwarder();
    let mut overlay = new_overlay();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut execs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let a = &corpus[rng.below(corpus.len())];
            let b = &corpus[rng.below(corpus.len())];
            let input = mutate(&mut rng, a, b);
            let outcome = catch_unwind(AssertUnwindSafe(|| match target {
                "frame" => target_frame(&input, &mut rng),
                "offload" => target_offload(&input, &mut rng),
                "vxlan" => target_vxlan(&input, &mut rng, &mut overlay),
                _ => target_forwarder(&input, &mut rng, &mut st),
            }));
            if outcome.is_err() {
                return Err(format!(
                    "{target}: failing input ({} bytes): {}",
                    input.len(),
                    hex(&input)
                ));
            }
            execs += 1;
        }
    }
    Ok(execs)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = args.first().map(String::as_str).unwrap_or("all");
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let targets: Vec<&str> = match target {
        "all" => vec!["frame", "offload", "forwarder", "vxlan"],
        t @ ("frame" | "offload" | "forwarder" | "vxlan") => vec![t],
        other => {
            eprintln!(
                "fuzz: unknown target '{other}': use frame, offload, forwarder, vxlan or all"
            );
            return ExitCode::from(2);
        }
    };
    let mut corpus = Vec::new();
    for path in uswitch_benches::pcap_files().unwrap_or_default() {
        match uswitch_benches::read_pcap(&path) {
            Ok(frames) => corpus.extend(frames),
            Err(e) => eprintln!("fuzz: skipping {}: {e}", path.display()),
        }
    }
    if corpus.is_empty() {
        corpus.push(vec![0; 60]);
    }
    // The VXLAN target starts from the same frames behind a valid header (VNI 42).
    let datagrams: Vec<Vec<u8>> = corpus
        .iter()
        .map(|f| {
            let mut d = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
            d.extend_from_slice(f);
            d
        })
        .collect();
    for t in targets {
        let seeds = if t == "vxlan" { &datagrams } else { &corpus };
        match run(t, secs, seed, seeds) {
            Ok(n) => println!(
                "fuzz {t}: {n} inputs in {secs} s, no failure (seed {seed}, {} seeds from pcaps/)",
                corpus.len()
            ),
            Err(e) => {
                eprintln!("fuzz {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
