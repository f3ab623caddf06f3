//! Replays every capture in pcaps/ through the parser and through the forwarder
//! (learning + decision), and reports frames per second. `cargo bench -p uswitch-benches`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use forwarder::{Decision, FdbConfig, Forwarder, PortId};
use packets::EthernetFrame;

fn load() -> Vec<(String, Vec<Vec<u8>>)> {
    uswitch_benches::pcap_files()
        .expect("reading pcaps/")
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let frames = uswitch_benches::read_pcap(&p).expect("reading a capture");
            (name, frames)
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, frames) in load() {
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                for f in &frames {
                    if let Ok(eth) = EthernetFrame::new_checked(&f[..]) {
                        black_box((eth.dst(), eth.src(), eth.ethertype()));
                    }
                }
            })
        });
    }
    group.finish();
}

/// Four ports on one network; each source MAC always enters on the same port (chosen from
/// its bytes), as it would on a real switch, so the table learns a stable picture.
fn forward(c: &mut Criterion) {
    const PORTS: u32 = 4;
    let mut group = c.benchmark_group("forward");
    for (name, frames) in load() {
        let ingress: Vec<PortId> = frames
            .iter()
            .map(|f| {
                PortId(
                    f.get(6..12)
                        .map_or(0, |m| m.iter().map(|&b| b as u32).sum::<u32>())
                        % PORTS,
                )
            })
            .collect();
        let mut fwd = Forwarder::new(FdbConfig::default());
        for p in 0..PORTS {
            fwd.add_port(&format!("p{p}"), "default", 1500)
                .expect("adding a port");
        }
        let mut targets = Vec::with_capacity(PORTS as usize);
        let mut now = 0;
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                now += 1;
                for (f, &port) in frames.iter().zip(&ingress) {
                    match fwd.process(port, f, now) {
                        Decision::Flood(net) => {
                            fwd.flood_targets(net, port, &mut targets);
                            black_box(&targets);
                        }
                        d => {
                            black_box(d);
                        }
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = parse, forward
}
criterion_main!(benches);
