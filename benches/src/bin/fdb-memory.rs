//! Peak memory of the forwarder after learning a million MACs (a MAC flood with the limit
//! raised to fit them all): `cargo run --release -p uswitch-benches --bin fdb-memory`.

use forwarder::{FdbConfig, Forwarder};
use packets::{write_header, EtherType, MacAddr};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    const MACS: u32 = 1_000_000;
    let before = peak_rss_kib().unwrap_or(0);
    let mut fwd = Forwarder::new(FdbConfig {
        max_entries: MACS as usize,
        ..FdbConfig::default()
    });
    let ports: Vec<_> = (0..4)
        .map(|p| {
            fwd.add_port(&format!("p{p}"), "default", 1500)
                .expect("adding a port")
        })
        .collect();
    let mut frame = [0u8; 60];
    for i in 0..MACS {
        let b = i.to_be_bytes();
        let src = MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]]);
        write_header(&mut frame, MacAddr::BROADCAST, src, EtherType::IPV4)
            .expect("60 bytes hold a header");
        fwd.process(ports[(i % 4) as usize], &frame, 0);
    }
    let learned: usize = fwd.networks().map(|(_, n)| n.fdb().len()).sum();
    let after = peak_rss_kib().unwrap_or(0);
    println!(
        "learned {learned} MACs; peak RSS {:.1} MiB (before: {:.1} MiB), {:.0} bytes per entry",
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        (after - before) as f64 * 1024.0 / learned.max(1) as f64
    );
}
